"""Synthetic tasks: checkers accept references and reject corruptions; format round-trips."""

import random

import pytest

from hermes3.data.checkers import check, well_formed
from hermes3.data.corrupt import corruptions
from hermes3.data.evolve import evolve
from hermes3.data.synthetic import CATEGORIES, generate
from hermes3.format.chat import assistant_text, render, validate
from hermes3.format.parsing import parse_tool_calls


def _tasks(cat, n, seed=0):
    rng = random.Random(seed)
    return [generate(cat, rng) for _ in range(n)], rng


@pytest.mark.parametrize("cat", CATEGORIES)
def test_checker_accepts_reference_and_rejects_three_kinds_of_corruption(cat):
    tasks, rng = _tasks(cat, 8 if cat == "coding" else 40)
    for t in tasks + [evolve(t, rng) for t in tasks[:5]]:
        assert check(t.check, t.reference) == (True, "ok"), t.reference
        bad = corruptions(t, rng)
        assert {"wrong_answer", "broken_format", "refusal"} <= set(bad)
        for kind, text in bad.items():
            ok, why = check(t.check, text)
            assert not ok, (cat, kind, text)


@pytest.mark.parametrize("cat", CATEGORIES)
def test_every_task_validates_renders_and_round_trips_tool_calls(cat):
    tasks, rng = _tasks(cat, 30, seed=1)
    for t in tasks + [evolve(t, rng, depth=2) for t in tasks[:10]]:
        validate(t.messages, t.tools)
        text = render(t.messages, t.tools)
        for m in t.messages:
            if m["role"] == "assistant":
                a = assistant_text(m)
                assert a in text and well_formed(a)[0]
                if "tool_calls" in m:
                    parsed = parse_tool_calls(a)
                    assert parsed.tool_calls == [c["function"] for c in m["tool_calls"]] and not parsed.errors


def test_generation_is_seeded():
    a = [generate(c, random.Random(7)).to_record() for c in CATEGORIES]
    b = [generate(c, random.Random(7)).to_record() for c in CATEGORIES]
    c = [generate(c, random.Random(8)).to_record() for c in CATEGORIES]
    assert a == b and a != c


def test_evolve_deepens_and_keeps_the_original():
    rng = random.Random(3)
    t = generate("math", rng)
    e = evolve(t, rng, depth=2)
    assert e.meta["steps"] == t.meta["steps"] + 2 and e.check["answer"] != t.check["answer"]
    assert "evolved" not in t.meta  # untouched
    tool = next(x for x in (generate("tool_use", rng) for _ in range(50)) if x.meta.get("kind") == "call")
    assert len(evolve(tool, rng).tools) > len(tool.tools)


def test_python_checker_contains_bad_code():
    spec = {"kind": "python", "tests": "assert f(1) == 2", "timeout": 1.0}
    assert check(spec, "<SOLUTION>\ndef f(x):\n    return x + 1\n</SOLUTION>") == (True, "ok")
    assert check(spec, "<SOLUTION>\ndef f(x):\n    while True: pass\n</SOLUTION>") == (False, "python: timed out")
    assert check(spec, "<SOLUTION>\ndef f(x) return\n</SOLUTION>")[1].startswith("python: SyntaxError")


def test_unknown_category_and_check_kind():
    with pytest.raises(ValueError, match="unknown category"):
        generate("poetry", random.Random(0))
    with pytest.raises(ValueError, match="unknown check kind"):
        check({"kind": "vibes"}, "x")


def test_session_ends_on_a_call_that_is_its_held_out_check():
    # A session: 3-7 finished rounds (request, call, result, answer), then a request whose call is
    # the conversation's last message and the item's check (held out: a call with rounds in context).
    rng = random.Random(3)
    s = next(x for x in (generate("tool_use", rng) for _ in range(100)) if x.meta.get("kind") == "session")
    roles = [m["role"] for m in s.messages]
    rounds = len(roles) // 4
    assert 4 <= rounds + 1 <= 8 and roles == ["user", "assistant", "tool", "assistant"] * rounds + ["user", "assistant"]
    last = s.messages[-1]["tool_calls"][0]["function"]
    assert s.check == {"kind": "tool_calls", "calls": [{"name": last["name"], "arguments": last["arguments"]}]}
    assert s.prompt == s.messages[:-1] and s.prompt[-1]["role"] == "user"
    assert {t["function"]["name"] for t in s.tools} == {
        m["tool_calls"][0]["function"]["name"] for m in s.messages if m.get("tool_calls")}
    assert check(s.check, assistant_text(s.messages[-1]))[0] and not check(s.check, "no call")[0]
