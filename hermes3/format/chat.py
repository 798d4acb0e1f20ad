"""The Hermes 3 prompt format: ChatML plus the Hermes function-calling standard.

A conversation is a list of OpenAI-style messages::

    {"role": "system" | "user" | "assistant" | "tool",
     "content": str,
     "tool_calls": [{"type": "function", "function": {"name": str, "arguments": dict | str}}]}

plus an optional list of ``tools`` (OpenAI-style JSON schemas). ``render`` turns it into
the exact text the model is trained on and prompted with:

* ``tools is None``  -> plain ChatML, byte-identical to Nous Research's ``chatml.j2``
  (no default system prompt is injected), preceded by ``bos_token``.
* ``tools`` a list (even empty) -> byte-identical to the official Hermes 3 ``tool_use``
  template, quirks included (no separator after ``</tools>``, the stray ``}`` closing the
  FunctionCall schema, ``list[Union[]]`` for arrays, consecutive tool results merged into
  one ``tool`` turn whose last ``<|im_end|>`` has no newline, ...). This mirrors how
  Hugging Face picks the ``tool_use`` template whenever ``tools`` is passed.

An assistant message with ``tool_calls: []`` (or None) is an ordinary text turn here;
the official template would print it as an empty ``<|im_start|>assistant<|im_end|>``
and lose its content, so we do not copy that quirk.

Empty content (``""``) renders as the official template renders it: an empty system
prompt is a prompt in its own right, so we never ask to drop it.

Where the official template cannot render (it recurses forever on a JSON-schema type it
does not map, e.g. ``"null"``; it crashes on a tool without ``description``) or would
silently lose data (assistant ``content`` next to ``tool_calls`` is dropped), we raise
``ConversationError`` naming the message/tool and field instead of guessing.

``HERMES_CHAT_TEMPLATE`` is the same format as a Hugging Face chat template carrying
``{% generation %}`` markers, so ``tokenizer.apply_chat_template`` (and TRL, vLLM,
llama.cpp) produce the same bytes, and ``return_assistant_tokens_mask`` the same mask.

>>> render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>\\n'
"""

from __future__ import annotations

import json
from typing import Any

from hermes3.core.errors import Hermes3Error

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = {"role", "content", "tool_calls", "name", "tool_call_id"}

# The fixed text of the official tool_use system prompt (split around the tool list).
TOOL_SYSTEM_HEAD = (
    "<|im_start|>system\nYou are a function calling AI model. You are provided with function "
    "signatures within <tools></tools> XML tags. You may call one or more functions to assist "
    "with the user query. Don't make assumptions about what values to plug into functions. "
    "Here are the available tools: <tools> "
)
TOOL_SYSTEM_TAIL = (
    " </tools>"
    'Use the following pydantic model json schema for each tool call you will make: {"properties": '
    '{"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", "type": '
    '"object"}}, "required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}}\n'
    "For each function call return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags as follows:\n"
    "<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-dict>}\n'
    "</tool_call><|im_end|>\n"
)
_BASIC_TYPES = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"}


class ConversationError(Hermes3Error):
    """A conversation that does not fit the Hermes format.

    ``index`` is the message index (``None`` for conversation-level problems such as a
    bad tool schema), ``field`` the offending field path, ``expected`` what would be valid.
    """

    def __init__(self, index: int | None, field: str, expected: str, got: Any = None, *, record=None):
        self.index, self.field, self.expected, self.got, self.record = index, field, expected, got, record
        where = f"message {index}" if index is not None else "conversation"
        head = f"record {record}: " if record is not None else ""
        got_txt = f", got {_short(got)}" if got is not None else ""
        super().__init__(f"{head}{where}, field '{field}': expected {expected}{got_txt}")

    def with_record(self, record) -> ConversationError:
        """The same error, tagged with the dataset record it came from."""
        return ConversationError(self.index, self.field, self.expected, self.got, record=record)

    @property
    def reason(self) -> str:
        """A short, countable reason (field + expectation) for skip reports."""
        return f"{self.field}: {self.expected}"


def _short(x: Any, n: int = 60) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."


# --------------------------------------------------------------------------- validation


def _function_of(obj: dict) -> dict:
    """OpenAI wraps tools and calls as {"type": "function", "function": {...}}; Hermes
    data often omits the wrapper. The official template accepts both, so do we."""
    return obj["function"] if isinstance(obj.get("function"), dict) else obj


def _check_schema_type(spec: Any, field: str) -> None:
    """Reject what the official template cannot render (it recurses without end on any
    string type it does not map, because a Jinja string is iterable)."""
    if not isinstance(spec, dict) or "type" not in spec:
        return
    t = spec["type"]
    if isinstance(t, str):
        if t not in _BASIC_TYPES and t not in ("array", "object"):
            raise ConversationError(
                None, f"{field}.type", "one of string, number, integer, boolean, array, object "
                "(the Hermes 3 template cannot render other types; describe nullability in the "
                "description instead)", t)
    elif isinstance(t, dict):
        raise ConversationError(None, f"{field}.type", "a type name or a list of them", t)
    elif isinstance(t, list):
        for j, member in enumerate(t):
            _check_schema_type({"type": member}, f"{field}.type[{j}]")
    if t == "object" and "additionalProperties" in spec:
        _check_schema_type(spec["additionalProperties"], f"{field}.additionalProperties")


def validate_tools(tools: Any) -> list[dict]:
    """Check a tools list; return it with each tool's missing ``parameters`` filled in.

    A tool needs a non-empty string ``name`` and a string ``description``; ``parameters``
    must be a JSON-schema object (missing means no parameters).
    """
    if not isinstance(tools, list):
        raise ConversationError(None, "tools", "a list of JSON-schema tool definitions", tools)
    out, seen = [], set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise ConversationError(None, f"tools[{i}]", "an object", tool)
        fn = _function_of(tool)
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ConversationError(None, f"tools[{i}].name", "a non-empty string", name)
        if name in seen:
            raise ConversationError(None, f"tools[{i}].name", "unique tool names", name)
        seen.add(name)
        if not isinstance(fn.get("description"), str):
            raise ConversationError(None, f"tools[{i}] ({name}).description", "a string", fn.get("description"))
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise ConversationError(None, f"tools[{i}] ({name}).parameters", "a JSON-schema object", params)
        props = params.get("properties", {})
        if not isinstance(props, dict):
            raise ConversationError(None, f"tools[{i}] ({name}).parameters.properties", "an object", props)
        for pname, pspec in props.items():
            where = f"tools[{i}] ({name}).parameters.properties.{pname}"
            if not isinstance(pspec, dict):
                raise ConversationError(None, where, "a JSON-schema object", pspec)
            _check_schema_type(pspec, where)
        if "return" in fn:
            ret = fn["return"]
            if not isinstance(ret, dict) or not isinstance(ret.get("description", ""), str):
                raise ConversationError(None, f"tools[{i}] ({name}).return", "a JSON-schema object with a string description", ret)
            _check_schema_type(ret, f"tools[{i}] ({name}).return")
        fn = {**fn, "parameters": params}
        out.append({"type": "function", "function": fn} if "function" in tool else fn)
    return out


def _check_arguments(args: Any, i: int, field: str) -> None:
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError as e:
            raise ConversationError(i, field, f"a JSON object (string did not parse: {e.msg})", args) from None
    if not isinstance(args, dict):
        raise ConversationError(i, field, "a JSON object of arguments (use {} for none)", args)
    try:
        json.dumps(args, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConversationError(i, field, f"JSON-serialisable values ({e})", args) from None


def validate(messages: Any, tools: list | None = None) -> list[dict]:
    """Check a conversation against the Hermes format; return a normalised copy.

    Raises ``ConversationError`` naming the message index and field. Normalisation only
    drops ``tool_calls`` that are ``None`` or empty and fills missing tool ``parameters``.

    >>> validate([{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}])
    Traceback (most recent call last):
    ...
    hermes3.format.chat.ConversationError: message 1, field 'role': expected one of system, user, assistant, tool, got 'robot'
    """
    if not isinstance(messages, list) or not messages:
        raise ConversationError(None, "messages", "a non-empty list of messages", messages)
    tool_names = None
    if tools is not None:
        tool_names = {_function_of(t)["name"] for t in validate_tools(tools)}
    out: list[dict] = []
    pending_calls = 0  # tool calls of the last assistant turn not yet answered
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ConversationError(i, "message", "an object with 'role' and 'content'", msg)
        extra = set(msg) - MESSAGE_KEYS
        if extra:
            raise ConversationError(i, sorted(extra)[0], f"only the fields {sorted(MESSAGE_KEYS)}", msg[sorted(extra)[0]])
        role = msg.get("role")
        if role not in ROLES:
            raise ConversationError(i, "role", "one of " + ", ".join(ROLES), role)
        msg = dict(msg)
        if not msg.get("tool_calls"):
            if msg.get("tool_calls") not in (None, []):
                raise ConversationError(i, "tool_calls", "a list of tool calls", msg["tool_calls"])
            msg.pop("tool_calls", None)
        calls = msg.get("tool_calls")
        content = msg.get("content")
        if role == "system" and i != 0:
            raise ConversationError(i, "role", "'system' only as the first message")
        if calls is not None:
            if role != "assistant":
                raise ConversationError(i, "tool_calls", "tool_calls only on assistant messages")
            if tools is None:
                raise ConversationError(i, "tool_calls", "a 'tools' list declaring the called functions (none given)")
            if not isinstance(calls, list):
                raise ConversationError(i, "tool_calls", "a list of tool calls", calls)
            if content not in (None, "") and str(content).strip():
                raise ConversationError(
                    i, "content", "no text beside tool_calls (the Hermes 3 template drops it; "
                    "put the text in the following assistant turn)", content)
            msg.pop("content", None)
            for j, call in enumerate(calls):
                f = f"tool_calls[{j}]"
                if not isinstance(call, dict):
                    raise ConversationError(i, f, "an object {'function': {'name', 'arguments'}}", call)
                fn = _function_of(call)
                if not isinstance(fn.get("name"), str) or not fn["name"]:
                    raise ConversationError(i, f + ".name", "a non-empty string", fn.get("name"))
                if fn["name"] not in tool_names:
                    raise ConversationError(i, f + ".name", f"one of the declared tools {sorted(tool_names)}", fn["name"])
                if "arguments" not in fn:
                    raise ConversationError(i, f + ".arguments", "a JSON object of arguments (use {} for none)")
                _check_arguments(fn["arguments"], i, f + ".arguments")
            pending_calls = len(calls)
        else:
            # empty text is valid: the official template renders it (an empty system prompt
            # is a real Hermes 3 probe); the data filters drop empty turns from training sets
            if not isinstance(content, str):
                raise ConversationError(i, "content", "a string", content)
        if role == "tool":
            if pending_calls <= 0:
                raise ConversationError(i, "role", "a tool message only after an assistant tool call it answers")
            pending_calls -= 1
        elif calls is None:
            pending_calls = 0
        if role == "assistant" and out and out[-1]["role"] == "assistant":
            raise ConversationError(i, "role", "a user or tool message between two assistant turns")
        out.append(msg)
    return out


# --------------------------------------------------------------------------- rendering


def _py_type(spec: Any) -> str:
    """Python-typing text the official ``json_to_python_type`` macro produces, quirks
    and all: arrays become ``list[Union[]]`` (the macro passes ``spec|items``), a spec
    with no ``type`` becomes ``Union[]`` (Jinja's Undefined is an empty iterable), a
    non-string scalar type becomes ``Any``."""
    if not isinstance(spec, dict) or "type" not in spec:
        return "Union[]"
    t = spec["type"]
    if isinstance(t, str) and t in _BASIC_TYPES:
        return _BASIC_TYPES[t]
    if t == "array":
        return "list[Union[]]"
    if t == "object":
        if "additionalProperties" in spec:
            return "dict[str, " + _py_type(spec["additionalProperties"]) + "]"
        return "dict"
    if isinstance(t, list):
        return "Union[" + ",".join(_py_type({"type": m}) for m in t) + "]"
    if isinstance(t, (str, dict)):  # unreachable after validate_tools
        raise ConversationError(None, "type", "a renderable JSON-schema type", t)
    return "Any"


def _jinja_str(x: Any) -> str:
    """str() the way Jinja prints a value (only differs from Python for None/bools in
    ways the template never hits for strings)."""
    return x if isinstance(x, str) else str(x)


def _render_tool(tool: dict) -> str:
    fn = _function_of(tool)
    props = fn["parameters"].get("properties", {})
    sig = ", ".join(f"{p}: {_py_type(s)}" for p, s in props.items())
    desc = f"{fn['name']}({sig})"
    if "return" in fn:
        desc += " -> " + _py_type(fn["return"])
    desc += " - " + fn["description"] + "\n\n"
    for k, (p, s) in enumerate(props.items()):
        if k == 0:
            desc += "    Args:\n"
        pdesc = _jinja_str(s["description"]).strip() if isinstance(s, dict) and "description" in s else ""
        desc += f"        {p}({_py_type(s)}): {pdesc}"  # quirk: no newline between args
    ret = fn.get("return")
    if isinstance(ret, dict) and "description" in ret:
        desc += "\n    Returns:\n        " + _jinja_str(ret["description"])
    params = "{}" if len(props) == 0 else json.dumps(fn["parameters"], ensure_ascii=False)
    return '{"type": "function", "function": {"name": "' + fn["name"] + '", "description": "' + desc + '", "parameters": ' + params + "}}"


def _render_call(call: dict) -> str:
    fn = _function_of(call)
    args = fn["arguments"]
    args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return '{"name": "' + fn["name"] + '", "arguments": ' + args + "}"


def assistant_text(message: dict) -> str:
    """What the model writes for one assistant message, without the closing
    ``<|im_end|>``: its content, or its ``<tool_call>`` blocks joined by newlines.

    >>> assistant_text({"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]})
    '<tool_call>\\n{"name": "f", "arguments": {}}\\n</tool_call>'
    """
    if message.get("tool_calls"):
        return "\n".join("<tool_call>\n" + _render_call(c) + "\n</tool_call>" for c in message["tool_calls"])
    return message["content"]


def render_segments(messages: list[dict], tools: list | None = None, add_generation_prompt: bool = False,
                    bos_token: str = "") -> list[tuple[str, bool, bool]]:
    """The rendered conversation as ``(text, trained, content)`` segments, in order.

    ``trained`` as in ``render_pieces``. ``content`` marks text that comes from the data
    (message content, tool calls, tool definitions) rather than from the template: a
    ``<|im_end|>`` there is text a user wrote, not a turn boundary, and tokenizers must
    treat it so (``hermes3.format.encoding``). ``"".join`` of the texts is ``render(...)``.

    >>> render_segments([{"role": "user", "content": "Hi"}])
    [('<|im_start|>user\\n', False, False), ('Hi', False, True), ('<|im_end|>\\n', False, False)]
    """
    msgs = validate(messages, tools)
    segs: list[tuple[str, bool, bool]] = []
    ctx = lambda s: segs.append((s, False, False))  # noqa: E731
    data = lambda s: segs.append((s, False, True))  # noqa: E731

    def answer(m):
        segs.append((assistant_text(m), True, True))
        segs.append(("<|im_end|>", True, False))

    if tools is None:
        ctx(bos_token)
        for m in msgs:
            if m["role"] == "assistant":
                ctx("<|im_start|>assistant\n")
                answer(m)
                ctx("\n")
            else:
                ctx(f"<|im_start|>{m['role']}\n")
                data(m["content"])
                ctx("<|im_end|>\n")
    else:
        tools = validate_tools(tools)
        ctx(bos_token + TOOL_SYSTEM_HEAD)
        data("\n".join(_render_tool(t) for t in tools))
        ctx(TOOL_SYSTEM_TAIL)
        last = len(msgs) - 1
        for i, m in enumerate(msgs):
            role = m["role"]
            if role == "assistant":
                # With tool calls the template writes "<|im_start|>assistant" then
                # "\n<tool_call>\n..." per call. That first "\n" is the header newline a
                # generation prompt ends with, so it stays context; the model learns from
                # "<tool_call>" on.
                ctx("<|im_start|>assistant\n")
                answer(m)
                ctx("\n")
            elif role == "tool":
                ctx(("<|im_start|>tool\n" if i > 0 and msgs[i - 1]["role"] != "tool" else "") + "<tool_response>\n")
                data(m["content"])
                s = "\n</tool_response>\n" if i != last else "\n</tool_response>"
                if i == last or msgs[i + 1]["role"] != "tool":
                    s += "<|im_end|>"  # quirk: no newline after it
                ctx(s)
            else:
                ctx(f"<|im_start|>{role}\n")
                data(m["content"])
                ctx("<|im_end|>\n")
    if add_generation_prompt:
        ctx("<|im_start|>assistant\n")
    return [s for s in segs if s[0]]


def render_pieces(messages: list[dict], tools: list | None = None, add_generation_prompt: bool = False,
                  bos_token: str = "") -> list[tuple[str, bool]]:
    """The rendered conversation as ``(text, trained)`` pieces, in order.

    Trained pieces are exactly what the model learns to produce: assistant content, its
    ``<tool_call>`` blocks and its closing ``<|im_end|>``. Everything else (bos, system
    prompt with tools, user and tool turns, the ``<|im_start|>assistant\\n`` header and the
    newline after ``<|im_end|>``) is context. ``"".join`` of the texts is ``render(...)``.
    """
    pieces: list[tuple[str, bool]] = []
    for text, trained, _ in render_segments(messages, tools, add_generation_prompt, bos_token):
        if pieces and pieces[-1][1] == trained:
            pieces[-1] = (pieces[-1][0] + text, trained)
        else:
            pieces.append((text, trained))
    return pieces


def render(messages: list[dict], tools: list | None = None, add_generation_prompt: bool = False,
           bos_token: str = "") -> str:
    """Render a conversation to the exact Hermes 3 prompt text (see module docstring).

    >>> tools = [{"type": "function", "function": {"name": "add", "description": "Add.",
    ...     "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
    >>> msgs = [{"role": "user", "content": "2+3?"},
    ...     {"role": "assistant", "tool_calls": [{"function": {"name": "add", "arguments": {"a": 2}}}]}]
    >>> render(msgs, tools).split("<|im_start|>assistant")[1]
    '\\n<tool_call>\\n{"name": "add", "arguments": {"a": 2}}\\n</tool_call><|im_end|>\\n'
    """
    return "".join(t for t, _ in render_pieces(messages, tools, add_generation_prompt, bos_token))


def render_with_spans(messages, tools=None, add_generation_prompt=False, bos_token="", content: bool = False):
    """``(text, spans)`` where ``spans`` are the ``(start, end)`` character ranges the
    model is trained on (see ``render_pieces``); with ``content=True``, ``(text, spans,
    content_spans)``, the last the ranges that come from the data (``render_segments``)."""
    text, spans, data, pos = [], [], [], 0
    for piece, trained, is_content in render_segments(messages, tools, add_generation_prompt, bos_token):
        if trained:
            if spans and spans[-1][1] == pos:  # one span per assistant turn, as render_pieces
                spans[-1] = (spans[-1][0], pos + len(piece))
            else:
                spans.append((pos, pos + len(piece)))
        if is_content:
            data.append((pos, pos + len(piece)))
        text.append(piece)
        pos += len(piece)
    return ("".join(text), spans, data) if content else ("".join(text), spans)


# --------------------------------------------------------------------------- HF template

# The same format as a Hugging Face chat template. `{% generation %}` marks the trained
# spans so `apply_chat_template(return_assistant_tokens_mask=True)` (and TRL's
# assistant_only_loss) agree with `render_pieces`. Rendered by HF with trim_blocks and
# lstrip_blocks; every tag strips whitespace so the layout below never leaks into output.
HERMES_CHAT_TEMPLATE = r"""
{%- macro py_type(spec, where) -%}
  {%- set basic = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"} -%}
  {%- if spec is not mapping or "type" not in spec -%}
    {{- "Union[]" -}}
  {%- elif spec["type"] is string and spec["type"] in basic -%}
    {{- basic[spec["type"]] -}}
  {%- elif spec["type"] == "array" -%}
    {{- "list[Union[]]" -}}
  {%- elif spec["type"] == "object" -%}
    {%- if "additionalProperties" in spec -%}
      {{- "dict[str, " + py_type(spec["additionalProperties"], where) + "]" -}}
    {%- else -%}
      {{- "dict" -}}
    {%- endif -%}
  {%- elif spec["type"] is string or spec["type"] is mapping -%}
    {{- raise_exception(where + ": unsupported JSON-schema type " + spec["type"]|string) -}}
  {%- elif spec["type"] is iterable -%}
    {{- "Union[" -}}
    {%- for t in spec["type"] -%}
      {{- py_type({"type": t}, where) -}}
      {%- if not loop.last %}{{- "," -}}{% endif -%}
    {%- endfor -%}
    {{- "]" -}}
  {%- else -%}
    {{- "Any" -}}
  {%- endif -%}
{%- endmacro -%}
{%- if bos_token is defined and bos_token %}{{- bos_token -}}{% endif -%}
{%- if tools is defined and tools is not none -%}
  {{- '<|im_start|>system\nYou are a function calling AI model. You are provided with function signatures within <tools></tools> XML tags. You may call one or more functions to assist with the user query. Don\'t make assumptions about what values to plug into functions. Here are the available tools: <tools> ' -}}
  {%- for tool in tools -%}
    {%- if tool.function is defined %}{% set tool = tool.function %}{% endif -%}
    {%- set props = tool.parameters.properties if tool.parameters is defined and tool.parameters.properties is defined else {} -%}
    {{- '{"type": "function", "function": {"name": "' + tool.name + '", "description": "' + tool.name + '(' -}}
    {%- for pname, pspec in props|items -%}
      {{- pname + ": " + py_type(pspec, tool.name + "." + pname) -}}
      {%- if not loop.last %}{{- ", " -}}{% endif -%}
    {%- endfor -%}
    {{- ")" -}}
    {%- if tool.return is defined %}{{- " -> " + py_type(tool.return, tool.name + ".return") -}}{% endif -%}
    {{- " - " + tool.description + "\n\n" -}}
    {%- for pname, pspec in props|items -%}
      {%- if loop.first %}{{- "    Args:\n" -}}{% endif -%}
      {{- "        " + pname + "(" + py_type(pspec, tool.name + "." + pname) + "): " + ((pspec.description|string)|trim if pspec is mapping and "description" in pspec else "") -}}
    {%- endfor -%}
    {%- if tool.return is defined and tool.return is mapping and "description" in tool.return -%}
      {{- "\n    Returns:\n        " + tool.return.description|string -}}
    {%- endif -%}
    {{- '", "parameters": ' -}}
    {%- if props|length == 0 %}{{- "{}" -}}{% else %}{{- tool.parameters|tojson -}}{% endif -%}
    {{- "}}" -}}
    {%- if not loop.last %}{{- "\n" -}}{% endif -%}
  {%- endfor -%}
  {{- ' </tools>Use the following pydantic model json schema for each tool call you will make: {"properties": {"name": {"title": "Name", "type": "string"}, "arguments": {"title": "Arguments", "type": "object"}}, "required": ["name", "arguments"], "title": "FunctionCall", "type": "object"}}\nFor each function call return a json object with function name and arguments within <tool_call></tool_call> XML tags as follows:\n<tool_call>\n{"name": <function-name>, "arguments": <args-dict>}\n</tool_call><|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
  {%- if message.role == "assistant" and message.tool_calls -%}
    {%- if tools is not defined or tools is none -%}
      {{- raise_exception("message " + loop.index0|string + " has tool_calls but no tools were given") -}}
    {%- endif -%}
    {{- "<|im_start|>assistant\n" -}}
    {%- generation -%}
    {%- for tool_call in message.tool_calls -%}
      {%- if tool_call.function is defined %}{% set tool_call = tool_call.function %}{% endif -%}
      {%- if not loop.first %}{{- "\n" -}}{% endif -%}
      {{- '<tool_call>\n{"name": "' + tool_call.name + '", "arguments": ' -}}
      {%- if tool_call.arguments is string %}{{- tool_call.arguments -}}{% else %}{{- tool_call.arguments|tojson -}}{% endif -%}
      {{- "}\n</tool_call>" -}}
    {%- endfor -%}
    {{- "<|im_end|>" -}}
    {%- endgeneration -%}
    {{- "\n" -}}
  {%- elif message.role == "assistant" -%}
    {{- "<|im_start|>assistant\n" -}}
    {%- generation -%}
    {{- message.content + "<|im_end|>" -}}
    {%- endgeneration -%}
    {{- "\n" -}}
  {%- elif message.role == "tool" and tools is defined and tools is not none -%}
    {%- if loop.previtem and loop.previtem.role != "tool" %}{{- "<|im_start|>tool\n" -}}{% endif -%}
    {{- "<tool_response>\n" + message.content -}}
    {%- if not loop.last %}{{- "\n</tool_response>\n" -}}{% else %}{{- "\n</tool_response>" -}}{% endif -%}
    {%- if loop.last or loop.nextitem.role != "tool" %}{{- "<|im_end|>" -}}{% endif -%}
  {%- else -%}
    {{- "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n" -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt %}{{- "<|im_start|>assistant\n" -}}{% endif -%}
"""
