"""Choosing hyper-parameters the report's way: by benchmark scores of trained models.

* LR search (Fig. 2): train one model per learning rate to completion, score each on the
  GPT4All group, keep the best. The report swept 8B models over {5..10} x 1e-6 and chose
  7e-6. (transformers declined an "LR finder" because loss-based finders point at the
  wrong decade for LLM fine-tuning; scoring trained models is what Hermes did.)
* Epoch selection (Table 2): score every epoch checkpoint on GPT4All, AGIEval, IFEval and
  MT-Bench, min-max normalise each group across epochs, average, take the argmax.

At demo scale the groups are the offline stand-ins of ``hermes3.eval.evaluate``. Every choice
here is made on the held-out **validation** split (``hermes3.data.build.SPLITS``); the findings
are reported on the test split, which no choice sees.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hermes3.core.report import minmax_select
from hermes3.eval.evaluate import evaluate
from hermes3.eval.tasks import STANDIN_GROUPS, standin_categories
from hermes3.recipe import executor, pipeline
from hermes3.train.sft import SFTConfig, epoch_checkpoints

TABLE2_GROUPS = {"GPT4All": "gpt4all_standin", "AGIEval": "agieval_standin", "IFEval": "ifeval_standin",
                 "MT-Bench": "mtbench_standin"}


def _group_scores(model_dir, data_dir, groups: list[str], limit, out_dir=None, split: str = "validation"):
    tasks = sorted({t for g in groups for t in STANDIN_GROUPS[g]})
    res = evaluate(model_dir, tasks, data_dir=data_dir, limit=limit, out_dir=out_dir, split=split)
    return res.table[res.table.primary].set_index("task").value


def lr_search(cfg: SFTConfig, lrs: list[float], data_dir: str | Path, group: str = "gpt4all_standin",
              limit: int | None = None, root: str | Path | None = None, metric: str = "likelihood"):
    """Train ``cfg`` once per learning rate (to completion), score each on ``group`` (validation
    split), and pick with ``select_lr``, the rule notebook 03 (``Recipe.lr_search``) applies too.
    ``metric="likelihood"`` (the notebook's): the mean log-probability per token of the held-out
    reference answers of the group's synthetic categories; ``"benchmarks"``: the group's tasks by
    generation. Returns ``(scores, best_lr)``: one row per LR with the group score (and its
    categories or tasks) and the run's final training loss (mean of its last 5 logged steps).
    Runs go to ``root/lr-<lr>`` (default ``runs/lr_search/<cfg.name>``), reused when built from the
    same config."""
    import pandas as pd

    from hermes3.train.sft import read_metrics

    if metric not in ("likelihood", "benchmarks"):
        raise ValueError(f"metric must be 'likelihood' or 'benchmarks', got {metric!r}")
    if metric == "likelihood":
        from hermes3.eval.heldout import require_items

        require_items(data_dir, standin_categories([group])[group], ["validation"])  # before any run trains
    root = Path(root) if root else cfg.output().parent.parent / "lr_search" / cfg.name
    rows = []
    for lr in lrs:
        run = root / f"lr-{lr:g}"
        pipeline.sft(replace(cfg, lr=lr, output_dir=str(run), name=f"{cfg.name}-lr{lr:g}", save_each_epoch=False))
        if metric == "likelihood":
            from hermes3.eval.heldout import heldout_scores

            cats = standin_categories([group])[group]
            s = heldout_scores(run / "final", data_dir, cats, limit=limit, split="validation")
            parts = {c: float(s[s.category == c].mean_logprob.mean()) for c in cats}
            score = float(s.mean_logprob.mean())
        else:
            s = _group_scores(run / "final", data_dir, [group], limit)
            parts, score = {t: s[t] for t in STANDIN_GROUPS[group]}, s[group]
        rows.append({"lr": lr, **parts, group: score, "train_loss": float(read_metrics(run).loss.tail(5).mean())})
    df = pd.DataFrame(rows)
    return df, select_lr(df, group)


def select_lr(scores, group: str) -> float:
    """The LR with the best ``group`` score, as the report chose; a tie (common with small
    stand-in tasks) goes to the lower final training loss, then to the smaller LR.

    >>> import pandas as pd
    >>> select_lr(pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2], "g": [0.5, 0.5, 0.4], "train_loss": [2.0, 1.5, 1.0]}), "g")
    0.001
    """
    best = scores[scores[group] == scores[group].max()]
    return float(best.sort_values(["train_loss", "lr"]).lr.iloc[0])


def _group_likelihoods(model_dir, data_dir, limit, cache=None, split: str = "validation") -> dict:
    """Per stand-in group (and per category): the mean held-out log-probability per reference
    token of the group's synthetic categories (``hermes3.eval.heldout``) on ``split``; higher is
    better. With a ``cache`` folder, every category is scored once per model (``heldout.heldout_cached``)."""
    from hermes3.eval.heldout import heldout_cached, heldout_scores

    cats = standin_categories(TABLE2_GROUPS.values())
    wanted = sorted({c for cs in cats.values() for c in cs})
    if cache is not None:
        s = heldout_cached(model_dir, data_dir, split, limit, cache)
        s = s[s.category.isin(wanted)]
    else:
        s = heldout_scores(model_dir, data_dir, wanted, limit=limit, split=split)
    by_cat = s.groupby("category").mean_logprob.mean()
    return {g: float(s[s.category.isin(cs)].mean_logprob.mean()) for g, cs in cats.items()} | {
        f"hermes_{c}": float(v) for c, v in by_cat.items()}


GENERATION = " (generation)"  # suffix of Table 2's generation-scored rows beside the likelihood ones


def _checkpoint_scores(job: tuple) -> dict:
    """One epoch checkpoint's Table 2 scores on validation: the groups by ``metric``, and with
    ``generation_limit`` the four groups by generation too (``GENERATION`` rows)."""
    metric, ckpt, data_dir, limit, cache, generation_limit = job
    groups = list(TABLE2_GROUPS.values())
    if metric == "benchmarks":
        return dict(_group_scores(ckpt, data_dir, groups, limit, out_dir=Path(ckpt) / "eval"))
    out = _group_likelihoods(ckpt, data_dir, limit, cache)
    if generation_limit is not None:
        out |= {f"{t}{GENERATION}": v for t, v in _group_scores(ckpt, data_dir, groups, generation_limit).items()}
    return out


def epoch_table(run_dir: str | Path, data_dir: str | Path, limit: int | None = None, metric: str = "benchmarks",
                cache: str | Path | None = None, generation_limit: int | None = None):
    """Table 2 for our run, on the validation split: per epoch checkpoint the four groups and
    their members, their min-max normalised scores and the total; returns ``(table, selection)``
    (``selection.best`` is the epoch; ``tradeoff(table)`` says whether the groups disagree).

    ``metric="benchmarks"`` scores the groups' tasks by generation (the report's way);
    ``"likelihood"`` by held-out answer log-likelihood per group, the continuous stand-in that
    moves at demo scale, where generated answers sit near the floor. The min-max rule is the
    same either way: it only needs higher to be better. ``cache``: a folder for the likelihood
    scores (``heldout.heldout_cached``), shared with the later stages that score the same model.
    ``generation_limit`` (likelihood only): also score the four groups by generation on that many
    validation items per task, as rows ``<group> (generation)`` beside the selection (not in it)."""
    import pandas as pd

    if metric not in ("benchmarks", "likelihood"):
        raise ValueError(f"metric must be 'benchmarks' or 'likelihood', got {metric!r}")
    ckpts = epoch_checkpoints(run_dir)
    # The checkpoints are independent: scored side by side (hermes3.recipe.executor), one per core.
    scores = executor.run_all(_checkpoint_scores, [(metric, ckpt, data_dir, limit, cache, generation_limit)
                                                   for _, ckpt in ckpts],
                              desc="scoring epoch checkpoints", names=[Path(c).name for _, c in ckpts])
    rows = {}
    for (epoch, _), s in zip(ckpts, scores):
        if metric == "likelihood":
            members = [t for t in s if t not in TABLE2_GROUPS.values() and not t.endswith(GENERATION)]
            members += [f"{name}{GENERATION}" for name, g in TABLE2_GROUPS.items() if f"{g}{GENERATION}" in s]
            s = s | {f"{name}{GENERATION}": s[f"{g}{GENERATION}"] for name, g in TABLE2_GROUPS.items()
                     if f"{g}{GENERATION}" in s}
        else:
            members = [t for g in TABLE2_GROUPS.values() for t in STANDIN_GROUPS[g]]
        rows[f"epoch_{round(epoch)}"] = {name: s[g] for name, g in TABLE2_GROUPS.items()} | {t: s[t] for t in members}
    if not rows:
        raise ValueError(f"{run_dir}: no complete epoch checkpoints")
    table = pd.DataFrame(rows)
    sel = minmax_select(table.loc[list(TABLE2_GROUPS)].T)
    for name in TABLE2_GROUPS:
        table.loc[f"normalized_{name}"] = sel.normalized[name]
    table.loc["Total Score"] = sel.total
    return table, sel


def tradeoff(table) -> dict:
    """Each Table 2 group's best epoch (its highest score; the first on a tie), for the groups the
    rule selects by and for the generation rows beside them, and whether the selecting groups
    disagree: the report's epoch 3 won through such trade-offs between groups.
    ``{"best": {row: epoch}, "tradeoff": bool}``."""
    rows = [*TABLE2_GROUPS, *(f"{n}{GENERATION}" for n in TABLE2_GROUPS if f"{n}{GENERATION}" in table.index)]
    best = {name: str(table.loc[name].astype(float).idxmax()) for name in rows}
    return {"best": best, "tradeoff": len({best[n] for n in TABLE2_GROUPS}) > 1}
