"""hermes3.eval.compare: the exact McNemar test and the per-task pairing of two eval results."""

import math

import pandas as pd
import pytest

from hermes3.eval.compare import accuracies, mcnemar_p, paired, wilson
from hermes3.eval.evaluate import EvalResult


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


def test_wilson_by_hand():
    # 8/10, z = 1.959964: centre (0.8 + z^2/20) / (1 + z^2/10) = 0.716740, half-width
    # z * sqrt(0.8 * 0.2 / 10 + z^2 / 400) / (1 + z^2/10) = 0.226578
    assert wilson(8, 10) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    # 0/20: the low end is 0 and the high end z^2/20 / (1 + z^2/20) = 0.161125 (the normal interval is 0 wide)
    assert wilson(0, 20) == pytest.approx((0.0, 0.161125), abs=1e-6)
    lo, hi = wilson(2, 10)
    assert (lo, hi) == pytest.approx((1 - wilson(8, 10)[1], 1 - wilson(8, 10)[0]))  # symmetric in k <-> n - k
    assert all(math.isnan(x) for x in wilson(0, 0))
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson(11, 10)


def test_accuracies_pool_groups_and_subsets_per_model():
    def two_tasks(t, u):
        table = pd.DataFrame([{"task": name, "metric": "acc", "primary": True} for name in ("t", "u")])
        return EvalResult(table, {}, {name: [{"doc_id": i, "acc": x} for i, x in enumerate(xs)]
                                      for name, xs in (("t", t), ("u", u))})

    a, b = two_tasks([1, 1, 0, 0], [1] * 6), two_tasks([0, 0, 0, 0], [0, 1, 0, 0, 0, 0])
    acc = accuracies({"A": a, "B": b}, {"g": ["t", "u"]}, subsets={"first two": ("t", [0, 1])})
    assert list(acc.task) == ["g", "first two", "g", "first two"] and list(acc.model) == ["A", "A", "B", "B"]
    row = acc.iloc[0]
    assert (row["items"], row["correct"], row["accuracy"]) == (10, 8, 0.8)  # 2 of 4 and 6 of 6, pooled
    assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(wilson(8, 10))
    assert list(acc.correct) == [8, 2, 1, 0] and list(acc["items"]) == [10, 2, 10, 2]
    with pytest.raises(KeyError):  # a result without the task
        accuracies({"B": _result("t", [0])}, {"g": ["t", "u"]})
    with pytest.raises(ValueError, match="other than 0 and 1"):
        accuracies({"C": _result("t", [0.5, 1.0])}, {"g": ["t"]})


def test_paired_likelihood_by_hand():
    """Two groups of one category each, plus `all`: means, differences, counts and the sign
    test computed by hand (the interval is a bootstrap; a constant difference pins it)."""
    import pandas as pd

    from hermes3.eval.compare import paired_likelihood

    a = pd.DataFrame({"id": ["g1", "g2", "g3", "m1", "m2"], "category": ["general"] * 3 + ["math"] * 2,
                      "mean_logprob": [-2.0, -1.0, -3.0, -1.0, -1.0]})
    b = pd.DataFrame({"id": ["m2", "m1", "g3", "g2", "g1"], "category": ["math", "math"] + ["general"] * 3,
                      "mean_logprob": [-1.0, -0.5, -2.0, -2.0, -1.0]})  # rows in another order: matched by id
    t = paired_likelihood(a, b, {"gpt4all": ["general"], "agieval": ["math"]})
    assert list(t.index) == ["gpt4all", "agieval", "all"]
    g = t.loc["gpt4all"]
    assert (g["items"], g["A"], g["B"]) == (3, -2.0, -5.0 / 3)
    assert abs(g["diff"] - 1.0 / 3) < 1e-12                    # (+1 -1 +1) / 3
    assert (g["B higher"], g["A higher"], g["p (sign test)"]) == (2, 1, 1.0)
    m = t.loc["agieval"]
    assert (m["diff"], m["B higher"], m["A higher"]) == (0.25, 1, 0)   # one tie: not counted
    assert t.loc["all", "items"] == 5 and (t.loc["all", "B higher"], t.loc["all", "A higher"]) == (3, 1)
    same = paired_likelihood(a, a.assign(mean_logprob=a.mean_logprob + 0.5), {"g": ["general", "math"]})
    assert (same.loc["g", "ci95_low"], same.loc["g", "ci95_high"]) == (0.5, 0.5)


def test_paired_likelihood_rejects_different_items():
    import pandas as pd
    import pytest

    from hermes3.eval.compare import paired_likelihood

    a = pd.DataFrame({"id": ["x"], "category": ["c"], "mean_logprob": [-1.0]})
    with pytest.raises(ValueError, match="different held-out items"):
        paired_likelihood(a, a.assign(id=["y"]), {"g": ["c"]})


def test_tool_call_functions_scores_the_chosen_functions_only(tmp_path):
    # Three eval items: two tool-call items and one answer item; generations written by hand.
    import json

    from hermes3.eval.toolcalls import tool_call_functions

    (tmp_path / "eval" / "test").mkdir(parents=True)
    items = [{"check": {"kind": "tool_calls", "calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}},
             {"check": {"kind": "contains", "all": ["12"]}},
             {"check": {"kind": "tool_calls", "calls": [{"name": "get_weather", "arguments": {"city": "Lima"}},
                                                        {"name": "get_weather", "arguments": {"city": "Oslo"}}]}}]
    (tmp_path / "eval" / "test" / "tool_use.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    call = '<tool_call>\n{{"name": "{}", "arguments": {{"city": "{}"}}}}\n</tool_call>'
    gens = [call.format("get_weather", "Paris"),                       # right function, wrong city
            "It is 12 degrees.",
            call.format("get_weather", "Lima")]                        # one of two calls
    res = EvalResult(pd.DataFrame(), {}, {"hermes_tool_use": [
        {"doc_id": i, "acc": 0.0, "filtered_resps": [g]} for i, g in enumerate(gens)]})
    assert tool_call_functions(res, tmp_path) == {0: 1.0, 2: 0.0}
    res.samples["hermes_tool_use"][0]["filtered_resps"] = ['{"name": "get_weather", "arguments": {}}']  # no tags
    assert tool_call_functions(res, tmp_path)[0] == 0.0
    # As a `paired` subset: the per-item function scores are paired like any task's.
    other = EvalResult(pd.DataFrame(), {}, {"hermes_tool_use": [
        {"doc_id": i, "acc": 0.0, "filtered_resps": [call.format("get_weather", "Oslo") * 2]} for i in range(3)]})
    row = paired(res, other, {}, subsets={"fn": (lambda r: tool_call_functions(r, tmp_path), [0, 2])}).loc["fn"]
    # item 0: A untagged, B two calls where one is expected (both 0); item 2: B right (gained)
    assert (row["items"], row["A"], row["B"], row["B only"], row["A only"]) == (2, 0.0, 0.5, 1, 0)


# --- against SciPy, on data whose resampled means spread (a constant difference pins every quantile)


def test_mcnemar_equals_scipy_binomtest():
    from scipy.stats import binomtest

    for b_only in range(0, 16):
        for a_only in range(0, 16):
            want = binomtest(b_only, b_only + a_only, 0.5).pvalue if b_only + a_only else 1.0
            assert mcnemar_p(b_only, a_only) == pytest.approx(want, rel=1e-9, abs=1e-15), (b_only, a_only)


def _spread(n=60, seed=1):
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.normal(-2.0, 1.0, n)
    return a, a + rng.normal(0.3, 0.8, n) + rng.exponential(0.5, n)  # a skewed, non-constant difference


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_intervals_equal_scipy_percentile_bootstrap(level):
    """Percentile intervals of the paired mean difference and of a mean, against
    ``scipy.stats.bootstrap`` (independent resamples: equal within Monte Carlo error, which is
    below 6% of the width at 20,000 resamples on 60 items); the low end is the low tail."""
    import numpy as np
    from scipy.stats import bootstrap

    from hermes3.eval.compare import bootstrap_diff, bootstrap_mean

    a, b = _spread()
    d = b - a
    ref = bootstrap((d,), np.mean, confidence_level=level, method="percentile", n_resamples=20000,
                    random_state=np.random.default_rng(7)).confidence_interval
    width = ref.high - ref.low
    for diff, lo, hi in (bootstrap_diff(a, b, iters=20000, level=level), bootstrap_mean(d, iters=20000, level=level)):
        assert diff == pytest.approx(d.mean(), rel=1e-12)
        assert lo < diff < hi
        assert abs(lo - ref.low) < 0.06 * width and abs(hi - ref.high) < 0.06 * width, (lo, hi, ref)
    # the default (95%, 2000 resamples) on the swapped pair: the interval of -d
    diff, lo, hi = bootstrap_diff(b, a)
    assert diff == pytest.approx(-d.mean()) and lo < diff < hi and hi < 0


# --- tool-call scores on hand-made items


def _tool_items(tmp_path):
    import json

    call = {"name": "get_weather", "arguments": {"city": "Oslo"}}
    kinds = ["tool_calls", "contains", "tool_calls", "tool_calls", "contains", "tool_calls"]
    items = [{"check": {"kind": k, "calls": [call]} if k == "tool_calls" else {"kind": k, "all": ["x"]}}
             for k in kinds]
    (tmp_path / "eval" / "test").mkdir(parents=True)
    (tmp_path / "eval" / "test" / "tool_use.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


def test_tool_call_accuracy_is_the_rate_on_the_chosen_items_only(tmp_path):
    from hermes3.eval.toolcalls import tool_call_accuracy, tool_call_items

    _tool_items(tmp_path)
    assert tool_call_items(tmp_path) == [0, 2, 3, 5]
    assert tool_call_items(tmp_path, limit=4) == [0, 2, 3]  # the evaluation's item limit
    acc = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]  # answer items right, tool-call items half right
    res = EvalResult(pd.DataFrame(), {}, {"hermes_tool_use": [{"doc_id": i, "acc": a} for i, a in enumerate(acc)]})
    assert tool_call_accuracy(res, [0, 2, 3, 5]) == 0.5  # 2 of the 4 tool-call items, not 4 of 6 items
    assert tool_call_accuracy(res, [0, 2, 3]) == pytest.approx(2 / 3)
    assert tool_call_accuracy(res, [2]) == 0.0
    import math

    assert math.isnan(tool_call_accuracy(res, []))
