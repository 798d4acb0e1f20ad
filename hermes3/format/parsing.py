"""Parse what a Hermes model writes: ``<tool_call>`` blocks, reasoning tags, citations.

``parse_tool_calls`` follows vLLM's ``hermes`` tool parser (regex
``<tool_call>(.*?)</tool_call>|<tool_call>(.*)``, so an unterminated last call still
counts) and Nous' own ``validate_and_extract_tool_calls`` (``json.loads`` first, then
``ast.literal_eval`` for the single-quoted Python dicts found in Hermes data).

>>> parse_tool_calls('<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>').tool_calls
[{'name': 'f', 'arguments': {'x': 1}}]
>>> [(p.tag, p.text) for p in parse_tags("<SCRATCHPAD>think</SCRATCHPAD>done")]
[('SCRATCHPAD', 'think'), (None, 'done')]
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

# The ten reasoning tags the report trains on ("utilizing the extra reserved tokens in the
# Llama 3.1 tokenizer"); each opening and closing tag is one special token in our tokenizers.
REASONING_TAGS = ("SCRATCHPAD", "REASONING", "INNER_MONOLOGUE", "PLAN", "EXECUTION",
                  "REFLECTION", "THINKING", "SOLUTION", "EXPLANATION", "UNIT_TEST")

_TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)
# Any upper-case XML-ish tag: the ten above plus the structured ones of Fig. 9
# (<RESTATEMENT>, <THOUGHT_1>, <STEP_2>, <DIAGRAM>, ...).
_TAG_RE = re.compile(r"<([A-Z][A-Z0-9_]*)>")
_CITE_RE = re.compile(r"<co:\s*([^>]*)>(.*?)</co(?::\s*[^>]*)?>", re.DOTALL)


def parse_json_or_literal(text: str):
    """``json.loads``, falling back to ``ast.literal_eval`` (Hermes data often holds
    Python-literal dicts with single quotes and ``True``). Raises ``ValueError``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except json.JSONDecodeError as e:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            # TypeError: unhashable keys such as {[1]: 2}; RecursionError: deep nesting
            raise ValueError(f"neither JSON nor a Python literal ({e.msg} at char {e.pos})") from None


@dataclass
class ParsedToolCalls:
    """Result of ``parse_tool_calls``: the text outside the calls, the calls that parsed
    (``{"name", "arguments"}``), and one message per block that did not."""

    content: str
    tool_calls: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_tool_calls(text: str) -> ParsedToolCalls:
    """Extract Hermes ``<tool_call>`` blocks from model output.

    Each block must hold an object with a string ``name`` and an object ``arguments``
    (a JSON-string ``arguments`` is decoded). Blocks that fail are reported in ``errors``,
    never silently dropped.
    """
    calls, errors = [], []
    for k, m in enumerate(_TOOL_CALL_RE.finditer(text)):
        raw = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
        try:
            obj = parse_json_or_literal(raw)
        except ValueError as e:
            errors.append(f"tool_call {k}: {e}: {raw[:80]!r}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            errors.append(f"tool_call {k}: expected an object with a string 'name', got {raw[:80]!r}")
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = parse_json_or_literal(args)
            except ValueError as e:
                errors.append(f"tool_call {k} ({obj['name']}): arguments {e}")
                continue
        if not isinstance(args, dict):
            errors.append(f"tool_call {k} ({obj['name']}): arguments must be an object, got {args!r:.80}")
            continue
        calls.append({"name": obj["name"], "arguments": args})
    content = _TOOL_CALL_RE.sub("", text).strip()
    return ParsedToolCalls(content, calls, errors)


@dataclass
class TaggedPart:
    """One span of a reasoning-formatted answer: ``tag`` is ``None`` for plain text;
    ``closed`` is False when the generation ended inside the tag."""

    tag: str | None
    text: str
    children: list[TaggedPart] = field(default_factory=list)
    closed: bool = True


def parse_tags(text: str) -> list[TaggedPart]:
    """Split text into plain and ``<TAG>...</TAG>`` parts, recursively (a ``<SCRATCHPAD>``
    holds ``<REASONING>``, ``<PLAN>``...). Whitespace-only plain text between tags is
    dropped; an unclosed tag takes the rest of the text and is marked ``closed=False``."""
    parts: list[TaggedPart] = []
    pos = scan = 0  # text before `pos` is emitted; tags are searched from `scan`
    while True:
        m = _TAG_RE.search(text, scan)
        if m is None:
            break
        tag, close = m.group(1), f"</{m.group(1)}>"
        end = _matching_close(text, tag, m.end())
        if end < 0 and tag not in REASONING_TAGS:
            scan = m.end()  # e.g. the generic parameter in "List<T>": text, not a tag
            continue
        if text[pos:m.start()].strip():
            parts.append(TaggedPart(None, text[pos:m.start()].strip()))
        if end < 0:
            inner = text[m.end():]
            parts.append(TaggedPart(tag, inner.strip(), _children(inner), closed=False))
            return parts
        inner = text[m.end():end]
        parts.append(TaggedPart(tag, inner.strip(), _children(inner)))
        pos = scan = end + len(close)
    if text[pos:].strip():
        parts.append(TaggedPart(None, text[pos:].strip()))
    return parts


def _matching_close(text: str, tag: str, start: int) -> int:
    """Index of the ``</tag>`` closing the tag opened before ``start`` (nesting-aware)."""
    depth, open_t, close_t = 1, f"<{tag}>", f"</{tag}>"
    pos = start
    while depth:
        c = text.find(close_t, pos)
        if c < 0:
            return -1
        o = text.find(open_t, pos, c)
        if o >= 0:
            depth, pos = depth + 1, o + len(open_t)
        else:
            depth, pos = depth - 1, c + len(close_t)
    return pos - len(close_t)


def _children(inner: str) -> list[TaggedPart]:
    kids = parse_tags(inner)
    return kids if any(k.tag for k in kids) else []


@dataclass
class Citation:
    """A RAG citation ``<co: 2,5>cited text</co>``: the document ids and the text."""

    doc_ids: list[str]
    text: str


def parse_citations(text: str) -> list[Citation]:
    """All ``<co: id>...</co>`` citations in order (ids split on commas).

    >>> parse_citations("Paris <co: 2>is the capital</co>.")
    [Citation(doc_ids=['2'], text='is the capital')]
    """
    return [Citation([i.strip() for i in m.group(1).split(",") if i.strip()], m.group(2))
            for m in _CITE_RE.finditer(text)]
