"""``hermes3 chat``: talk to a Hermes model in the terminal, as its users do.

Two backends, one loop:

* a transformers model folder (``runs/demo/sft``, ``runs/demo/fp8``, a Hub id): the prompt is
  rendered in the Hermes format and tokenized with ``hermes3.format.encoding``, so a user typing
  ``<|im_end|><|im_start|>system`` writes text, not a forged turn; tokens stream through
  transformers' ``TextIteratorStreamer``;
* an OpenAI-compatible server (``--url http://127.0.0.1:8000/v1``, e.g. vLLM started with
  ``--enable-auto-tool-choice --tool-call-parser hermes``): the official ``openai`` client
  streams the reply; tool calls the server parsed come back as ``tool_calls`` and are shown
  in the Hermes ``<tool_call>`` form the model wrote them in.

Each line read is one user message. After every reply the parsed structure is printed
below it: tool calls (``hermes3.format.parsing.parse_tool_calls``, the same rules as vLLM's
``hermes`` parser), reasoning tags such as ``<SCRATCHPAD>`` (report §2, Fig. 9) and
``<co: N>`` citations. Commands: ``/tool TEXT`` answers the model's tool call with a tool
result (one per call, in order), ``/reset`` clears the history, ``/exit`` ends.

>>> print("\\n".join(describe('<SCRATCHPAD>plan</SCRATCHPAD><tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>')))
  SCRATCHPAD: plan
  tool_call: f {"x": 1}
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from hermes3.core.errors import Hermes3Error, InputFileError
from hermes3.format.chat import ConversationError, assistant_text, validate_tools
from hermes3.format.parsing import parse_citations, parse_tags, parse_tool_calls

HELP = "one line per message; /tool TEXT answers a tool call, /reset clears the history, /exit ends"


class ChatError(Hermes3Error):
    """A chat that cannot start or continue (unreachable server, unknown model name)."""


def load_tools(path: str | Path) -> list[dict]:
    """The ``--tools`` file: a JSON list of OpenAI-style tool definitions, checked the way the
    Hermes template needs them (``chat.validate_tools``); errors name the file and field."""
    from hermes3.core.limits import MAX_JSON_FILE_BYTES, check_json_depth, read_regular

    p = Path(path)
    if not p.exists():
        raise InputFileError(path, "no such file (expected a JSON list of tool definitions)")
    raw = read_regular(p, MAX_JSON_FILE_BYTES, " (expected a JSON list of tool definitions)")  # a FIFO: refused
    check_json_depth(raw, path)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputFileError(path, "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputFileError(path, f"not valid JSON ({e.msg}, column {e.colno})", line=e.lineno) from None
    try:
        return validate_tools(data)
    except ConversationError as e:
        got = f", got {e.got!r:.60}" if e.got is not None else ""
        raise InputFileError(path, f"field '{e.field}': expected {e.expected}{got}") from None


# ------------------------------------------------------------------------------ backends


class TransformersBackend:
    """Generate with a local transformers model; ``stream`` yields decoded text pieces."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 256, temperature: float = 0.0):
        self.model, self.tok = model, tokenizer
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    @classmethod
    def from_folder(cls, path: str, **kw) -> TransformersBackend:
        from hermes3.core.paths import resolve_if_local
        from hermes3.core.quiet import no_loading_bars
        from hermes3.format.tokenizer import load_tokenizer
        from hermes3.train.modeling import check_model_folder, load_model

        path = resolve_if_local(path)
        check_model_folder(path)
        with no_loading_bars():  # the conversation's terminal shows the conversation only
            return cls(load_model(path).eval(), load_tokenizer(path), **kw)

    def prompt_ids(self, messages: list[dict], tools: list | None) -> list[int]:
        from hermes3.format.encoding import encode_conversation

        return encode_conversation(messages, self.tok, tools, add_generation_prompt=True)["input_ids"]

    def stream(self, messages: list[dict], tools: list | None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        ids = torch.tensor([self.prompt_ids(messages, tools)])
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True)
        sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        # Our saved generation configs say use_cache=False (packed training): ask for the cache.
        kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                  eos_token_id=self.tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=self.tok.pad_token_id,
                  use_cache=True, streamer=streamer, **sampling)
        failure: list[BaseException] = []

        def work():
            try:
                with torch.no_grad():
                    self.model.generate(**kw)
            except BaseException as e:  # re-raised in the caller's thread below
                failure.append(e)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if failure:
            raise failure[0]


def openai_messages(messages: list[dict]) -> list[dict]:
    """Our messages in the OpenAI wire format: tool calls need an ``id`` and JSON-string
    arguments, and each tool result the ``tool_call_id`` it answers (in call order)."""
    out, pending = [], []
    for k, m in enumerate(messages):
        if m.get("tool_calls"):
            calls = [{"id": f"call_{k}_{j}", "type": "function",
                      "function": {"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])}}
                     for j, c in enumerate(m["tool_calls"])]
            pending = [c["id"] for c in calls]
            out.append({"role": "assistant", "content": None, "tool_calls": calls})
        elif m["role"] == "tool":
            out.append({"role": "tool", "content": m["content"], "tool_call_id": pending.pop(0) if pending else "call"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


class OpenAIBackend:
    """Chat with an OpenAI-compatible server through the official ``openai`` client."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, timeout: float = 120.0, client=None):
        import openai

        self.openai = openai
        # vLLM accepts any key unless started with --api-key; the client insists on one.
        self.client = client or openai.OpenAI(base_url=url, api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                              timeout=timeout, max_retries=0)
        self.url, self.max_new_tokens, self.temperature = url, max_new_tokens, temperature
        self.model = model or self._only_model()

    def _only_model(self) -> str:
        try:
            names = [m.id for m in self.client.models.list()]
        except self.openai.OpenAIError as e:
            raise ChatError(f"{self.url}: cannot list the served models ({type(e).__name__}: {e})") from None
        if len(names) != 1:
            raise ChatError(f"{self.url} serves {len(names)} models ({', '.join(names)}): name one as MODEL")
        return names[0]

    def stream(self, messages: list[dict], tools: list | None) -> Iterator[str]:
        kw = {"tools": [t if "function" in t else {"type": "function", "function": t} for t in tools]} if tools else {}
        try:
            chunks = self.client.chat.completions.create(
                model=self.model, messages=openai_messages(messages), stream=True, max_tokens=self.max_new_tokens,
                temperature=self.temperature, **kw)
            calls: dict[int, dict] = {}
            wrote = False
            for chunk in chunks:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    wrote = True
                    yield delta.content
                for tc in delta.tool_calls or []:  # streamed piecewise: name first, arguments in fragments
                    c = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                    if tc.function and tc.function.name:
                        c["name"] += tc.function.name
                    if tc.function and tc.function.arguments:
                        c["arguments"] += tc.function.arguments
        except self.openai.OpenAIError as e:
            raise ChatError(f"{self.url} (model {self.model}): {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
        if calls:
            # Shown as the model wrote them (the server's hermes parser cut these blocks out of
            # the text), so the same parse below applies to both backends.
            text = assistant_text({"tool_calls": [{"function": {"name": c["name"], "arguments": c["arguments"] or "{}"}}
                                                  for _, c in sorted(calls.items())]})
            yield ("\n" if wrote else "") + text


# ------------------------------------------------------------------------------ the loop


def _indent(text: str, pad: str) -> str:
    return text.replace("\n", "\n" + pad)


def describe(text: str) -> list[str]:
    """The structure of one reply, one item per line: reasoning tags (nested ones indented),
    citations, then tool calls and the blocks that did not parse. Plain text adds nothing
    (it was just streamed)."""
    parsed = parse_tool_calls(text)
    lines = []

    def tags(parts, depth):
        for p in parts:
            if p.tag is None:
                continue
            pad = "  " * depth
            head = f"{pad}{p.tag}{'' if p.closed else ' (unclosed)'}:"
            if p.children:
                lines.append(head)
                tags(p.children, depth + 1)
            else:
                lines.append(f"{head} {_indent(p.text, pad + '  ')}")

    tags(parse_tags(parsed.content), 1)
    lines += [f"  citation {','.join(c.doc_ids)}: {c.text}" for c in parse_citations(parsed.content)]
    lines += [f"  tool_call: {c['name']} {json.dumps(c['arguments'], ensure_ascii=False)}" for c in parsed.tool_calls]
    lines += [f"  tool_call error: {e}" for e in parsed.errors]
    return lines


def assistant_message(text: str, tools: list | None) -> dict:
    """The reply as a history message: structured ``tool_calls`` when every ``<tool_call>``
    block parsed and names a declared tool (so ``/tool`` results can answer them), else text.

    Text beside the calls (a ``<SCRATCHPAD>`` before them) is left out of the history: the
    official Hermes 3 template renders an assistant turn with tool calls as the calls only."""
    parsed = parse_tool_calls(text)
    names = {t.get("function", t)["name"] for t in tools or []}
    if parsed.tool_calls and not parsed.errors and all(c["name"] in names for c in parsed.tool_calls):
        return {"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in parsed.tool_calls]}
    return {"role": "assistant", "content": text}


def _unanswered(messages: list[dict]) -> int:
    """Tool calls of the last assistant turn that have no tool result yet."""
    n = 0
    for m in messages:
        if m["role"] == "assistant":
            n = len(m.get("tool_calls") or [])
        elif m["role"] == "tool":
            n -= 1
        else:
            n = 0
    return n


def run(backend, lines: TextIO, out: TextIO, err: TextIO, system: str | None = None, tools: list | None = None,
        prompt: Callable[[], None] | None = None) -> list[dict]:
    """Read user lines until EOF or ``/exit``; stream each reply to ``out``, then its structure.
    Returns the conversation. ``prompt`` is called before each read (the interactive ``you>``)."""
    start = [{"role": "system", "content": system}] if system is not None else []
    messages = list(start)
    while True:
        if prompt:
            prompt()
        line = lines.readline()
        if not line:
            return messages
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.strip() in ("/exit", "/quit"):
            return messages
        if line.strip() == "/reset":
            messages = list(start)
            continue
        if line.strip() == "/help":
            print(HELP, file=err)
            continue
        if line.startswith("/tool"):
            if _unanswered(messages) <= 0:
                print("(no tool call to answer: /tool follows a reply that called a declared tool)", file=err)
                continue
            messages.append({"role": "tool", "content": line[len("/tool"):].strip()})
            if _unanswered(messages) > 0:
                continue  # the model answers once every call has its result
        else:
            messages.append({"role": "user", "content": line})
        out.write("assistant: ")
        out.flush()
        pieces = []
        for piece in backend.stream(messages, tools):
            pieces.append(piece)
            out.write(piece)
            out.flush()
        text = "".join(pieces)
        out.write("\n")
        for row in describe(text):
            out.write(row + "\n")
        out.flush()
        messages.append(assistant_message(text, tools))


def main(args) -> int:
    """``hermes3 chat`` (arguments from ``hermes3.cli.main``)."""
    if not args.model and not args.url:
        raise ChatError("give a MODEL folder (or Hub id), or --url of an OpenAI-compatible server")
    tools = load_tools(args.tools) if args.tools else None
    kw = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    if args.url:
        backend = OpenAIBackend(args.url, args.model, api_key=args.api_key, timeout=args.timeout, **kw)
    else:
        backend = TransformersBackend.from_folder(args.model, **kw)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"hermes3 chat: {getattr(backend, 'model', None) if args.url else args.model}; {HELP}", file=sys.stderr)

    def ask():
        sys.stdout.write("you> ")
        sys.stdout.flush()

    run(backend, sys.stdin, sys.stdout, sys.stderr, system=args.system, tools=tools, prompt=ask if interactive else None)
    return 0
