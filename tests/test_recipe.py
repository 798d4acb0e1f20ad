"""hermes3.recipe.stages: each stage hands its selection to the next, and the manifest records it.

Training and scoring are replaced by fakes here (fast, and the score tables are ours to set):
a different score table must change which LR the SFT run uses and which checkpoint DPO starts
from. The smoke notebooks (tests/test_notebooks.py) run the real stages end to end.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

import hermes3.eval.heldout
import hermes3.eval.tasks
import hermes3.recipe.selection
import hermes3.train.sft
from hermes3.core.report import minmax_select
from hermes3.recipe import manifest, pipeline
from hermes3.recipe.stages import Recipe


@pytest.fixture
def recipe(tmp_path, smoke_data, monkeypatch):
    r = Recipe("smoke", root=tmp_path / "smoke")
    monkeypatch.setattr(Recipe, "data", lambda self: smoke_data)
    monkeypatch.setattr(Recipe, "base", lambda self, label=None: str(tmp_path / f"base-{label or self.preset.main}"))
    monkeypatch.setattr(Recipe, "bases", lambda self: {k: self.base(k) for k in self.preset.bases})
    monkeypatch.setattr(Recipe, "_base_path", lambda self, label: self.base(label))
    monkeypatch.setattr(Recipe, "_base_config", lambda self, label: None)  # nothing to pre-train
    monkeypatch.setenv("HERMES3_WORKERS", "1")  # the fakes below live in this process only
    trained = []

    def fake_sft(cfg):
        out = Path(cfg.output_dir)
        (out / "final").mkdir(parents=True, exist_ok=True)
        for e in (1, 2):  # two epoch checkpoints, as a 2-epoch run leaves
            (out / f"checkpoint-{e}").mkdir(exist_ok=True)
            (out / f"checkpoint-{e}" / "COMPLETE").write_text(json.dumps({"step": e, "epoch": float(e)}))
            # distinct bytes per checkpoint: held-out scores are cached by the model's digest
            (out / f"checkpoint-{e}" / "config.json").write_text(json.dumps({"run": str(out), "epoch": e}))
        trained.append(cfg)
        return out

    monkeypatch.setattr(pipeline, "sft", fake_sft)
    monkeypatch.setattr(hermes3.train.sft, "read_metrics", lambda out: pd.DataFrame({"loss": [1.0] * 5}))
    r.trained = trained
    return r


def _frame(categories, split, n, values):
    """A `heldout_scores` frame of ``n`` items per category (every other one with answer overlap)."""
    ids = [f"{c}-{split}-{i}" for c in categories for i in range(n)]
    return pd.DataFrame({"id": ids, "category": [i.split("-")[0] for i in ids], "split": split,
                         "answer_overlap": [k % 2 == 0 for k in range(len(ids))], "logprob": 0.0, "tokens": 1,
                         "mean_logprob": values})


def _scores_favouring(lr_best: float):
    """A fake `heldout_scores`: items score -2 except under the run of ``lr_best`` (-1)."""
    def scores(model_dir, data_dir, categories, limit=None, *, split):
        lr = float(Path(model_dir).parent.name.removeprefix("lr-"))
        return _frame(categories, split, 10, -1.0 if lr == lr_best else -2.0)
    return scores


def _epochs_favouring(best: str):
    def table(run_dir, data_dir, limit=None, metric="benchmarks", cache=None, generation_limit=None):
        rows = {"epoch_1": [1.0, 1.0, 1.0, 1.0], "epoch_2": [0.0, 0.0, 0.0, 0.0]}
        if best == "epoch_2":
            rows = {"epoch_1": [0.0] * 4, "epoch_2": [1.0] * 4}
        scores = pd.DataFrame(rows, index=["GPT4All", "AGIEval", "IFEval", "MT-Bench"]).T
        return scores.T, minmax_select(scores)
    return table


def test_selected_lr_flows_into_sft_and_manifest(recipe, monkeypatch):
    lo, hi = recipe.preset.lrs
    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", _scores_favouring(hi))
    scores, _, best, _ = recipe.lr_search()
    assert best == hi and list(scores.lr) == [lo, hi]
    sel = recipe.manifest()["stages"]["lr_search"]
    assert sel["selection"]["lr"] == hi and sel["selection"]["leads"][f"{lo:g}"]["lead"] == pytest.approx(1.0)
    assert sel["selection"]["leads"][f"{lo:g}"]["ci95"] == pytest.approx([1.0, 1.0])
    recipe.sft()
    assert recipe.trained[-1].lr == hi and recipe.trained[-1].save_each_epoch
    assert recipe.manifest()["stages"]["sft"]["inputs"]["lr"] == hi
    # another score table: another LR reaches SFT
    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", _scores_favouring(lo))
    recipe.lr_search()
    recipe.sft()
    assert recipe.trained[-1].lr == lo
    assert "code" in sel and "hermes3_sources" in sel["code"]


def test_selected_checkpoint_flows_into_dpo(recipe, monkeypatch):
    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", _scores_favouring(recipe.preset.lrs[0]))
    started = []

    def fake_dpo(cfg):
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        per_pair = [{"source": "synthetic", "kind": "refusal", "margin": 0.2},
                    {"source": "hh_rlhf", "kind": "human_preference", "margin": 0.0}]
        (out / "heldout.json").write_text(json.dumps({"after": {"margins": [0.2, 0.0]}, "per_pair": per_pair}))
        started.append(cfg.model)
        return out

    monkeypatch.setattr(pipeline, "dpo", fake_dpo)
    for best in ("epoch_1", "epoch_2"):
        monkeypatch.setattr(hermes3.recipe.selection, "epoch_table", _epochs_favouring(best))
        _, ckpt = recipe.epoch_selection()
        assert ckpt.name == f"checkpoint-{best[-1]}"
        recipe.dpo()
        assert started[-1] == str(ckpt)
        stage = recipe.manifest()["stages"]["dpo"]
        # paths under the recipe's root are recorded relative to it (the manifest reads the same on any machine)
        assert stage["inputs"] == {"model": str(ckpt.relative_to(recipe.root)), "model_from": "epoch_selection",
                                   "data": stage["inputs"]["data"]}
        assert manifest.resolve_path(recipe.manifest_path, stage["inputs"]["model"]) == ckpt
        assert recipe.manifest()["stages"]["epoch_selection"]["selection"]["epoch"] == best
        # held-out accuracy: a tie counts half; and by pair type (hermes3.eval.compare.accuracy_by_type)
        assert stage["results"]["heldout_accuracy"]["value"] == 0.75
        assert [(r["type"], r["accuracy"]) for r in stage["results"]["heldout_accuracy_by_type"]] == [
            ("hh_rlhf: human_preference", 0.5), ("synthetic: refusal", 1.0), ("all", 0.75)]


def test_compare_likelihood_pairs_items_and_records(recipe, monkeypatch, tmp_path):
    """Stage B vs stage A on held-out answer likelihood: scores are matched by item id, grouped by
    the stand-in groups' synthetic categories, cached by model bytes and recorded in the manifest."""
    models = {}
    for name, shift in (("base", 0.0), ("SFT", 0.5)):
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"shift": shift}))
        models[name] = d
    monkeypatch.setattr(Recipe, "stage_model", lambda self, name: models[name])
    calls = []

    def scores(model_dir, data_dir, categories, limit=None, *, split):
        calls.append((Path(model_dir).name, split))
        shift = json.loads((Path(model_dir) / "config.json").read_text())["shift"]
        return _frame(categories, split, 4, [-2.0 + shift + 0.1 * k for k in range(4 * len(categories))])

    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", scores)
    t = recipe.compare_likelihood("base", "SFT")
    groups = ["gpt4all_standin", "agieval_standin", "ifeval_standin", "mtbench_standin", "all"]
    assert list(t.index) == [(items, g) for items in ("test", "test, no answer overlap") for g in groups]
    assert t.loc[("test", "gpt4all_standin"), "items"] == 8          # general + domain_expert, 4 items each
    assert t.loc[("test, no answer overlap", "gpt4all_standin"), "items"] == 4  # the odd ones
    full = t.loc["test"]
    assert full.loc["all", "items"] == 32 and full.loc["all", "B higher"] == 32 and full.loc["all", "A higher"] == 0
    assert abs(full.loc["all", "diff"] - 0.5) < 1e-12
    recipe.compare_likelihood("base", "SFT")
    assert calls == [("base", "test"), ("SFT", "test")]     # findings on test; the second call reads the cache
    rec = recipe.manifest()["stages"]["likelihood/base -> SFT"]
    assert rec["inputs"] == {"base": str(models["base"]), "SFT": str(models["SFT"])}
    assert rec["split"] == {"results": "test"}
    assert [r["task"] for r in rec["results"]][-1] == "all"


def test_evaluations_split_into_balanced_parts_of_uncached_tasks(recipe, monkeypatch, tmp_path):
    """Each stage's uncached tasks go to one part per worker, balanced by TASK_SECONDS; cached
    tasks are not evaluated again; the parts cover each task exactly once."""
    import hermes3.recipe.stages as stages

    monkeypatch.setenv("HERMES3_WORKERS", "2")
    monkeypatch.setattr(Recipe, "stage_model", lambda self, name: tmp_path / name)
    cached = {("SFT", "agieval_local"), ("SFT", "hermes_math")}
    monkeypatch.setattr(stages, "evaluate_job", lambda args, cache_only=False: (
        "hit" if (Path(args[0]).name, args[1][0]) in cached else None))
    monkeypatch.setattr(hermes3.eval.tasks, "TASK_SECONDS", {"agieval_local": 50.0, "hermes_tool_use": 20.0})
    parts = recipe._eval_parts(["base", "SFT"])
    names = [n for _, n in parts]
    assert names == ["evaluate base (1/2)", "evaluate base (2/2)", "evaluate SFT (1/2)", "evaluate SFT (2/2)"]
    suite = set(hermes3.eval.tasks.resolve_tasks(recipe.preset.eval_suite)[0])
    base = [job[1][1] for job, _ in parts[:2]]
    sft = [job[1][1] for job, _ in parts[2:]]
    assert sorted(base[0] + base[1]) == sorted(suite)
    assert sorted(sft[0] + sft[1]) == sorted(suite - {t for _, t in cached})
    cost = lambda part: sum({"agieval_local": 50.0, "hermes_tool_use": 20.0}.get(t, 10.0) for t in part)  # noqa: E731
    assert [cost(p) for p in base] == [80.0, 80.0]  # 50 + 3 x 10 | 20 + 6 x 10 (unlisted tasks: 10 s)
    monkeypatch.setenv("HERMES3_WORKERS", "1")
    assert [n for _, n in recipe._eval_parts(["base"])] == ["evaluate base (1/1)"]


@pytest.mark.parametrize("favoured", [0, 1, 2])
def test_lr_search_records_interior_and_why(recipe, monkeypatch, favoured):
    """Three LRs: the middle one selected is interior (a lead over both ends, no edge warning);
    an end selected is at the edge of the grid, and `why` says so."""
    from dataclasses import replace

    lrs = (1e-4, 3e-4, 1e-3)
    recipe.preset = replace(recipe.preset, lrs=lrs)
    monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", _scores_favouring(lrs[favoured]))
    _, _, best, _ = recipe.lr_search()
    stage = recipe.manifest()["stages"]["lr_search"]
    interior = favoured == 1
    assert best == lrs[favoured] and stage["selection"]["interior"] is interior
    why = stage["why"]
    assert why.startswith("highest GPT4All stand-in score (-1.0000 mean log-prob per token")
    assert ("the best LR is at the edge of the grid" in why) is not interior
    ends = [lr for lr in (lrs[0], lrs[-1]) if lr != best]
    assert sorted(stage["selection"]["leads"]) == sorted(f"{lr:g}" for lr in ends)
    for lr in ends:
        assert f"lead over lr {lr:g}: +1.0000 (95% paired bootstrap CI +1.0000..+1.0000)" in why
    assert why.count("lead over lr") == len(ends) == (2 if interior else 1)


def test_fp8_is_reused_only_for_the_merged_model_it_was_made_from(recipe, monkeypatch, tmp_path):
    """Recipe.fp8 converts when there is no FP8 model or it was made from other merged weights,
    and hands on the one it has otherwise."""
    from hermes3.recipe import stages

    merged = tmp_path / "dpo" / "merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text("{}")
    (merged / "model.safetensors").write_bytes(b"weights 1")
    monkeypatch.setattr(Recipe, "dpo", lambda self: merged.parent)
    made = []

    def fake_fp8(args):
        src, out = args
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"from": (src / "model.safetensors").read_text()}))
        made.append(src)

    monkeypatch.setattr(stages, "fp8_job", fake_fp8)

    def made_from():
        return json.loads((recipe.root / "fp8" / "config.json").read_text())["from"]

    out = recipe.fp8()
    assert out == recipe.root / "fp8" and len(made) == 1 and made_from() == "weights 1"
    assert recipe.fp8() == out and len(made) == 1  # same merged model: reused
    (merged / "model.safetensors").write_bytes(b"weights 2")  # DPO re-ran: the FP8 model is stale
    recipe.fp8()
    assert len(made) == 2 and made_from() == "weights 2"
    assert recipe.fp8() == out and len(made) == 2
    (out / "config.json").unlink()  # an FP8 folder that never finished
    recipe.fp8()
    assert len(made) == 3 and made_from() == "weights 2"


def test_test_split_scores_change_no_selection(recipe, monkeypatch, tmp_path):
    """Every choice reads the validation split only: two runs whose test-split scores are
    scrambled differently (and are the other way round from validation) select the same LR and
    epoch, while the test scores they report do differ."""
    import numpy as np

    lrs = recipe.preset.lrs
    seen = []

    def scorer(seed):
        rng = np.random.default_rng(seed)

        def scores(model_dir, data_dir, categories, limit=None, *, split):
            seen.append(split)
            name = Path(model_dir).name  # lr-<lr>/final, or checkpoint-<epoch> of the main run
            good = name == "checkpoint-2" or Path(model_dir).parent.name == f"lr-{lrs[1]:g}"
            if split == "test":  # favours the other LR and epoch, and differs from run to run
                return _frame(categories, split, 4, (-2.0 if good else -1.0) + 0.1 * rng.random(4 * len(categories)))
            return _frame(categories, split, 4, -1.0 if good else -2.0)
        return scores

    def groups(model_dir, data_dir, groups, limit, out_dir=None, split="validation"):
        seen.append(split)
        tasks = sorted({t for g in groups for t in hermes3.eval.tasks.STANDIN_GROUPS[g]} | set(groups))
        value = np.random.default_rng(len(seen)).random() if split == "test" else 0.5
        return pd.Series(value, index=tasks)

    monkeypatch.setattr(hermes3.recipe.selection, "_group_scores", groups)
    runs = []
    for seed in (1, 2):
        monkeypatch.setattr(hermes3.eval.heldout, "heldout_scores", scorer(seed))
        r = Recipe("smoke", root=tmp_path / f"scrambled-{seed}")
        _, _, lr, test = r.lr_search()
        table, ckpt = r.epoch_selection()
        runs.append((lr, ckpt.name, table.loc[["GPT4All", "AGIEval", "IFEval", "MT-Bench"]].to_numpy(), test))
    assert runs[0][0] == runs[1][0] == lrs[1] and runs[0][1] == runs[1][1] == "checkpoint-2"
    assert np.array_equal(runs[0][2], runs[1][2])                   # Table 2 is validation only
    assert not runs[0][3].gpt4all_standin.equals(runs[1][3].gpt4all_standin)  # the scramble reached the test scores
    assert "test" in seen and "validation" in seen


def test_manifest_records_paths_relative_to_its_folder(tmp_path):
    """Paths under the recipe's root are relative (also in stages recorded before they were), others as given."""
    path = tmp_path / "demo" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"scale": "demo", "stages": {"old": {"outputs": {"dir": str(tmp_path / "demo" / "sft")}}}}))
    manifest.record(path, "demo", "dpo", inputs={"model": tmp_path / "demo" / "sft" / "checkpoint-2", "hub": "org/model",
                                                 "data": str(tmp_path / "other")}, outputs={})
    stages = json.loads(path.read_text())["stages"]
    assert stages["old"]["outputs"]["dir"] == "sft"
    assert stages["dpo"]["inputs"] == {"model": "sft/checkpoint-2", "hub": "org/model", "data": str(tmp_path / "other")}
    assert manifest.resolve_path(path, stages["dpo"]["inputs"]["model"]) == tmp_path / "demo" / "sft" / "checkpoint-2"
