"""hermes3.compare: the exact McNemar test and the per-task pairing of two eval results."""

import pandas as pd
import pytest

from hermes3.compare import mcnemar_p, paired
from hermes3.evaluate import EvalResult


def test_mcnemar_exact_values():
    # 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024
    assert mcnemar_p(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_p(1, 9) == mcnemar_p(9, 1)
    assert mcnemar_p(5, 5) == 1.0 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(6, 0) == pytest.approx(2 / 64)
    # 22 gained, 6 lost: 2 * sum_{k<=6} C(28, k) / 2^28, with C(28, 0..6) = 1, 28, 378, 3276,
    # 20475, 98280, 376740 (sum 499178)
    assert mcnemar_p(22, 6) == pytest.approx(2 * 499178 / 2 ** 28, rel=1e-12)
    assert mcnemar_p(6, 22) == pytest.approx(998356 / 268435456, rel=1e-12)  # = 0.00371917, symmetric


def _result(task, scores):
    table = pd.DataFrame([{"task": task, "metric": "acc", "value": sum(scores) / len(scores), "stderr": 0.0,
                           "n": len(scores), "primary": True}])
    return EvalResult(table, {}, {task: [{"doc_id": i, "acc": s} for i, s in enumerate(scores)]})


def test_paired_counts_discordant_items_per_task_and_pooled():
    a = _result("t", [1, 0, 0, 0, 1, 0])
    b = _result("t", [1, 1, 1, 0, 0, 1])
    df = paired(a, b, ["t"])
    row = df.loc["t"]
    assert (row["items"], row["B only"], row["A only"]) == (6, 3, 1)
    assert row["A"] == pytest.approx(2 / 6) and row["B"] == pytest.approx(4 / 6)
    # 3 gained, 1 lost: 2 * P(X <= 1), X ~ Bin(4, 1/2) = 2 * (1 + 4) / 16
    assert row["p (McNemar)"] == pytest.approx(10 / 16, rel=1e-12) and df.loc["all", "B only"] == 3
    with pytest.raises(ValueError, match="different items"):
        paired(a, _result("t", [1, 0]), ["t"])
