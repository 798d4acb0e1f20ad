"""Is model B better than model A on the same items? A paired test on per-item scores.

Our demo-scale stand-in tasks have 60-100 items each and scores of a few percent, so a
difference of means alone says little. Both models answer the *same* items, so the right
test is McNemar's: only the discordant items count (B right where A was wrong, and the
reverse), and under "no difference" each is a fair coin flip. We use the exact two-sided
binomial p-value (small counts), computed by hand: a few lines, no SciPy needed.

>>> round(mcnemar_p(b_only=14, a_only=2), 4)
0.0042
>>> mcnemar_p(0, 0)
1.0
"""

from __future__ import annotations

from math import comb


def mcnemar_p(b_only: int, a_only: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _per_item(result, task: str) -> dict:
    """``doc_id -> score`` for ``task``'s primary metric (binary for our tasks)."""
    prim = result.table[(result.table.task == task) & result.table.primary].metric
    if prim.empty:
        raise KeyError(f"task {task!r} is not in this result")
    metric = prim.iloc[0]
    return {s["doc_id"]: float(s[metric]) for s in result.samples[task]}


def paired(result_a, result_b, tasks: list[str]):
    """One row per task plus ``all`` (items pooled): items, mean of A and B, B-only and A-only
    correct items, McNemar p-value. Both results must come from the same items."""
    import pandas as pd

    rows, pool_a, pool_b = [], [], []
    for task in tasks:
        a, b = _per_item(result_a, task), _per_item(result_b, task)
        if a.keys() != b.keys():
            raise ValueError(f"{task}: the two results scored different items")
        xs, ys = [a[i] for i in sorted(a)], [b[i] for i in sorted(a)]
        pool_a += xs
        pool_b += ys
        rows.append(_row(task, xs, ys))
    rows.append(_row("all", pool_a, pool_b))
    return pd.DataFrame(rows).set_index("task")


def _row(task: str, xs: list[float], ys: list[float]) -> dict:
    b_only = sum(1 for x, y in zip(xs, ys) if y > x)
    a_only = sum(1 for x, y in zip(xs, ys) if x > y)
    return {"task": task, "items": len(xs), "A": sum(xs) / len(xs), "B": sum(ys) / len(ys), "B only": b_only,
            "A only": a_only, "p (McNemar)": mcnemar_p(b_only, a_only)}
