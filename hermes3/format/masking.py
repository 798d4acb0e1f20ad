"""Tokenize a conversation and build role-aware labels.

The report: "target labels are set to the special ignore value (-100 in PyTorch) for all
tokens in the instruction and tool output sections". So a token is trained when it is
part of what the assistant writes: its content, its ``<tool_call>`` blocks and its
closing ``<|im_end|>`` (without it the model never learns to stop). System prompt
(tools block included), user turns, whole tool turns and the ``<|im_start|>assistant\\n``
headers get -100.

How: ``chat.render_with_spans`` gives the text and the character spans the model is
trained on; the fast tokenizer's offsets map those spans onto tokens of the *whole*
text. Tokenizing the whole string (rather than piece by piece) guarantees the ids equal
``tokenizer(render(...))`` exactly, even where BPE merges across a piece boundary; such
a straddling token is trained if any of its characters is.

Content is text: a ``<|im_end|>`` a user typed is tokenized as characters, never as the
control token (``hermes3.format.encoding``), so no message can forge a turn.

>>> from hermes3.format.tokenizer import build_tokenizer
>>> tok = build_tokenizer(["hi there"] * 20, vocab_size=300)
>>> ex = tokenize_and_mask([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "there"}], tok)
>>> tok.decode([i for i, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE_INDEX])
'there<|im_end|>'
"""

from __future__ import annotations

import html
import sys
from typing import Any

from hermes3.format.chat import ConversationError
from hermes3.format.encoding import encode_conversation

IGNORE_INDEX = -100


def _messages_tools(conversation: Any) -> tuple[list, list | None]:
    if isinstance(conversation, dict):
        return conversation["messages"], conversation.get("tools")
    return conversation, None


def tokenize_and_mask(conversation: Any, tokenizer, max_length: int | None = None, train_on: str = "all") -> dict:
    """``{"input_ids", "labels", "num_trained"}`` for one conversation.

    ``conversation`` is a list of messages or ``{"messages", "tools"}``. The text is
    ``render(..., bos_token=tokenizer.bos_token or "")`` — the same bytes
    ``tokenizer.apply_chat_template`` produces with our template. With ``max_length``
    longer results are cut to it and ``"truncated_from"`` records the original length
    (packing has its own drop/truncate/split policy; prefer that). ``train_on="last"``
    trains only the final assistant message (a DPO completion; earlier turns are prompt).
    """
    if train_on not in ("all", "last"):
        raise ValueError(f"train_on must be 'all' or 'last', got {train_on!r}")
    messages, tools = _messages_tools(conversation)
    enc = encode_conversation(messages, tokenizer, tools)
    spans, ids, offsets = enc["spans"], enc["input_ids"], enc["offsets"]
    if not spans:
        raise ConversationError(None, "messages", "at least one assistant turn to train on")
    if train_on == "last":
        spans = spans[-1:]
    labels, k = [], 0
    for tid, (a, b) in zip(ids, offsets):
        while k < len(spans) and spans[k][1] <= a:  # spans are sorted and disjoint
            k += 1
        inside = k < len(spans) and a < spans[k][1] and b > spans[k][0]
        labels.append(tid if inside else IGNORE_INDEX)
    out = {"input_ids": list(ids), "labels": labels}
    if max_length is not None and len(ids) > max_length:
        out = {"input_ids": ids[:max_length], "labels": labels[:max_length], "truncated_from": len(ids)}
    out["num_trained"] = sum(label != IGNORE_INDEX for label in out["labels"])
    return out


def trained_spans(input_ids: list[int], labels: list[int], tokenizer) -> list[str]:
    """The decoded runs of consecutive trained tokens (what the loss sees), in order."""
    runs, cur = [], []
    for tid, lab in zip(input_ids, labels):
        if lab != IGNORE_INDEX:
            cur.append(tid)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tokenizer.decode(r) for r in runs]


def show_mask(input_ids: list[int], labels: list[int], tokenizer, format: str = "auto"):
    """Visualise which tokens carry the loss.

    ``format="html"`` returns an ``IPython.display.HTML`` (green = trained, grey =
    masked, hover for the token id); ``"text"`` returns a string with trained runs in
    ``[[...]]``, coloured with ANSI codes when ``"ansi"``. ``"auto"`` picks html inside
    Jupyter, ansi on a terminal, text otherwise.
    """
    if format == "auto":
        format = "html" if "ipykernel" in sys.modules else ("ansi" if sys.stdout.isatty() else "text")
    pieces = [(tokenizer.decode([t]), t, lab != IGNORE_INDEX) for t, lab in zip(input_ids, labels)]
    if format == "html":
        from IPython.display import HTML

        cells = "".join(
            f'<span title="{t}" style="background:{"#b7f0b1" if tr else "#e4e4e4"};white-space:pre-wrap">'
            f"{html.escape(s)}</span>" for s, t, tr in pieces)
        legend = '<div><span style="background:#b7f0b1">trained</span> <span style="background:#e4e4e4">masked (-100)</span></div>'
        return HTML(legend + f'<div style="font-family:monospace;line-height:1.6">{cells}</div>')
    on, off = ("\033[42m", "\033[0m") if format == "ansi" else ("[[", "]]")
    out, prev = [], False
    for s, _, tr in pieces:
        if tr != prev:
            out.append(on if tr else off)
            prev = tr
        out.append(s)
    if prev:
        out.append(off)
    return "".join(out)
