"""Load conversations from common formats into the Hermes schema of ``hermes3.format.chat``.

Supported record shapes (``format="auto"`` picks by keys):

* ``openai``: ``{"messages": [{"role", "content", "tool_calls"?}], "tools"?: [...]}``
  (also Hugging Face chat datasets; list-of-parts content is joined).
* ``sharegpt``: ``{"conversations": [{"from", "value"}], "tools"?: str | list}`` with
  roles human/gpt/system, glaive's ``function_call``/``observation``, and Hermes
  function-calling v1 records (``<tool_call>`` text in gpt turns, ``<tool_response>``
  text in tool turns, tools listed inside ``<tools>`` in the system prompt).

Every record becomes ``{"messages", "tools", "id"}`` and is validated. With
``on_error="skip"`` bad records are counted by reason in the ``LoadReport`` instead of
raising; nothing is dropped without being counted.

>>> convs, report = load_conversations([{"conversations": [
...     {"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])
>>> convs[0]["messages"][1]
{'role': 'assistant', 'content': 'hello'}
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hermes3.core.errors import InputFileError
from hermes3.core.limits import MAX_JSON_FILE_BYTES, check_json_depth, open_regular, read_lines, read_regular
from hermes3.format.chat import ConversationError, validate, validate_tools
from hermes3.format.parsing import parse_json_or_literal, parse_tool_calls

SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
    "function_call": "assistant", "tool": "tool", "observation": "tool", "function_response": "tool",
}
_TOOLS_IN_SYSTEM = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_TOOL_RESPONSE = re.compile(r"^\s*<tool_response>\s*(.*?)\s*</tool_response>\s*$", re.DOTALL)


@dataclass
class LoadReport:
    """What a load kept and skipped: ``skipped`` counts records by reason, ``examples``
    keeps the first full error message for each reason."""

    read: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add_skip(self, err: ConversationError) -> None:
        self.skipped[err.reason] += 1
        self.examples.setdefault(err.reason, str(err))

    def __str__(self) -> str:
        lines = [f"read {self.read}, kept {self.kept}, skipped {sum(self.skipped.values())}"]
        lines += [f"  {n:6d} x {r}" for r, n in self.skipped.most_common()]
        return "\n".join(lines)


def _text(content: Any, i: int) -> Any:
    """OpenAI list-of-parts content -> one string (text parts only; anything else is an error)."""
    if isinstance(content, list):
        out = []
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ConversationError(i, f"content[{j}]", "a text part {'type': 'text', 'text': ...}", part)
            text = part.get("text", part.get("value"))
            if not isinstance(text, str):
                raise ConversationError(i, f"content[{j}].text", "a string", text)
            out.append(text)
        return "".join(out)
    return content


def from_openai(record: dict) -> dict:
    """``{"messages": [...], "tools"?}`` -> Hermes conversation (validated)."""
    msgs = record.get("messages")
    if not isinstance(msgs, list):
        raise ConversationError(None, "messages", "a list of messages", msgs)
    out = []
    for i, m in enumerate(msgs):
        if isinstance(m, dict) and "content" in m:
            m = {**m, "content": _text(m["content"], i)}
            if m.get("role") == "assistant" and m.get("tool_calls") and m["content"] is None:
                del m["content"]
        out.append(m)
    tools = _tools(record.get("tools"))
    return {"messages": validate(out, tools), "tools": tools, "id": record.get("id")}


def _drop_none(x: Any) -> Any:
    """Remove None-valued keys: ``datasets`` fills fields missing from some records with
    None, which would otherwise render as fake parameters and the text "None"."""
    if isinstance(x, dict):
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_drop_none(v) for v in x]
    return x


def _tools(tools: Any) -> list | None:
    if tools is None or tools == "":
        return None
    if isinstance(tools, str):
        try:
            tools = parse_json_or_literal(tools)
        except ValueError as e:
            raise ConversationError(None, "tools", f"a JSON list of tool schemas ({e})", tools) from None
    return validate_tools(_drop_none(tools))


def _system_tools(text: str) -> list | None:
    """Tools a Hermes v1 system prompt lists inside <tools>...</tools>, or None."""
    # The prose before the list also says "within <tools> </tools> XML tags": skip empty matches.
    found = [m.group(1).strip() for m in _TOOLS_IN_SYSTEM.finditer(text) if m.group(1).strip()]
    if not found:
        return None
    try:
        tools = parse_json_or_literal(found[-1])
    except ValueError as e:
        raise ConversationError(0, "content <tools>", f"a JSON or Python list of tools ({e})", found[-1]) from None
    return validate_tools(tools if isinstance(tools, list) else [tools])


def from_sharegpt(record: dict) -> dict:
    """ShareGPT / glaive / Hermes function-calling v1 -> Hermes conversation (validated).

    The function-calling boilerplate system prompt of v1 records is dropped when tools
    are found in it: the Hermes 3 template regenerates that prompt from ``tools``.
    Observations are wrapped as ``{"name": <called function>, "content": <result>}``,
    the Hermes convention for tool results.
    """
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise ConversationError(None, "conversations", "a list of {from, value} turns", turns)
    tools = _tools(record.get("tools"))
    msgs: list[dict] = []
    last_call_names: list[str] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise ConversationError(i, "turn", "an object with 'from' and 'value'", t)
        src, value = t.get("from"), t.get("value")
        role = SHAREGPT_ROLES.get(src)
        if role is None:
            raise ConversationError(i, "from", "one of " + ", ".join(sorted(SHAREGPT_ROLES)), src)
        if not isinstance(value, str):
            raise ConversationError(i, "value", "a string", value)
        if role == "system" and i == 0 and tools is None and (found := _system_tools(value)) is not None:
            tools = found
            continue
        if src == "function_call":
            try:
                call = parse_json_or_literal(value)
            except ValueError as e:
                raise ConversationError(i, "value", f"a JSON function call ({e})", value) from None
            calls = call if isinstance(call, list) else [call]
            msgs.append({"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in calls]})
            last_call_names = [c.get("name") if isinstance(c, dict) else None for c in calls]
        elif role == "assistant" and "<tool_call>" in value:
            parsed = parse_tool_calls(value)
            if parsed.errors:
                raise ConversationError(i, "value <tool_call>", "parseable tool calls", parsed.errors[0])
            msg = {"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in parsed.tool_calls]}
            if parsed.content:
                msg["content"] = parsed.content  # validate() rejects text beside calls
            msgs.append(msg)
            last_call_names = [c["name"] for c in parsed.tool_calls]
        elif role == "tool":
            m = _TOOL_RESPONSE.match(value)
            if m:
                content = m.group(1)  # already Hermes-wrapped {"name", "content"}
            else:
                name = last_call_names[0] if last_call_names else None
                try:
                    result = json.loads(value)
                except json.JSONDecodeError:
                    result = value
                content = json.dumps({"name": name, "content": result}, ensure_ascii=False)
            if last_call_names:
                last_call_names = last_call_names[1:]
            msgs.append({"role": "tool", "content": content})
        else:
            msgs.append({"role": role, "content": value})
    return {"messages": validate(msgs, tools), "tools": tools, "id": record.get("id")}


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def from_hh_rlhf(text: str) -> dict:
    """Anthropic HH-RLHF transcript (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) -> conversation.

    >>> from_hh_rlhf("\\n\\nHuman: hi\\n\\nAssistant: hello")["messages"][1]
    {'role': 'assistant', 'content': 'hello'}
    """
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise ConversationError(None, "text", "a transcript starting with '\\n\\nHuman: '", text[:40])
    msgs = [{"role": "user" if who == "Human" else "assistant", "content": body.strip()}
            for who, body in zip(parts[1::2], parts[2::2])]
    return {"messages": validate(msgs), "tools": None, "id": None}


def from_prompt_response(prompt: str, response: str, system: str | None = None) -> dict:
    """One single-turn conversation (e.g. a GSM8K question and its worked answer)."""
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    return {"messages": validate(msgs), "tools": None, "id": None}


def convert_each(fn, items) -> list[dict | None]:
    """``fn`` applied to each item; an item whose conversion raises ``ConversationError``
    becomes None, so callers can count it (real data has empty turns and the like)."""
    out = []
    for it in items:
        try:
            out.append(fn(it))
        except ConversationError:
            out.append(None)
    return out


def detect_format(record: dict) -> str:
    if isinstance(record, dict) and "messages" in record:
        return "openai"
    if isinstance(record, dict) and "conversations" in record:
        return "sharegpt"
    raise ConversationError(None, "record", "a 'messages' (OpenAI) or 'conversations' (ShareGPT) field",
                            sorted(record) if isinstance(record, dict) else record)


CONVERTERS = {"openai": from_openai, "sharegpt": from_sharegpt, "hermes_fc": from_sharegpt}


def is_local_path(source: str | Path) -> bool:
    """Whether ``source`` names a local file or folder rather than a Hugging Face Hub id
    (``name`` or ``org/name``): it starts with ``.``, ``/`` or ``~``, has more than one ``/``,
    or ends like a data file. Callers use it to say "does not exist" instead of asking the Hub.

    >>> [is_local_path(s) for s in ("gpt2", "NousResearch/Hermes-3-Llama-3.1-8B", "./m", "runs/sft/x/final", "a.jsonl")]
    [False, False, True, True, True]
    """
    s = str(source)
    return s.startswith((".", "/", "~")) or s.count("/") > 1 or s.endswith((".json", ".jsonl", ".parquet", ".csv"))


DATASETS_SUFFIXES = {".parquet": "parquet", ".csv": "csv"}  # read through `datasets`


def _decode(raw: bytes, path: Path, line: int | None = None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                   "save the file as UTF-8", line) from None


def _object(rec: Any, path: Path, line: int | None, index: int | None = None) -> dict:
    if not isinstance(rec, dict):
        where = f"record {index}: " if index is not None else ""
        raise InputFileError(path, f"{where}expected a JSON object (one record), got a {type(rec).__name__}", line)
    return rec


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with open_regular(path) as f:  # a FIFO or device is refused, not waited on or read forever
        for n, raw in read_lines(f, path):  # a line over MAX_LINE_BYTES is refused, not read whole
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark (Windows editors) is not data
            line = _decode(raw, path, n)
            if not line.strip():
                continue
            check_json_depth(raw, path, n)  # 100,000 levels would end json.loads in a RecursionError
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFileError(path, f"not valid JSON ({e.msg} at column {e.colno})", n) from None
            out.append(_object(rec, path, n))
    return out


def _read_json(path: Path) -> list[dict]:
    raw = read_regular(path, MAX_JSON_FILE_BYTES)
    text = _decode(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw, path)
    check_json_depth(raw, path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = "; one record per line is a .jsonl file" if e.msg == "Extra data" else ""
        raise InputFileError(path, f"not valid JSON ({e.msg} at column {e.colno}{hint})", e.lineno) from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise InputFileError(path, f"expected a JSON list of records or one record object, got a {type(data).__name__}")
    return [_object(r, path, None, i) for i, r in enumerate(data)]


def _load_dataset(source: str, split: str, **kw) -> list[dict]:
    import datasets  # heavy import, only for Hub ids, dataset folders, parquet and csv

    try:
        return list(datasets.load_dataset(source, split=split, **kw))
    except Exception as e:  # datasets raises many types (FileNotFoundError, DatasetNotFoundError, ValueError...)
        while e.__cause__ is not None:  # DatasetGenerationError wraps the informative one
            e = e.__cause__
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise InputFileError(source, f"datasets.load_dataset could not load it ({type(e).__name__}: {first})") from None


def read_records(source: str | Path, split: str = "train") -> list[dict]:
    """Records from a ``.json``/``.jsonl`` file, or a Hugging Face dataset id/folder
    (through ``datasets.load_dataset``, so Hub ids keep working for users).

    Every problem is one ``InputFileError`` naming the file and line: a path that does not
    exist (a path-looking name never falls through to the Hub), a folder with no data
    files, bytes that are not UTF-8, invalid JSON, a record that is not an object, or no
    records at all. A UTF-8 byte-order mark at the start of a file is accepted and ignored.

    >>> read_records("missing/conversations.jsonl")
    Traceback (most recent call last):
    ...
    hermes3.core.errors.InputFileError: missing/conversations.jsonl: does not exist
    """
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():  # a file, or a FIFO, device or socket that open_regular refuses
        suffix = path.suffix.lower()
        try:
            if suffix == ".jsonl":
                records = _read_jsonl(path)
            elif suffix == ".json":
                records = _read_json(path)
            else:
                open_regular(path).close()  # a FIFO or device is refused whatever its name says
                if suffix not in DATASETS_SUFFIXES:
                    raise InputFileError(path, "expected a .json or .jsonl file (or .parquet, .csv), "
                                               f"got a {suffix or 'suffix-less'} file")
                records = _load_dataset(DATASETS_SUFFIXES[suffix], split, data_files=str(path))
        except OSError as e:
            raise InputFileError(path, f"cannot read it ({e.strerror or e})") from None
    elif path.is_dir():
        # A dataset folder keeps its data files at the top or in data/ (the Hub layout); not a deep search
        files = [p for d in (path, path / "data") if d.is_dir() for p in d.iterdir()]
        if not any(p.suffix.lower() in (".json", ".jsonl", ".arrow", *DATASETS_SUFFIXES) for p in files):
            raise InputFileError(path, "is a folder with no data files; expected a .json/.jsonl file or a dataset folder")
        records = _load_dataset(str(path), split)
    elif is_local_path(source) or path.parent.is_dir() and str(path.parent) != ".":
        raise InputFileError(source, "does not exist")
    else:  # a Hub dataset id (name or org/name)
        records = _load_dataset(str(source), split)
    if not records:
        raise InputFileError(source, "holds no records (it is empty)")
    return records


def load_conversations(source: str | Path | Iterable[dict], format: str = "auto",
                       on_error: str = "raise", split: str = "train",
                       require_assistant: bool = True) -> tuple[list[dict], LoadReport]:
    """Load and validate conversations; returns ``(conversations, report)``.

    ``on_error="raise"`` stops at the first bad record with a ``ConversationError``
    naming the file, record, message and field; ``"skip"`` counts it in the report instead.
    ``require_assistant``: a conversation must have an assistant message (the training
    target), so ``hermes3 validate`` rejects exactly what SFT and ``pack-stats`` would.

    >>> load_conversations([{"messages": [{"role": "user", "content": "hi"}]}])
    Traceback (most recent call last):
    ...
    hermes3.format.chat.ConversationError: record 0: conversation, field 'messages': expected at least one assistant message (the training target)
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if format != "auto" and format not in CONVERTERS:
        raise ValueError(f"format must be 'auto' or one of {sorted(CONVERTERS)}, got {format!r}")
    records = read_records(source, split) if isinstance(source, (str, Path)) else list(source)
    report, out = LoadReport(), []
    for n, rec in enumerate(records):
        report.read += 1
        try:
            conv = CONVERTERS[format if format != "auto" else detect_format(rec)](rec)
            if require_assistant and not any(m["role"] == "assistant" for m in conv["messages"]):
                raise ConversationError(None, "messages", "at least one assistant message (the training target)")
        except ConversationError as e:
            if on_error == "raise":
                err = e.with_record(rec.get("id", n) if isinstance(rec, dict) and rec.get("id") else n)
                if isinstance(source, (str, Path)):
                    err.args = (f"{source}: {err.args[0]}",)  # name the file too
                raise err from None
            report.add_skip(e)
            continue
        out.append(conv)
        report.kept += 1
    return out, report
