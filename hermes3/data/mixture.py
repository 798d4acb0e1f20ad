"""Build a data mixture by tokens and report it in the layout of the report's Table 1.

Table 1 gives each category's share of ~390M tokens; 69% of all tokens are output
(assistant) tokens that carry the loss. ``sample_by_tokens`` draws conversations per
category from a stream until that category's token budget is met, so the shares land on
the targets; ``table1`` measures what was built next to the report's numbers.

>>> TABLE1["math"]
(6.7, 26)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

# Report Table 1: category -> (proportion %, tokens in millions). Total 390M, 69% output.
TABLE1 = {
    "general": (60.6, 236), "domain_expert": (12.8, 50), "math": (6.7, 26), "roleplay": (6.1, 24),
    "coding": (4.5, 18), "tool_use": (4.3, 17), "content_generation": (3.0, 12), "steering": (2.5, 10),
}
TABLE1_NAMES = {
    "general": "General Instructions", "domain_expert": "Domain Expert", "math": "Math", "roleplay": "Roleplaying",
    "coding": "Coding", "tool_use": "Tool Use, Agentic, and RAG", "content_generation": "Content Generation",
    "steering": "Steering and Alignment",
}
REPORT_TOTAL_TOKENS_M, REPORT_OUTPUT_SHARE = 390, 0.69


def targets_from_shares(total_tokens: int, shares: dict[str, float] | None = None) -> dict[str, int]:
    """Token budget per category; ``shares`` in percent (default Table 1), renormalised."""
    shares = shares or {k: v[0] for k, v in TABLE1.items()}
    s = sum(shares.values())
    return {k: round(total_tokens * v / s) for k, v in shares.items()}


def sample_by_tokens(streams: dict[str, Iterator[dict]], targets: dict[str, int],
                     count: Callable[[dict], tuple[int, int]], slack: float | None = None) -> list[dict]:
    """Take records from each category's stream until its token target is met.

    ``count(record) -> (tokens, output_tokens)``; both are stored on the record as
    ``tokens`` / ``output_tokens``. A category ends within ``slack / 2`` tokens of its target
    (default slack 0.4% of the whole budget, so shares land within half a point): a record
    that would overshoot by more is skipped and a smaller one looked for. Ending on either
    side of the target keeps the total on budget, so the largest category's share does not
    shrink under the small ones' overshoot.
    Raises if a stream runs dry first.
    """
    slack = 0.004 * sum(targets.values()) if slack is None else slack
    out = []
    for cat, target in targets.items():
        got, misses = 0, 0
        for rec in streams[cat]:
            if got >= target - slack / 2:
                break
            n, n_out = count(rec)
            if got + n > target + slack / 2:
                misses += 1
                if misses > 200:  # nothing small enough is coming: stop here
                    break
                continue
            out.append({**rec, "category": cat, "tokens": n, "output_tokens": n_out})
            got += n
        if got < target - slack and misses <= 200:
            raise ValueError(f"category {cat!r}: its stream ran out at {got} of {target} tokens")
    return out


def table1(records: list[dict]):
    """Table 1 side by side: per category our tokens and share next to the report's,
    plus a total row with the output-token share (report: 69%). Returns a DataFrame."""
    import pandas as pd

    total = sum(r["tokens"] for r in records)
    rows = []
    for cat, (pct, tok_m) in TABLE1.items():
        mine = [r for r in records if r["category"] == cat]
        t = sum(r["tokens"] for r in mine)
        rows.append({"category": TABLE1_NAMES[cat], "report_%": pct, "report_tokens_M": tok_m,
                     "ours_%": round(100 * t / total, 2) if total else 0.0, "ours_tokens": t,
                     "ours_conversations": len(mine),
                     "ours_output_%": round(100 * sum(r["output_tokens"] for r in mine) / t, 1) if t else 0.0})
    out_share = sum(r["output_tokens"] for r in records) / total if total else 0.0
    rows.append({"category": "Total", "report_%": 100.0, "report_tokens_M": REPORT_TOTAL_TOKENS_M, "ours_%": 100.0,
                 "ours_tokens": total, "ours_conversations": len(records),
                 "ours_output_%": round(100 * out_share, 1)})
    df = pd.DataFrame(rows)
    df["report_output_%"] = [None] * len(TABLE1) + [100 * REPORT_OUTPUT_SHARE]
    return df
