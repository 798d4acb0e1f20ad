"""hermes3.recipe.selection on fake score tables: the LR and the epoch the report's rules pick."""

import json
from pathlib import Path

import pandas as pd
import pytest

import hermes3.recipe.selection as selection
import hermes3.train.sft
from hermes3.eval.tasks import STANDIN_GROUPS
from hermes3.train.sft import SFTConfig


def _fake_scores(table: dict):
    """`_group_scores` returning ``table[model folder name]`` for every task and group."""
    def scores(model_dir, data_dir, groups, limit, out_dir=None):
        v = table[Path(model_dir).name if Path(model_dir).name != "final" else Path(model_dir).parent.name]
        return pd.Series({**{t: v for g in groups for t in STANDIN_GROUPS[g]}, **{g: v for g in groups}})
    return scores


def test_lr_search_picks_the_best_group_score_and_breaks_ties_by_loss(tmp_path, monkeypatch):
    monkeypatch.setattr(selection.pipeline, "sft", lambda cfg: Path(cfg.output_dir))
    losses = {"lr-0.0001": 2.0, "lr-0.001": 1.5, "lr-0.01": 1.0}
    monkeypatch.setattr(hermes3.train.sft, "read_metrics", lambda run: pd.DataFrame({"loss": [losses[Path(run).name]] * 5}))
    cfg = SFTConfig(name="t", output_dir=str(tmp_path / "x" / "run"))
    monkeypatch.setattr(selection, "_group_scores", _fake_scores({"lr-0.0001": 0.2, "lr-0.001": 0.6, "lr-0.01": 0.4}))
    scores, best = selection.lr_search(cfg, [1e-4, 1e-3, 1e-2], tmp_path, root=tmp_path / "lr", metric="benchmarks")
    assert best == 1e-3 and list(scores.gpt4all_standin) == [0.2, 0.6, 0.4]
    assert list(scores.train_loss) == [2.0, 1.5, 1.0]
    # a tie on the group goes to the lower final training loss
    monkeypatch.setattr(selection, "_group_scores", _fake_scores({"lr-0.0001": 0.6, "lr-0.001": 0.6, "lr-0.01": 0.4}))
    assert selection.lr_search(cfg, [1e-4, 1e-3, 1e-2], tmp_path, root=tmp_path / "lr", metric="benchmarks")[1] == 1e-3


def test_epoch_table_applies_the_min_max_rule(tmp_path, monkeypatch):
    run = tmp_path / "run"
    for step, epoch in ((10, 1.0), (20, 2.0), (30, 3.0)):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "COMPLETE").write_text(json.dumps({"step": step, "epoch": epoch}))
    per_epoch = {"checkpoint-10": {"gpt4all_standin": 0.5, "agieval_standin": 0.1, "ifeval_standin": 0.2, "mtbench_standin": 0.0},
                 "checkpoint-20": {"gpt4all_standin": 0.4, "agieval_standin": 0.3, "ifeval_standin": 0.3, "mtbench_standin": 0.5},
                 "checkpoint-30": {"gpt4all_standin": 0.3, "agieval_standin": 0.2, "ifeval_standin": 0.4, "mtbench_standin": 0.4}}

    def scores(model_dir, data_dir, groups, limit, out_dir=None):
        v = per_epoch[Path(model_dir).name]
        return pd.Series({**{t: v[g] for g in groups for t in STANDIN_GROUPS[g]}, **v})

    monkeypatch.setattr(selection, "_group_scores", scores)
    monkeypatch.setenv("HERMES3_WORKERS", "1")  # the fake lives in this process only
    table, sel = selection.epoch_table(run, tmp_path)
    # by hand: normalised (GPT4All, AGIEval, IFEval, MT-Bench) per epoch, x100, averaged
    # epoch 1: (100, 0, 0, 0) -> 25; epoch 2: (50, 100, 50, 100) -> 75; epoch 3: (0, 50, 100, 80) -> 57.5
    assert list(table.columns) == ["epoch_1", "epoch_2", "epoch_3"]
    assert [round(x, 6) for x in table.loc["Total Score"]] == [25.0, 75.0, 57.5]
    assert sel.best == "epoch_2"


def test_epoch_table_on_likelihood_groups_categories(tmp_path, monkeypatch):
    """metric="likelihood": each group is the mean held-out log-prob per token of its synthetic
    categories' items; the same min-max rule then picks the epoch."""
    import hermes3.eval.heldout

    run = tmp_path / "run"
    for step, epoch in ((10, 1.0), (20, 2.0)):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "COMPLETE").write_text(json.dumps({"step": step, "epoch": epoch}))
    seen = []

    def scores(model_dir, data_dir, categories, limit=None, *, split):
        assert split == "validation"  # a choice reads the validation split only
        seen.append(sorted(categories))
        better = Path(model_dir).name == "checkpoint-20"
        rows = [{"id": f"{c}-{i}", "category": c, "mean_logprob": -1.0 - i + (0.5 if better and c != "math" else 0.0)}
                for c in categories for i in range(2)]
        return pd.DataFrame(rows)

    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", scores)
    monkeypatch.setenv("HERMES3_WORKERS", "1")  # the fake lives in this process only
    table, sel = selection.epoch_table(run, tmp_path, metric="likelihood")
    assert seen[0] == ["coding", "content_generation", "domain_expert", "general", "math", "roleplay", "steering",
                       "tool_use"]
    assert table.loc["GPT4All", "epoch_1"] == -1.5 and table.loc["GPT4All", "epoch_2"] == -1.0
    assert table.loc["AGIEval", "epoch_2"] == -1.25        # math unchanged, coding +0.5: mean of 4 items
    assert table.loc["hermes_math", "epoch_2"] == -1.5
    assert list(table.loc["Total Score"]) == [0.0, 100.0] and sel.best == "epoch_2"
    # with a cache folder: each checkpoint scored once, the same table, read back on a second call
    (tmp_path / "manifest.json").write_text("{}")  # the data build's manifest names the cache files
    for step in (10, 20):
        (run / f"checkpoint-{step}" / "config.json").write_text(json.dumps({"step": step}))
    seen.clear()
    cached, _ = selection.epoch_table(run, tmp_path, metric="likelihood", cache=tmp_path / "held")
    pd.testing.assert_frame_equal(cached, table)
    assert len(seen) == 2 and len(list((tmp_path / "held").glob("*.csv"))) == 2
    pd.testing.assert_frame_equal(selection.epoch_table(run, tmp_path, metric="likelihood", cache=tmp_path / "held")[0],
                                  table)
    assert len(seen) == 2
    with pytest.raises(ValueError, match="metric must be"):
        selection.epoch_table(run, tmp_path, metric="loss")


def test_epoch_table_without_checkpoints_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no complete epoch checkpoints"):
        selection.epoch_table(tmp_path, tmp_path)
