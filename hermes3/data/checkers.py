"""Program checkers for the synthetic tasks: given what the model wrote, is it right?

A task carries a check *spec* (a plain dict, so it serialises with the data)::

    {"kind": "number", "answer": 42}
    {"kind": "contains", "all": ["Paris"]}
    {"kind": "tool_calls", "calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}
    {"kind": "json", "schema": {...JSON schema...}, "values": {"name": "Ada"}}
    {"kind": "citations", "doc_ids": ["2"], "answer": "1969"}
    {"kind": "constraints", "constraints": [{"type": "lowercase"}, {"type": "bullets", "n": 3}]}
    {"kind": "python", "tests": "assert add(1, 2) == 3"}
    {"kind": "answer_is", "answer": "(B)"}            # BIG-Bench Hard chain-of-thought
    {"kind": "all", "checks": [spec, spec, ...]}

Every check first requires a well-formed response (balanced ``<TAG>``/``<tool_call>``
blocks, no chat-control tokens). ``check`` returns ``(ok, reason)``.

>>> check({"kind": "number", "answer": 12}, "<SCRATCHPAD>3 * 4 = 12</SCRATCHPAD>\\n<SOLUTION>12</SOLUTION>")
(True, 'ok')
>>> check({"kind": "number", "answer": 12}, "<SOLUTION>13</SOLUTION>")
(False, 'number: expected 12, got 13')
"""

from __future__ import annotations

import json
import re

from hermes3.format.parsing import parse_citations, parse_tool_calls

_TAG = re.compile(r"<(/?)([A-Z][A-Z0-9_]*|tool_call|tool_response)>")
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_SOLUTION = re.compile(r"<SOLUTION>(.*?)</SOLUTION>", re.DOTALL)
_CODE_FENCE = re.compile(r"```(?:python)?\n(.*?)```", re.DOTALL)


def well_formed(text: str) -> tuple[bool, str]:
    """Balanced, properly nested tags and no chat-control tokens."""
    if "<|im_start|>" in text or "<|im_end|>" in text:
        return False, "malformed: chat control token in the response"
    stack = []
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            stack.append(name)
        elif not stack or stack.pop() != name:
            return False, f"malformed: unbalanced </{name}>"
    if stack:
        return False, f"malformed: <{stack[-1]}> not closed"
    return True, "ok"


def _last_number(text: str):
    m = _SOLUTION.search(text)
    nums = _NUMBER.findall(m.group(1) if m else text)
    if not nums:
        return None
    v = float(nums[-1].replace(",", ""))
    return int(v) if v.is_integer() else v


def _check_number(spec, text):
    got = _last_number(text)
    return (got == spec["answer"], "ok" if got == spec["answer"] else f"number: expected {spec['answer']}, got {got}")


def _check_contains(spec, text):
    low = text.lower()
    missing = [s for s in spec.get("all", []) if s.lower() not in low]
    present = [s for s in spec.get("none", []) if s.lower() in low]
    if missing:
        return False, f"contains: missing {missing[0]!r}"
    if present:
        return False, f"contains: must not contain {present[0]!r}"
    return True, "ok"


def _canon(calls):
    return sorted(json.dumps({"name": c["name"], "arguments": c["arguments"]}, sort_keys=True) for c in calls)


def _check_tool_calls(spec, text):
    parsed = parse_tool_calls(text)
    if parsed.errors:
        return False, f"tool_calls: {parsed.errors[0]}"
    if not parsed.tool_calls:
        return False, "tool_calls: no <tool_call> in the response"
    if parsed.content:
        return False, "tool_calls: text outside the tool calls"
    got, want = parsed.tool_calls, spec["calls"]
    if spec.get("ordered") and [json.dumps(c, sort_keys=True) for c in got] != [json.dumps(c, sort_keys=True) for c in want]:
        return False, "tool_calls: wrong calls or order"
    if _canon(got) != _canon(want):
        names = sorted(c["name"] for c in got)
        if names != sorted(c["name"] for c in want):
            return False, f"tool_calls: expected {sorted(c['name'] for c in want)}, got {names}"
        return False, "tool_calls: wrong arguments"
    return True, "ok"


def _check_json(spec, text):
    import jsonschema

    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError as e:
        return False, f"json: invalid ({e.msg})"
    try:
        jsonschema.validate(obj, spec["schema"])
    except jsonschema.ValidationError as e:
        return False, f"json: schema violation ({e.message[:60]})"
    for k, v in spec.get("values", {}).items():
        if obj.get(k) != v:
            return False, f"json: {k} should be {v!r}"
    return True, "ok"


def _check_citations(spec, text):
    cites = parse_citations(text)
    ids = sorted({i for c in cites for i in c.doc_ids})
    if ids != sorted(spec["doc_ids"]):
        return False, f"citations: expected docs {sorted(spec['doc_ids'])}, cited {ids}"
    if spec.get("answer") and spec["answer"].lower() not in text.lower():
        return False, f"citations: answer {spec['answer']!r} missing"
    return True, "ok"


def _bullets(text):
    return [line for line in text.splitlines() if line.lstrip().startswith(("- ", "* "))]


def _constraint(c, text):
    t = c["type"]
    if t == "lowercase":
        return text == text.lower(), "not all lowercase"
    if t == "bullets":
        n = len(_bullets(text))
        return n == c["n"], f"{n} bullets, expected {c['n']}"
    if t == "keyword":
        return c["word"].lower() in text.lower(), f"keyword {c['word']!r} missing"
    if t == "starts_with":
        return text.startswith(c["text"]), f"does not start with {c['text']!r}"
    if t == "ends_with":
        return text.rstrip().endswith(c["text"]), f"does not end with {c['text']!r}"
    if t == "max_words":
        n = len(text.split())
        return n <= c["n"], f"{n} words, at most {c['n']} allowed"
    if t == "lines":
        n = len([ln for ln in text.splitlines() if ln.strip()])
        return n == c["n"], f"{n} lines, expected {c['n']}"
    if t == "title_case":
        words = [w for w in text.strip().split() if w[:1].isalpha()]
        return bool(words) and all(w[0].isupper() for w in words), "not in Title Case"
    if t == "json_object":
        try:
            return isinstance(json.loads(text), dict), "not a JSON object"
        except json.JSONDecodeError:
            return False, "not valid JSON"
    raise ValueError(f"unknown constraint type {t!r}")


def _check_constraints(spec, text):
    for c in spec["constraints"]:
        ok, why = _constraint(c, text)
        if not ok:
            return False, f"constraint {c['type']}: {why}"
    return True, "ok"


def extract_code(text: str) -> str:
    """Code from ``<SOLUTION>`` (the Hermes layout) or a ```python fence, else the text."""
    m = _SOLUTION.search(text) or _CODE_FENCE.search(text)
    return (m.group(1) if m else text).strip("\n")


def _check_python(spec, text):
    # the verdict is "the harness reached the end of the tests", not an exit code (harness.py)
    from hermes3.data.harness import run_tests

    code = extract_code(text)
    if not code.strip():
        return False, "python: no code"
    return run_tests(code, spec["tests"], timeout=spec.get("timeout", 5.0))


_ANSWER_IS = re.compile(r"the answer is\s*(.+?)\s*(?:\.\s*$|\.\s*\n|$)", re.IGNORECASE | re.MULTILINE)


def _check_answer_is(spec, text):
    """BIG-Bench Hard CoT: the text after the last "the answer is" must equal the target."""
    found = _ANSWER_IS.findall(text)
    got = found[-1].strip() if found else None
    return (got == spec["answer"], "ok" if got == spec["answer"] else f"answer_is: expected {spec['answer']!r}, got {got!r}")


def _check_all(spec, text):
    for sub in spec["checks"]:
        ok, why = CHECKS[sub["kind"]](sub, text)
        if not ok:
            return False, why
    return True, "ok"


CHECKS = {"number": _check_number, "contains": _check_contains, "tool_calls": _check_tool_calls,
          "json": _check_json, "citations": _check_citations, "constraints": _check_constraints,
          "python": _check_python, "answer_is": _check_answer_is, "all": _check_all}


def check(spec: dict, response: str) -> tuple[bool, str]:
    """Is ``response`` (the assistant's text) correct for the task's check ``spec``?"""
    if spec["kind"] not in CHECKS:
        raise ValueError(f"unknown check kind {spec['kind']!r}; known: {sorted(CHECKS)}")
    if not isinstance(response, str) or not response.strip():
        return False, "empty response"
    ok, why = well_formed(response)
    if not ok:
        return False, why
    return CHECKS[spec["kind"]](spec, response)
