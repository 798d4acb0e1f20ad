"""Wrong answers for a task, of named kinds: what a checker must reject and what DPO
uses as the rejected response (a wrong answer, a broken format, an unneeded refusal,
ignoring the system prompt).

>>> import random
>>> from hermes3.data.synthetic import generate
>>> sorted(corruptions(generate("math", random.Random(0)), random.Random(0)))
['broken_format', 'refusal', 'wrong_answer']
"""

from __future__ import annotations

import json
import random
import re

from hermes3.data.synthetic import CITIES, STOCKS, Task

REFUSAL = "I'm sorry, but I can't help with that request."


def _bump_last(text: str, value) -> str:
    """Replace the last occurrence of ``value`` with a different number."""
    s = str(value)
    k = text.rfind(s)
    new = str(value + 7) if isinstance(value, (int, float)) else s + "0"
    return text[:k] + new + text[k + len(s):]


def _other(value, rng):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + rng.randint(1, 9)
    pool = [c for c in CITIES + STOCKS if c != value]
    return rng.choice(pool)


def _wrong(spec: dict, ref: str, task: Task, rng) -> str:
    kind = spec["kind"]
    if kind == "all":
        return _wrong(spec["checks"][0], ref, task, rng)
    if kind == "number":
        return _bump_last(ref, spec["answer"])
    if kind == "contains":
        key = spec["all"][0]
        m = re.search(r"\d+", key)
        bad = key[:m.start()] + str(int(m.group()) + 1) + key[m.end():] if m else "unknown"
        return ref.replace(key, bad) if key in ref else "unknown"
    if kind == "tool_calls":
        calls = json.loads(json.dumps(spec["calls"]))
        arg = sorted(calls[0]["arguments"])[0]
        calls[0]["arguments"][arg] = _other(calls[0]["arguments"][arg], rng)
        return "\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in calls)
    if kind == "json":
        obj = json.loads(ref)
        k = sorted(spec["values"])[0]
        obj[k] = _other(obj[k], rng)
        return json.dumps(obj)
    if kind == "citations":
        good = spec["doc_ids"][0]
        return ref.replace(f"<co: {good}>", f"<co: {int(good) % 3 + 1}>").replace(f"Documents: {good}",
                                                                               f"Documents: {int(good) % 3 + 1}")
    if kind == "python":
        return re.sub(r"(def \w+\(.*?\):\n)(?:.*\n)*?(?=</SOLUTION>)", r"\1    return None\n", ref, count=1)
    if kind == "constraints":
        c = spec["constraints"][0]
        t = c["type"]
        if t == "lowercase":
            return ref[:1].upper() + ref[1:].replace(" ", " The ", 1)
        if t == "bullets":
            return "\n".join(ref.splitlines()[:-1]) if c["n"] > 1 else ref + "\n- and more"
        if t == "keyword":
            return re.sub(re.escape(c["word"]), "", ref, flags=re.I)
        if t == "starts_with":
            return ref[len(c["text"]):].lstrip()
        if t == "ends_with":
            return ref.rstrip()[: -len(c["text"])].rstrip()
        if t == "lines":
            return ref + "\nand one line more"
        if t in ("title_case", "max_words"):
            return ref.lower() + " and a much longer tail of words"
        if t == "json_object":
            return "answer: " + ref
    raise ValueError(f"no wrong answer for check {spec}")


def _broken(spec: dict, ref: str) -> str:
    kinds = {spec["kind"]} | {c["kind"] for c in spec.get("checks", [])}
    if "tool_calls" in kinds:
        return ref.replace("}\n</tool_call>", "\n</tool_call>", 1)  # invalid JSON in the call
    if "json" in kinds:
        return ref[:-1]
    if "</SOLUTION>" in ref:
        return ref.replace("</SOLUTION>", "", 1)  # unclosed tag
    return ref + "\n<SCRATCHPAD>"


def corruptions(task: Task, rng: random.Random) -> dict[str, str]:
    """At least three wrong responses for ``task``, keyed by kind."""
    ref = task.reference
    out = {"wrong_answer": _wrong(task.check, ref, task, rng), "broken_format": _broken(task.check, ref),
           "refusal": REFUSAL}
    if "plain" in task.meta:  # the answer without the persona / constraint the system prompt asked for
        out["ignore_system"] = task.meta["plain"]
    return out
