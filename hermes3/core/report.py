"""The report's numbers (``data/report/*.csv``) and its checkpoint-selection rule.

Table 2's rule (§3.6): normalise each benchmark group across epochs with min–max
((x − min) / (max − min) × 100), average the groups, pick the epoch with the highest
average. The report prints the normalised scores floored; its totals come from
unrounded inputs (epoch 3: 83.89 printed, 83.59 from the printed cells).

>>> t2 = report_table(2)
>>> scores = t2.set_index("metric").loc[["GPT4All", "AGIEval", "IFEval", "MT-Bench"], ["epoch_1", "epoch_2", "epoch_3", "epoch_4"]].T
>>> minmax_select(scores).best
'epoch_3'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hermes3.core.paths import REPO

REPORT_DIR = REPO / "data" / "report"


def report_table(n: int):
    """Report Table ``n`` (2, 3, 4 or 5) as a DataFrame."""
    import pandas as pd

    path = REPORT_DIR / f"table{n}.csv"
    if not path.exists():
        raise ValueError(f"no report table {n}; have {sorted(p.stem for p in REPORT_DIR.glob('table*.csv'))}")
    return pd.read_csv(path)


@dataclass
class Selection:
    """``normalized`` (candidates x groups, 0–100), ``total`` per candidate, ``best``."""

    normalized: object
    total: object
    best: str


def minmax_select(scores) -> Selection:
    """Min–max normalise each column (group) over the rows (epochs or runs), average the
    columns, pick the best row. A column with one distinct value normalises to 0."""
    norm = scores.copy().astype(float)
    for col in scores.columns:
        lo, hi = scores[col].min(), scores[col].max()
        norm[col] = 0.0 if hi == lo else (scores[col] - lo) / (hi - lo) * 100
    total = norm.mean(axis=1)
    if total.isna().any():
        raise ValueError("scores contain missing values")
    return Selection(norm, total, str(total.idxmax()))


def floor_display(x: float) -> int:
    """The report prints normalised scores floored (95.3 -> 95)."""
    return int(math.floor(x + 1e-9))
