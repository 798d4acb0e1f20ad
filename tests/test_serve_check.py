"""scripts/serve_check.py without vLLM: reading served tool calls, and stopping the server's process group."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessage, ChatCompletionMessageToolCall
from openai.types.chat.chat_completion_message_tool_call import Function

from conftest import ROOT
from hermes3.data.checkers import check

spec = importlib.util.spec_from_file_location("serve_check", ROOT / "scripts" / "serve_check.py")
serve_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serve_check)


def _message(content, *calls):
    return ChatCompletionMessage(role="assistant", content=content, tool_calls=[
        ChatCompletionMessageToolCall(id=f"c{k}", type="function", function=Function(name=n, arguments=a))
        for k, (n, a) in enumerate(calls)] or None)


def test_served_calls_read_back_in_hermes_form():
    text, calls = serve_check.served_text(_message(None, ("get_weather", '{"city": "Paris"}'),
                                                   ("get_weather", '{"city": "Tokyo"}')))
    assert calls == [{"name": "get_weather", "arguments": {"city": "Paris"}},
                     {"name": "get_weather", "arguments": {"city": "Tokyo"}}]
    assert text == ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
                    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>')
    want = {"kind": "tool_calls", "calls": calls}
    assert check(want, text) == (True, "ok")
    # text beside the calls is what the model wrote too: the checker sees it, as in notebook 08
    text, _ = serve_check.served_text(_message("Sure.", ("get_weather", '{"city": "Paris"}')))
    assert text.startswith("Sure.\n<tool_call>") and check(want, text) == (False, "tool_calls: text outside the tool calls")


@pytest.mark.parametrize("msg, error", [
    (_message(None, ("f", "{'x': 1}")), "tool_calls[0] (f): arguments are not JSON (Expecting property name enclosed in double quotes: "
                                        "line 1 column 2 (char 1)): \"{'x': 1}\""),
    (_message(None, ("f", "[1]")), "tool_calls[0] (f): arguments are not an object: [1]"),
    (_message('<tool_call>\n{"name": "f"}', ("f", "{}")), "the hermes parser left a <tool_call> block in content"),
])
def test_malformed_served_calls_fail_the_check(msg, error):
    with pytest.raises(serve_check.CheckFailed, match=re.escape(error)):
        serve_check.served_text(msg)


def test_no_structured_call_fails_in_one_line_with_the_rates():
    # the demo model today: 26 items, no reply the hermes parser could take a call from
    line = serve_check.verdict([False] * 26, 0, [True] + [False] * 25)
    assert line == ("0/26 replies came back with structured tool_calls (exact match: served 0/26 = 0.000, "
                    "transformers 1/26 = 0.038): the model wrote no <tool_call> block for vLLM's hermes parser, "
                    "so the tool-call round trip is unverified")
    assert serve_check.verdict([False, False], 0, None) == (
        "0/2 replies came back with structured tool_calls (exact match: served 0/2 = 0.000): the model wrote no "
        "<tool_call> block for vLLM's hermes parser, so the tool-call round trip is unverified")
    assert serve_check.verdict([True, False], 1, [True, True]) is None  # one structured reply verifies the trip


def test_server_start_failure_is_one_line_naming_the_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("INFO starting\nValueError: no such model\n\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(serve_check.CheckFailed) as e:
        serve_check.wait_ready(proc, serve_check.free_port(), 5, log)
    assert str(e.value) == f"the server exited with 3 during start-up (last log line: 'ValueError: no such model'; log: {log})"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_stop_server_ends_the_whole_process_group():
    # a stand-in server that forks a worker, as vLLM's API server forks its engine core
    code = "import subprocess, sys, time; p = subprocess.Popen(['sleep', '300']); print(p.pid, flush=True); time.sleep(300)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    child = int(proc.stdout.readline())
    assert _alive(proc.pid) and _alive(child)
    serve_check.stop_server(proc)
    assert proc.returncode is not None and not _alive(child)
