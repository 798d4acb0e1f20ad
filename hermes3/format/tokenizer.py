"""Tokenizers that know the Hermes format.

* ``build_tokenizer(texts, vocab_size)`` trains a small byte-level BPE for the CPU demo,
  with every Hermes tag as one token and the Hermes chat template installed.
* ``load_tokenizer(path_or_hub_id)`` loads a real one (Llama 3.1, Hermes 3, or a raw
  tiktoken ``tokenizer.model`` such as Meta's Llama 3 file), adds the Hermes tokens it
  lacks and installs the template.

The report maps the reasoning tags onto Llama 3.1's reserved special tokens; for a raw
tiktoken Llama 3 file we do the same (the Hermes tokens take reserved slots in order, so
the vocabulary and embedding size stay 128,256). The exact ids Nous used are not public.

Tag tokens are added as non-special tokens: ``decode(..., skip_special_tokens=True)``
(vLLM's default) must keep ``<tool_call>`` in the text or tool parsers see nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from hermes3.format.chat import HERMES_CHAT_TEMPLATE
from hermes3.format.parsing import REASONING_TAGS

log = logging.getLogger(__name__)

CONTROL_TOKENS = ("<|im_start|>", "<|im_end|>")
PAD_TOKEN = "<|pad|>"
EOT_TOKEN = "<|endoftext|>"  # separates documents in base-model pre-training
TAG_TOKENS = ("<tools>", "</tools>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>") + tuple(
    t for tag in REASONING_TAGS for t in (f"<{tag}>", f"</{tag}>"))
HERMES_TOKENS = CONTROL_TOKENS + TAG_TOKENS

# Meta's Llama 3 layout of the 256 special tokens after the 128,000 BPE ranks.
_LLAMA3_NAMED = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>",
                 7: "<|end_header_id|>", 9: "<|eot_id|>"}
_LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _wrap(tok, bos: str | None, eos: str, pad: str):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                 clean_up_tokenization_spaces=False)
    hf.chat_template = HERMES_CHAT_TEMPLATE
    return hf


def _added(tokens: Iterable[str], special: bool):
    from tokenizers import AddedToken

    return [AddedToken(t, special=special, normalized=False, lstrip=False, rstrip=False) for t in tokens]


def build_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2):
    """Train a byte-level BPE on ``texts`` with the Hermes tokens as single tokens.

    Ids 0..3 hold ``<|pad|>``, ``<|endoftext|>`` (document separator for pre-training),
    ``<|im_start|>``, ``<|im_end|>``; the tag tokens come last. Byte-level means
    any text round-trips, so nothing ever maps to an unknown token. No BOS token (the
    tiny demo model has no use for one); EOS is ``<|im_end|>``, where turns end.

    >>> tok = build_tokenizer(["hello world"] * 10, vocab_size=300)
    >>> tok.convert_ids_to_tokens(tok("<|im_start|>user\\nhi<|im_end|>")["input_ids"])[0]
    '<|im_start|>'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # Llama 3's split regex, so the demo tokenizer behaves like the real one at boundaries.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(_regex(_LLAMA3_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[PAD_TOKEN, EOT_TOKEN, *CONTROL_TOKENS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens(_added(TAG_TOKENS, special=False))
    return _wrap(tok, None, "<|im_end|>", PAD_TOKEN)


def _regex(pattern: str):
    from tokenizers import Regex

    return Regex(pattern)


def is_tiktoken_file(path: Path) -> bool:
    """A tiktoken BPE file is lines of ``<base64 token> <rank>``."""
    try:
        with path.open("rb") as f:
            first = f.readline().split()
        return len(first) == 2 and first[1].isdigit()
    except OSError:
        return False


def tiktoken_llama3_tokenizer(path: str | Path):
    """A fast HF tokenizer from a Llama 3 tiktoken ``tokenizer.model``, with the Hermes
    tokens placed in reserved special-token slots (vocabulary size unchanged)."""
    from transformers.convert_slow_tokenizer import TikTokenConverter

    conv = TikTokenConverter(vocab_file=str(path), pattern=_LLAMA3_PATTERN)
    tok = conv.tokenizer()
    n_base = tok.get_vocab_size()
    from tokenizers import decoders, pre_tokenizers

    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(_regex(_LLAMA3_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    names, free = [], iter((PAD_TOKEN, *HERMES_TOKENS))
    reserved = 0
    for k in range(256):
        if k in _LLAMA3_NAMED:
            names.append(_LLAMA3_NAMED[k])
            continue
        names.append(next(free, None) or f"<|reserved_special_token_{reserved}|>")
        reserved += 1
    # Added tokens get consecutive ids after the base vocabulary, in this order.
    specials = set(_LLAMA3_NAMED.values()) | set(CONTROL_TOKENS) | {PAD_TOKEN}
    for name in names:
        tok.add_tokens(_added([name], special=name in specials or name.startswith("<|reserved")))
    assert tok.token_to_id(names[-1]) == n_base + 255, "special-token ids must follow the base ranks"
    return _wrap(tok, "<|begin_of_text|>", "<|im_end|>", PAD_TOKEN)


def load_tokenizer(path_or_hub_id: str | Path, install_template: bool = True):
    """Load a tokenizer and make it Hermes-ready.

    Accepts a Hugging Face folder or Hub id (``meta-llama/Llama-3.1-8B``,
    ``NousResearch/Hermes-3-Llama-3.1-8B``), or a tiktoken ``tokenizer.model`` (file or
    folder holding one). Missing Hermes tokens are added, and the log says so along with
    the need to resize the model's embeddings. ``install_template`` sets our chat template.
    """
    path = Path(path_or_hub_id)
    tik = path / "tokenizer.model" if path.is_dir() else path
    if tik.is_file() and is_tiktoken_file(tik) and not (path.is_dir() and (path / "tokenizer.json").exists()):
        tok = tiktoken_llama3_tokenizer(tik)
    else:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(path_or_hub_id))
        if not tok.is_fast:
            raise ValueError(f"{path_or_hub_id}: hermes3 needs a fast tokenizer (offsets drive the loss mask)")
        missing = [t for t in HERMES_TOKENS if len(tok.encode(t, add_special_tokens=False)) != 1]
        if missing:
            tok.add_tokens(_added([t for t in missing if t in TAG_TOKENS], special=False))
            tok.add_special_tokens({"additional_special_tokens": [t for t in missing if t in CONTROL_TOKENS]},
                                   replace_extra_special_tokens=False)
            log.warning("%s lacked %d Hermes tokens (%s...); added them as ids %d..%d. Resize the model: "
                        "model.resize_token_embeddings(len(tokenizer)).", path_or_hub_id, len(missing),
                        ", ".join(missing[:3]), len(tok) - len(missing), len(tok) - 1)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if tok.eos_token != "<|im_end|>":
            # Hermes turns end with <|im_end|>: generation must stop there, not at the
            # base model's end-of-text (set generation_config.eos_token_id to match).
            log.warning("%s: eos_token %r -> '<|im_end|>'", path_or_hub_id, tok.eos_token)
            tok.eos_token = "<|im_end|>"
    if install_template:
        tok.chat_template = HERMES_CHAT_TEMPLATE
    return tok
