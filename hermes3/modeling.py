"""Create and load models the way packed training needs them.

The one rule that matters here (DESIGN.md §3, measured): transformers detects packed
rows from ``position_ids`` only when there is no ``attention_mask`` *and no cache*.
``LlamaConfig.use_cache`` defaults to True, so a plain ``model(input_ids, position_ids=...)``
silently attends across samples under sdpa/eager. Every model we create or load gets
``use_cache=False``, and ``packed_forward`` passes it explicitly too.

>>> model = tiny_llama(vocab_size=64, hidden_size=32, num_layers=1, num_heads=2)
>>> model.config.use_cache, model.config._attn_implementation
(False, 'hermes_varlen_sdpa')
"""

from __future__ import annotations

import torch

from hermes3.attention import choose_attention
from hermes3.errors import Hermes3Error


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively: oneDNN's own test (AVX512 BW/VL/DQ on x86,
    which covers AVX512_BF16 and AMX; bf16 on Arm).

    Why it matters: on an AVX2-only CPU, bf16 autocast is emulated, and it is not a little
    slower but an order of magnitude: tiny-m pre-training (8 rows of 256 tokens, one thread)
    took 17.9 s per step under bf16 autocast against 1.15 s in fp32 on an AVX2 EPYC
    (2026-12-03), while on an AVX512 host bf16 was 1.7x *faster* than fp32.

    >>> isinstance(cpu_has_native_bf16(), bool)
    True
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # no public API says this (torch 2.13)
    except (AttributeError, RuntimeError):
        return False


def use_bf16(flag) -> bool:
    """``auto`` | ``true`` | ``false`` -> whether to train in bf16. ``auto`` means yes on a GPU
    that supports bf16 (Ampere and later) and on a CPU that computes bf16 natively
    (``cpu_has_native_bf16``), no on an older GPU or an AVX2-only CPU, where fp32 is much faster.
    The choice changes the numbers a run produces, so runs record it (``bf16`` in a base's
    metrics.json, ``bf16`` in the Trainer's arguments)."""
    flag = str(flag).lower()
    if flag not in ("auto", "true", "false"):
        raise ValueError(f"bf16 must be auto, true or false, got {flag!r}")
    if flag != "auto":
        return flag == "true"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


def tiny_llama_config(vocab_size: int, hidden_size: int = 256, num_layers: int = 4, num_heads: int = 4,
                      num_kv_heads: int | None = None, intermediate_size: int | None = None,
                      max_position_embeddings: int = 8192, tie_word_embeddings: bool = False, **kw):
    """A Llama-3.1-shaped config (RMSNorm, SwiGLU, RoPE theta 500k, GQA, untied input and output
    embeddings) at toy size. The defaults give about 4M parameters with a 2k vocabulary.

    Untied as in Llama 3.1 8B/70B/405B (``tie_word_embeddings: false`` in their configs), and it
    matters here: a tool call writes a value in another token than the request did (` T` `okyo` in
    the question, `T` `okyo` inside the JSON string), and with one matrix for reading and writing
    tokens the demo SFT model put the city's first token at chance (argmax right on 33% of 55
    fresh single calls, chance 12.5%); untied, 75%, and held-out tool calls went 21/45 -> 26/45
    (measured once each on the demo data, tiny-m base 600 x 8, SFT at 3e-4)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, num_key_value_heads=num_kv_heads or max(1, num_heads // 2),
        intermediate_size=intermediate_size or hidden_size * 8 // 3 // 16 * 16,
        max_position_embeddings=max_position_embeddings, rope_theta=500000.0, tie_word_embeddings=tie_word_embeddings,
        use_cache=False, **kw)


def tiny_llama(vocab_size: int, attn_implementation: str | None = None, seed: int = 0, **config_kw):
    """A randomly initialised tiny Llama (deterministic for a seed), ready for packed rows."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_llama_config(vocab_size, **config_kw)
    cfg._attn_implementation = attn_implementation or choose_attention("cpu")
    return LlamaForCausalLM(cfg)


def load_model(path_or_hub_id: str, attn_implementation: str | None = None, dtype=None, device=None):
    """``AutoModelForCausalLM.from_pretrained`` with our attention choice and no cache."""
    from transformers import AutoModelForCausalLM

    attn = attn_implementation or choose_attention(device)
    model = AutoModelForCausalLM.from_pretrained(path_or_hub_id, attn_implementation=attn, dtype=dtype)
    model.config.use_cache = False
    return model.to(device) if device is not None else model


def packed_forward(model, batch: dict, **kw):
    """Forward a padding-free batch (from ``PaddingFreeCollator``) with the cache off,
    so packed samples stay isolated whatever the attention backend."""
    if "attention_mask" in batch:
        raise ValueError("packed batches must not carry an attention_mask: it overrides sample boundaries")
    return model(**batch, use_cache=False, **kw)


class ModelFolderError(Hermes3Error):
    """A model folder that cannot be trained or evaluated, named in one line."""


def check_model_folder(path) -> None:
    """Fail in one line, before any weights load, on a local model folder that is missing, has no
    or an unreadable ``config.json``, is not a causal LM transformers knows, or has a weights file
    whose safetensors header is damaged (a truncated copy or an interrupted save). Hub ids pass.

    >>> check_model_folder("/no/such/model")
    Traceback (most recent call last):
    ...
    hermes3.modeling.ModelFolderError: model folder /no/such/model does not exist
    """
    import json
    from pathlib import Path

    from hermes3.loaders import is_local_path

    p = Path(path).expanduser()
    s = str(path)
    if not p.exists():
        if is_local_path(s):
            raise ModelFolderError(f"model folder {s} does not exist")
        return  # a Hub id: from_pretrained resolves it
    if not (p / "config.json").exists():
        raise ModelFolderError(f"model folder {s} has no config.json")
    try:
        cfg = json.loads((p / "config.json").read_text())
    except ValueError as e:
        raise ModelFolderError(f"model folder {s}: config.json is not valid JSON ({e})") from None
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = cfg.get("model_type")
    try:
        AutoModelForCausalLM._model_mapping[type(AutoConfig.for_model(kind))]
    except (KeyError, ValueError):
        raise ModelFolderError(f"model folder {s} holds a {kind!r} model, not a causal language model "
                               "transformers can load (e.g. llama, mistral, qwen2)") from None
    heads = cfg.get("architectures") or []
    if heads and not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in heads):
        # e.g. LlamaForSequenceClassification: AutoModelForCausalLM would load its body and give it
        # a random LM head with only a warning
        raise ModelFolderError(f"model folder {s} holds {heads[0]}, not a causal language model")
    from safetensors import safe_open

    weights = sorted(p.glob("*.safetensors"))
    if not weights and not list(p.glob("pytorch_model*.bin")):
        raise ModelFolderError(f"model folder {s} has no weights (*.safetensors)")
    for f in weights:
        try:  # safe_open checks the header and that the data it describes fits the file
            with safe_open(str(f), framework="pt"):
                pass
        except Exception as e:  # safetensors raises its own SafetensorError
            raise ModelFolderError(f"model folder {s}: {f.name} is damaged ({str(e).splitlines()[0]})") from None
