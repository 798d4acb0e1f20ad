"""Create and load models the way packed training needs them.

The one rule that matters here (measured): transformers detects packed
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

from hermes3.core.modelfolder import ModelFolderError, check_weights
from hermes3.train.attention import choose_attention


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls natively: oneDNN's own test (AVX512 BW/VL/DQ on x86,
    which covers AVX512_BF16 and AMX; bf16 on Arm).

    Why it matters: on an AVX2-only CPU, bf16 autocast is emulated, and it is not a little
    slower but an order of magnitude: tiny-m pre-training (8 rows of 256 tokens, one thread)
    took 17.9 s per step under bf16 autocast against 1.15 s in fp32 on an AVX2 EPYC, while on
    an AVX512 host bf16 was 1.7x *faster* than fp32.

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


# compressed-tensors draws bars while transformers loads its checkpoint ("Applying quantization config",
# "Compressing model") and at the first forward pass, where a hook decompresses the weights ("Dispatching
# model", "Decompressing model"). Two pass tqdm(disable=not show_progress) with show_progress=True, which
# transformers never changes, and an explicit disable= wins over TQDM_DISABLE: nothing else reaches them.
_BAR_MODULES = ("compressed_tensors.quantization.lifecycle.apply", "compressed_tensors.offload.dispatch",
                "compressed_tensors.compressors.model_compressors.model_compressor")


def load_model(path_or_hub_id, attn_implementation: str | None = None, dtype=None, device=None,
               use_cache: bool | None = False):
    """``AutoModelForCausalLM.from_pretrained`` with our attention choice and, for packed rows,
    no cache (``use_cache=None`` keeps the folder's setting: generation). An FP8
    (compressed-tensors) folder loads without compressed-tensors' load-time progress bars: the
    library's ``tqdm`` is swapped for a disabled one during the call only, and the decompression
    it defers to the first forward pass runs here (a one-token forward), inside that call. e.g.
    ``load_model("runs/demo/fp8", attn_implementation="sdpa", use_cache=None)``. A local folder
    passes ``check_model_folder`` first and loads from safetensors only; ``trust_remote_code``
    stays off (transformers' default: a folder's own modeling code never runs)."""
    import importlib
    import json
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    check_model_folder(path_or_hub_id)  # one line on a missing, pickle-only or lying folder; Hub ids pass
    kw = {"attn_implementation": attn_implementation or choose_attention(device)}
    if Path(path_or_hub_id).expanduser().is_dir():
        kw["use_safetensors"] = True  # never the pickle next to them (a Trainer checkpoint's *.bin, *.pt)
    if dtype is not None:
        kw["dtype"] = dtype
    config = Path(path_or_hub_id) / "config.json"
    quant = json.loads(config.read_text()).get("quantization_config", {}) if config.exists() else {}
    saved = {}
    if quant.get("quant_method") == "compressed-tensors":
        for name in _BAR_MODULES:
            try:
                mod = importlib.import_module(name)
            except ImportError:  # another compressed-tensors layout: its bars are not ours to hide
                continue
            if hasattr(mod, "tqdm"):
                saved[mod] = mod.tqdm
                mod.tqdm = lambda *a, _tqdm=mod.tqdm, **k: _tqdm(*a, **{**k, "disable": True})
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path_or_hub_id), **kw)
        if saved and hasattr(model, "ct_decompress_hook"):
            with torch.no_grad():
                model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device))
    finally:
        for mod, bar in saved.items():
            mod.tqdm = bar
    if use_cache is not None:
        model.config.use_cache = use_cache
    return model.to(device) if device is not None else model


def packed_forward(model, batch: dict, **kw):
    """Forward a padding-free batch (from ``PaddingFreeCollator``) with the cache off,
    so packed samples stay isolated whatever the attention backend."""
    if "attention_mask" in batch:
        raise ValueError("packed batches must not carry an attention_mask: it overrides sample boundaries")
    return model(**batch, use_cache=False, **kw)


def check_model_folder(path) -> None:
    """Fail in one line, before any weights load, on a local model folder that is missing, has no
    or an unreadable ``config.json``, is not a causal LM transformers knows, holds pickle weights
    only, or has a safetensors file whose header lies about the file (a truncated copy, an
    interrupted save, a hostile file): ``hermes3.core.modelfolder.check_weights``, which reads
    headers only. Hub ids pass unchanged. The one check: ``load_model`` runs it, and so does every
    entry point that loads a model folder (chat, eval, fp8, SFT/DPO ``model:``, the held-out
    scorer, serve-check), before it writes anything.

    >>> check_model_folder("/no/such/model")
    Traceback (most recent call last):
    ...
    hermes3.core.modelfolder.ModelFolderError: model folder /no/such/model does not exist
    """
    from pathlib import Path

    from hermes3.core.errors import InputFileError
    from hermes3.core.limits import read_json_file
    from hermes3.data.loaders import is_local_path

    p = Path(path).expanduser()
    s = str(path)
    if not p.exists():
        if is_local_path(s):
            raise ModelFolderError(f"model folder {s} does not exist")
        return  # a Hub id: from_pretrained resolves it
    if not (p / "config.json").exists():
        raise ModelFolderError(f"model folder {s} has no config.json")
    try:
        cfg = read_json_file(p / "config.json")
    except InputFileError as e:
        raise ModelFolderError(f"model folder {s}: config.json is not valid JSON ({e.problem})") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"model folder {s}: config.json is not valid JSON (expected an object)")
    from transformers import AutoConfig, AutoModelForCausalLM

    kind = cfg.get("model_type")
    try:
        AutoModelForCausalLM._model_mapping[type(AutoConfig.for_model(kind))]
    except (KeyError, ValueError, TypeError):
        raise ModelFolderError(f"model folder {s} holds a {kind!r} model, not a causal language model "
                               "transformers can load (e.g. llama, mistral, qwen2)") from None
    heads = cfg.get("architectures") or []
    if heads and not any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in heads):
        # e.g. LlamaForSequenceClassification: AutoModelForCausalLM would load its body and give it
        # a random LM head with only a warning
        raise ModelFolderError(f"model folder {s} holds {heads[0]}, not a causal language model")
    check_weights(p, s)


# Weights, config and tokenizer: not a checkpoint's optimizer, RNG or trainer state, so the last
# epoch checkpoint and ``final/`` (the same weights) share one digest.
MODEL_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
               "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "model.safetensors.index.json"}


def _is_model_file(name: str) -> bool:
    return name in MODEL_FILES or name.endswith(".safetensors") or (name.startswith("pytorch_model") and name.endswith(".bin"))


def model_digest(model) -> str | None:
    """Digest of a local model folder's weights, config and tokenizer files (None for a Hub id):
    what a stage built from it, a cached evaluation or a held-out score depends on, beyond its path.

    >>> import tempfile; from pathlib import Path; d = Path(tempfile.mkdtemp()); _ = (d / "config.json").write_text("{}")
    >>> a = model_digest(d); _ = (d / "model.safetensors").write_bytes(b"w"); a != model_digest(d)
    True
    >>> model_digest("meta-llama/Llama-3.1-8B") is None
    True
    """
    import hashlib
    from pathlib import Path

    folder = Path(model)
    if not folder.is_dir():
        return None
    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in folder.iterdir() if p.is_file() and _is_model_file(p.name)):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "blake2b").digest())
    return h.hexdigest()
