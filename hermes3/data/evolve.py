"""A procedural analogue of Evol-Instruct: deterministically deepen a seed task.

The report built domain data with "generation schemes inspired by Evol-Instruct", where an
LLM rewrites a seed instruction to be harder (add constraints, deepen reasoning, widen the
input). We have no LLM, so each operator rewrites the task *and* its reference answer and
check together, keeping every evolved task verifiable:

* math: one more reasoning step (a new operation before the question; the worked steps and
  the answer extend);
* tool use: distractor tools join the tool list (the right one must still be chosen);
* coding: the function must carry a docstring (checked next to the unit tests);
* text categories: the instruction demands a word that the answer then must contain.

>>> import random
>>> from hermes3.data.synthetic import generate
>>> t = evolve(generate("math", random.Random(3)), random.Random(3))
>>> t.meta["evolved"], t.meta["steps"]
(1, 3)
"""

from __future__ import annotations

import copy
import random
import re

from hermes3.data.synthetic import TOOLS, Task, gen_coding

_WORD = re.compile(r"[a-z]{5,}")


def _evolve_math(t: Task, rng) -> Task:
    m = re.search(r"<SOLUTION>(\d+)</SOLUTION>", t.reference)
    x = int(m.group(1))
    b = rng.randint(2, 9)
    q = t.messages[-2]["content"]
    k = q.rindex(" How many ")
    t.messages[-2]["content"] = q[:k] + f" Then {b} more arrive." + q[k:]
    # The worked steps end with "So <name> has <x> <item> now."; the new step goes before it.
    lines = t.reference.split("\n")
    k = lines.index("</SCRATCHPAD>")
    lines[k - 1:k] = [f"{b} more arrive: {x} + {b} = {x + b}", lines[k - 1].replace(f" {x} ", f" {x + b} ")]
    t.messages[-1]["content"] = "\n".join(lines).replace(f"<SOLUTION>{x}</SOLUTION>", f"<SOLUTION>{x + b}</SOLUTION>")
    t.check = {"kind": "number", "answer": x + b}
    t.meta["steps"] = t.meta.get("steps", 2) + 1
    return t


def _evolve_tools(t: Task, rng) -> Task:
    have = {tool["function"]["name"] for tool in t.tools or []}
    extra = [n for n in sorted(TOOLS) if n not in have]
    if t.tools is None or not extra:
        return _evolve_keyword(t, rng)
    t.tools = sorted(t.tools + [TOOLS[rng.choice(extra)]], key=lambda tool: tool["function"]["name"])
    return t


def _evolve_coding(t: Task, rng) -> Task:
    if t.meta.get("docstring"):
        return t
    fn = t.meta["function"]
    # Re-draw the same function with a docstring, keeping the rest of the task.
    for _ in range(1000):
        new = gen_coding(rng, docstring=True)
        if new.meta["function"] == fn:
            return Task("coding", new.messages, None, new.check, {**t.meta, **new.meta})
    return t


def _evolve_keyword(t: Task, rng) -> Task:
    asked = t.messages[-2]["content"].lower()
    words = sorted(w for w in set(_WORD.findall(t.reference.lower())) if w not in asked)
    if not words or t.tools is not None:
        return t
    w = rng.choice(words)
    t.messages[-2]["content"] += f" Make sure your answer includes the word '{w}'."
    t.check = {"kind": "all", "checks": [t.check, {"kind": "constraints", "constraints": [{"type": "keyword", "word": w}]}]}
    return t


def evolve(task: Task, rng: random.Random, depth: int = 1) -> Task:
    """A deeper copy of ``task`` (the original is untouched); ``meta["evolved"]`` counts
    the rounds applied."""
    t = copy.deepcopy(task)
    for _ in range(depth):
        if t.category == "math":
            t = _evolve_math(t, rng)
        elif t.category == "tool_use":
            t = _evolve_tools(t, rng)
        elif t.category == "coding":
            t = _evolve_coding(t, rng)
        else:
            t = _evolve_keyword(t, rng)
        t.meta["evolved"] = t.meta.get("evolved", 0) + 1
    return t
