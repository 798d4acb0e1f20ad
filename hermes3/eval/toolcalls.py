"""Function-calling scores on the held-out ``hermes_tool_use`` items: exact match of the calls,
and the function-selection half of it (names in order, arguments not compared)."""

from __future__ import annotations

from pathlib import Path

from hermes3.data.loaders import read_records


def tool_call_items(data_dir: str | Path, limit: int | None = None) -> list[int]:
    """Doc ids (positions) of the ``hermes_tool_use`` items that are checked as tool calls: the
    right function names and arguments, parsed by ``hermes3.format.parsing`` from the generation.
    ``limit``: the same item limit the evaluation used."""
    items = read_records(Path(data_dir) / "eval" / "tool_use.jsonl")[:limit]
    return [i for i, it in enumerate(items) if it["check"]["kind"] == "tool_calls"]

def tool_call_accuracy(result, ids: list[int]) -> float:
    """Exact-match rate of ``result`` on the tool-call items ``ids`` of ``hermes_tool_use``."""
    hit = {s["doc_id"]: float(s["acc"]) for s in result.samples["hermes_tool_use"]}
    return sum(hit[i] for i in ids) / len(ids) if ids else float("nan")

def tool_call_functions(result, data_dir: str | Path, limit: int | None = None) -> dict[int, float]:
    """``doc_id -> 1.0`` where the generation's tool calls, parsed by ``hermes3.format.parsing``, name
    the expected functions in the expected order (arguments not compared), for the tool-call
    items of ``hermes_tool_use``: the function-selection half of exact match, which BFCL's
    AST metric also scores on its own. ``limit``: the item limit the evaluation used."""
    from hermes3.format.parsing import parse_tool_calls

    items = read_records(Path(data_dir) / "eval" / "tool_use.jsonl")[:limit]
    out = {}
    for s in result.samples["hermes_tool_use"]:
        check = items[s["doc_id"]]["check"]
        if check["kind"] == "tool_calls":
            got = [c["name"] for c in parse_tool_calls(s["filtered_resps"][0]).tool_calls]
            out[s["doc_id"]] = float(got == [c["name"] for c in check["calls"]])
    return out
