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

For continuous per-item scores (``hermes3.eval.heldout``) the paired bootstrap gives an interval
on the mean difference: resample items with replacement, keep the pairs together.

>>> diff, lo, hi = bootstrap_diff([0.0, 0.1, 0.2, 0.3], [1.0, 1.1, 1.2, 1.3])
>>> round(diff, 6), round(lo, 6), round(hi, 6)
(1.0, 1.0, 1.0)

One model's accuracy on n items gets the Wilson score interval (``wilson``, ``accuracies``).
"""

from __future__ import annotations

from math import comb, nan, sqrt


def mcnemar_p(b_only: int, a_only: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def bootstrap_diff(a, b, iters: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired items and its percentile bootstrap interval
    (``iters`` resamples of the items, fixed ``seed``): ``(diff, low, high)``."""
    import numpy as np

    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        raise ValueError("bootstrap_diff needs at least one paired item")
    idx = np.random.default_rng(seed).integers(0, d.size, size=(iters, d.size))
    means = d[idx].mean(axis=1)
    tail = (1 - level) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def bootstrap_mean(x, iters: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``x`` and its percentile bootstrap interval: ``(mean, low, high)``.

    >>> bootstrap_mean([1.0, 1.0, 1.0])
    (1.0, 1.0, 1.0)
    """
    return bootstrap_diff([0.0] * len(x), x, iters, seed, level)


def accuracy_by_type(pairs: list[dict], by: str = "kind") -> list[dict]:
    """Held-out DPO preference accuracy by pair type, each with its 95% bootstrap interval over
    the pairs: one row per ``"<source>: <by>"`` (``synthetic: refusal``, ``hh_rlhf:
    human_preference``), one ``"<source>: all"`` for a source of several types, and ``all``.
    ``pairs``: ``heldout.json``'s ``per_pair`` (``hermes3.train.dpo``: source, kind, category and
    margin each). A tie counts half (``hermes3.train.dpo_loss.pair_accuracy``). JSON-ready rows.

    >>> pairs = [{"source": "synthetic", "kind": "refusal", "margin": 0.4},
    ...          {"source": "synthetic", "kind": "wrong_answer", "margin": 0.0},
    ...          {"source": "hh_rlhf", "kind": "human_preference", "margin": -0.2}]
    >>> for r in accuracy_by_type(pairs):
    ...     print(r["type"], r["pairs"], r["accuracy"])
    hh_rlhf: human_preference 1 0.0
    synthetic: refusal 1 1.0
    synthetic: wrong_answer 1 0.5
    synthetic: all 2 0.75
    all 3 0.5
    """
    rows = []
    for source in sorted({str(p.get("source")) for p in pairs}):
        of_source = [p for p in pairs if str(p.get("source")) == source]
        types = sorted({str(p.get(by)) for p in of_source})
        rows += [_accuracy_row(f"{source}: {t}", [p for p in of_source if str(p.get(by)) == t]) for t in types]
        if len(types) > 1:  # one type: its row is the source's total already
            rows.append(_accuracy_row(f"{source}: all", of_source))
    return (rows + [_accuracy_row("all", pairs)]) if pairs else []


def _accuracy_row(label: str, pairs: list[dict]) -> dict:
    from hermes3.train.dpo_loss import pair_accuracy  # here: the rest of this module needs no torch

    margins = [p["margin"] for p in pairs]
    acc, lo, hi = bootstrap_mean(pair_accuracy(margins).tolist())
    return {"type": label, "pairs": len(pairs), "accuracy": acc, "ci95_low": lo, "ci95_high": hi,
            "mean_margin": sum(margins) / len(margins)}


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``: ``(low, high)``; ``(nan, nan)`` for no items.

    Why Wilson and not ``p +- z * se``: our accuracies are a few percent on 45-360 items, where the
    normal interval goes below 0 and has zero width at ``k = 0``; Wilson's stays inside [0, 1].

    >>> [round(x, 4) for x in wilson(8, 10)]
    [0.4902, 0.9433]
    """
    from statistics import NormalDist

    if not 0 <= k <= n:
        raise ValueError(f"wilson needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return nan, nan
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, shrink = k / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
    # exact ends at k = 0 and k = n, where rounding would leave the interval a hair short of p
    return 0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half


def accuracies(results: dict, tasks: dict[str, list[str]], subsets: dict | None = None):
    """Accuracy of each model (``results``: name -> result) with its 95% Wilson interval, one row per
    model and group of ``tasks`` (its tasks' items pooled) or item subset (``subsets``, as in ``paired``):
    columns task, model, items, correct, accuracy, ci95_low, ci95_high. Scores must be 0 or 1.

    >>> import pandas as pd
    >>> from hermes3.eval.evaluate import EvalResult
    >>> t = pd.DataFrame([{"task": "t", "metric": "acc", "primary": True}])
    >>> r = EvalResult(t, {}, {"t": [{"doc_id": i, "acc": float(i < 8)} for i in range(10)]})
    >>> accuracies({"m": r}, {"g": ["t"]}).round(4).to_dict("records")
    [{'task': 'g', 'model': 'm', 'items': 10, 'correct': 8, 'accuracy': 0.8, 'ci95_low': 0.4902, 'ci95_high': 0.9433}]
    """
    import pandas as pd

    rows = []
    for model, result in results.items():
        for name, xs in _scores(result, tasks, subsets).items():
            if any(x not in (0.0, 1.0) for x in xs):
                raise ValueError(f"{model}, {name}: scores other than 0 and 1 have no Wilson interval")
            k, n = int(sum(xs)), len(xs)
            lo, hi = wilson(k, n)
            rows.append({"task": name, "model": model, "items": n, "correct": k, "accuracy": k / n if n else nan,
                         "ci95_low": lo, "ci95_high": hi})
    return pd.DataFrame(rows)


def _scores(result, tasks: dict[str, list[str]], subsets: dict | None) -> dict[str, list[float]]:
    """``row -> per-item scores`` of one result: each group's tasks pooled, then each subset."""
    rows = {name: [s for t in members for s in _per_item(result, t).values()] for name, members in tasks.items()}
    rows.update({name: _subset(result, parts) for name, parts in (subsets or {}).items()})
    return rows


def _subset(result, parts) -> list[float]:
    """Scores of a subset row (``paired``'s ``subsets``): ``(task, ids)`` or a list of them, where a
    task is a task name or a function ``result -> {doc_id: score}`` and ids None means every item."""
    out = []
    for task, ids in [parts] if isinstance(parts, tuple) else parts:
        score = task(result) if callable(task) else _per_item(result, task)
        out += [score[i] for i in (sorted(score) if ids is None else ids)]
    return out


def _per_item(result, task: str) -> dict:
    """``doc_id -> score`` for ``task``'s primary metric (binary for our tasks)."""
    prim = result.table[(result.table.task == task) & result.table.primary].metric
    if prim.empty:
        raise KeyError(f"task {task!r} is not in this result")
    metric = prim.iloc[0]
    return {s["doc_id"]: float(s[metric]) for s in result.samples[task]}


def paired(result_a, result_b, tasks: list[str] | dict[str, list[str]], subsets: dict | None = None):
    """One row per task plus ``all`` (items pooled): items, mean of A and B, B-only and A-only
    correct items, McNemar p-value. Both results must come from the same items.

    ``tasks`` may map group names to their tasks (one row per group, its tasks' items pooled);
    ``subsets`` adds rows over chosen items: ``{"tool calls": ("hermes_tool_use", [doc ids])}``, where
    the task may also be a function ``result -> {doc_id: score}`` (another per-item score), the ids
    None (every item), and a row may pool several: ``{"real tasks": [("gsm8k_local", None), ...]}``."""
    import pandas as pd

    groups = tasks if isinstance(tasks, dict) else {t: [t] for t in tasks}
    rows, pool_a, pool_b = [], [], []
    for name, members in groups.items():
        xs, ys = [], []
        for task in members:
            x, y = _pair(result_a, result_b, task)
            xs += x
            ys += y
        pool_a += xs
        pool_b += ys
        rows.append(_row(name, xs, ys))
    for name, parts in (subsets or {}).items():
        rows.append(_row(name, _subset(result_a, parts), _subset(result_b, parts)))
    rows.append(_row("all", pool_a, pool_b))
    return pd.DataFrame(rows).set_index("task")


def paired_likelihood(scores_a, scores_b, groups: dict[str, list[str]]):
    """B vs A on held-out reference log-likelihood (``hermes3.eval.heldout.heldout_scores`` frames of
    the same items): per group of categories plus ``all``, the mean log-prob per token of A and B,
    the paired mean difference with its 95% bootstrap interval, how many items B scores higher
    and lower, and the exact sign-test p-value (McNemar's test on the items that moved).

    >>> import pandas as pd
    >>> a = pd.DataFrame({"id": ["x", "y", "z"], "category": ["c"] * 3, "mean_logprob": [-2.0, -3.0, -1.0]})
    >>> b = a.assign(mean_logprob=a.mean_logprob + 0.5)
    >>> r = paired_likelihood(a, b, {"g": ["c"]}).loc["g"]
    >>> float(r["diff"]), int(r["B higher"]), int(r["A higher"]), float(r["p (sign test)"])
    (0.5, 3, 0, 0.25)
    """
    import pandas as pd

    a, b = scores_a.set_index("id"), scores_b.set_index("id")
    if set(a.index) != set(b.index):
        raise ValueError("the two score tables cover different held-out items")
    rows = []
    for name, cats in [*groups.items(), ("all", [c for cs in groups.values() for c in cs])]:
        ids = sorted(a.index[a.category.isin(cats)])
        xs, ys = a.loc[ids, "mean_logprob"].to_numpy(), b.loc[ids, "mean_logprob"].to_numpy()
        if not ids:
            continue
        d, lo, hi = bootstrap_diff(xs, ys)
        up, down = int((ys > xs).sum()), int((ys < xs).sum())
        rows.append({"task": name, "items": len(ids), "A": float(xs.mean()), "B": float(ys.mean()), "diff": d,
                     "ci95_low": lo, "ci95_high": hi, "B higher": up, "A higher": down,
                     "p (sign test)": mcnemar_p(up, down)})
    return pd.DataFrame(rows).set_index("task")


def _pair(result_a, result_b, task: str) -> tuple[list[float], list[float]]:
    a, b = _per_item(result_a, task), _per_item(result_b, task)
    if a.keys() != b.keys():
        raise ValueError(f"{task}: the two results scored different items")
    return [a[i] for i in sorted(a)], [b[i] for i in sorted(a)]


def _row(task: str, xs: list[float], ys: list[float]) -> dict:
    b_only = sum(1 for x, y in zip(xs, ys) if y > x)
    a_only = sum(1 for x, y in zip(xs, ys) if x > y)
    mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731  (a subset may be empty at smoke scale)
    return {"task": task, "items": len(xs), "A": mean(xs), "B": mean(ys), "B only": b_only,
            "A only": a_only, "p (McNemar)": mcnemar_p(b_only, a_only)}
