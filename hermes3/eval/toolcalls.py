"""Function-calling scores on the held-out ``hermes_tool_use`` items: exact match of the calls,
and the function-selection half of it (names in order, arguments not compared)."""

from __future__ import annotations

from pathlib import Path

from hermes3.eval.lmeval_tasks import synthetic_items


def tool_call_items(data_dir: str | Path, limit: int | None = None, split: str = "test") -> list[int]:
    """Doc ids (positions) of the ``hermes_tool_use`` items that are checked as tool calls: the
    right function names and arguments, parsed by ``hermes3.format.parsing`` from the generation.
    ``limit`` and ``split``: the item limit and split the evaluation used."""
    items = synthetic_items(data_dir, "hermes_tool_use", split, limit)
    return [i for i, it in enumerate(items) if it["check"]["kind"] == "tool_calls"]

def tool_call_accuracy(result, ids: list[int]) -> float:
    """Exact-match rate of ``result`` on the tool-call items ``ids`` of ``hermes_tool_use``."""
    hit = {s["doc_id"]: float(s["acc"]) for s in result.samples["hermes_tool_use"]}
    return sum(hit[i] for i in ids) / len(ids) if ids else float("nan")

def tool_call_functions(result, data_dir: str | Path, limit: int | None = None, split: str = "test") -> dict[int, float]:
    """``doc_id -> 1.0`` where the generation's tool calls, parsed by ``hermes3.format.parsing``, name
    the expected functions in the expected order (arguments not compared), for the tool-call
    items of ``hermes_tool_use``: the function-selection half of exact match, which BFCL's
    AST metric also scores on its own. ``limit``: the item limit the evaluation used."""
    from hermes3.format.parsing import parse_tool_calls

    items = synthetic_items(data_dir, "hermes_tool_use", split, limit)
    out = {}
    for s in result.samples["hermes_tool_use"]:
        check = items[s["doc_id"]]["check"]
        if check["kind"] == "tool_calls":
            got = [c["name"] for c in parse_tool_calls(s["filtered_resps"][0]).tool_calls]
            out[s["doc_id"]] = float(got == [c["name"] for c in check["calls"]])
    return out


def call_type(check: dict) -> str:
    """A tool-call item's type: its function, and how many calls it expects (parallel calls). The
    last call of a multi-round session counts as its function's type (the same call to write).

    >>> call_type({"kind": "tool_calls", "calls": [{"name": "get_weather"}, {"name": "get_weather"}]})
    'get_weather x2 (parallel)'
    >>> call_type({"kind": "tool_calls", "calls": [{"name": "convert_currency"}]})
    'convert_currency'
    """
    names = [c["name"] for c in check["calls"]]
    if len(names) == 1:
        return names[0]
    if len(set(names)) == 1:
        return f"{names[0]} x{len(names)} (parallel)"
    return " + ".join(names) + " (parallel)"


def tool_call_types(results: dict, data_dir: str | Path, limit: int | None = None, split: str = "test"):
    """Per call type (``call_type``) of the held-out tool-call items: how many, and for each
    model in ``results`` (``{name: EvalResult}``) the items whose calls match exactly and those
    naming the right functions, as integers. A DataFrame indexed by type, plus ``all``."""
    import pandas as pd

    items = synthetic_items(data_dir, "hermes_tool_use", split, limit)
    ids = tool_call_items(data_dir, limit, split)
    types = {i: call_type(items[i]["check"]) for i in ids}
    cols = {}
    for name, res in results.items():
        exact = {s["doc_id"]: float(s["acc"]) for s in res.samples["hermes_tool_use"]}
        funcs = tool_call_functions(res, data_dir, limit, split)
        cols[f"{name}: exact"], cols[f"{name}: right functions"] = exact, funcs
    rows = []
    for t in [*sorted(set(types.values())), "all"]:
        members = [i for i in ids if t in ("all", types[i])]
        rows.append({"call type": t, "items": len(members),
                     **{c: int(sum(v[i] for i in members)) for c, v in cols.items()}})
    return pd.DataFrame(rows).set_index("call type")
