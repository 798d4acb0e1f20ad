"""`hermes3 wandb-report`: the report's spec against the keys our runs really log.

The logged keys come from the code paths, not from a list: a one-step SFT and DPO run log
offline to W&B (read back from their files), and the notebooks' own logging calls
(``tracking.start(group)``, ``log_table``, ``log_figure``, ``run.summary.update``) are read
from their code cells. Renaming a metric in any of them fails ``test_every_panel_finds_its_key``.
"""

from __future__ import annotations

import ast
import json
import time

import jupytext
import pytest

from conftest import ROOT, make_tiny_model
from hermes3.cli import wandb_report
from hermes3.cli.main import main
from hermes3.core.paths import env_overrides


def notebook_keys() -> dict[str, dict[str, str]]:
    """``{group: {key: kind}}`` from the notebooks' calls into ``hermes3.core.tracking``."""
    out: dict[str, dict[str, str]] = {}
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        code = "\n".join(c.source for c in jupytext.read(nb).cells if c.cell_type == "code")
        tree = ast.parse("\n".join(ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!"))))
        group = None
        for node in ast.walk(tree):  # one run per notebook: its start call names the group
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "start":
                group = node.args[0].value
        assert group, f"{nb.name}: no tracking.start(group, ...)"
        keys = out.setdefault(group, {})
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            f = node.func
            if f.attr in ("log_table", "log_figure") and isinstance(node.args[1], ast.Constant):
                keys[node.args[1].value] = "table" if f.attr == "log_table" else "image"
            elif f.attr == "update" and isinstance(f.value, ast.Attribute) and f.value.attr == "summary" \
                    and node.args and isinstance(node.args[0], ast.Dict):
                keys.update({k.value: "summary" for k in node.args[0].keys if isinstance(k, ast.Constant)})
    return out


@pytest.fixture(scope="module")
def trainer_runs(smoke_data, tmp_path_factory):
    """A 1-step SFT and a 1-step DPO run logging offline to W&B; their run folder."""
    from hermes3.train.dpo import DPOConfig
    from hermes3.train.dpo import train as dpo_train
    from hermes3.train.sft import SFTConfig
    from hermes3.train.sft import train as sft_train

    root = tmp_path_factory.mktemp("wandb-report")
    # A folder of this test's own: in the full suite, earlier tests have already set W&B up in this
    # process (with the session's WANDB_DIR), and the stages must still log where they are told.
    with env_overrides({"WANDB_DIR": str(root / "wandb"), "WANDB_MODE": "offline"}):
        model = make_tiny_model(root / "model", smoke_data / "tokenizer", seed=1)
        sft_train(SFTConfig(model=str(model), data=str(smoke_data), output_dir=str(root / "sft"), max_length=256,
                            max_steps=1, logging_steps=1, bf16="false", save_each_epoch=False, wandb_mode="offline"))
        dpo_train(DPOConfig(model=str(model), data=str(smoke_data), output_dir=str(root / "dpo"), max_steps=1,
                            pairs_per_step=4, max_length=512, bf16="false", wandb_mode="offline"))
    folder = root / "wandb" / "wandb"
    for _ in range(50):  # the wandb service may still be flushing the last records
        logged = wandb_report.read_runs(folder)
        if "train/rewards/margins" in logged.get("dpo", {}) and "train/loss" in logged.get("sft", {}):
            break
        time.sleep(0.2)
    return folder


@pytest.fixture(scope="module")
def logged(trainer_runs):
    keys = wandb_report.read_runs(trainer_runs)
    for group, found in notebook_keys().items():
        keys.setdefault(group, {}).update(found)
    return keys


def test_every_panel_finds_its_key(logged):
    assert wandb_report.unlogged(wandb_report.sections(), logged) == []


def test_trainer_runs_log_the_plotted_series(trainer_runs):
    got = wandb_report.read_runs(trainer_runs)
    assert set(got) == {"sft", "dpo"}  # the groups tracking and sft.py give their runs
    assert got["sft"]["train/loss"] == got["sft"]["train/global_step"] == "history"
    assert got["dpo"]["train/rewards/margins"] == got["dpo"]["train/rewards/accuracies"] == "history"


def test_a_renamed_metric_breaks_the_check(logged):
    renamed = {g: dict(k) for g, k in logged.items()}
    renamed["dpo"]["train/reward_margin"] = renamed["dpo"].pop("train/rewards/margins")
    renamed["lr-search"]["fig2"] = "table"  # an image logged as a table is no image
    assert wandb_report.unlogged(wandb_report.sections(), renamed) == [
        "Fig. 2: image 'fig2' is not logged by any run in group 'lr-search' (logged as table)",
        "Fig. 5: history 'train/rewards/margins' is not logged by any run in group 'dpo'"]


def test_check_on_trainer_runs_only_is_one_line_exit_2(trainer_runs, tmp_path, capsys):
    assert main(["wandb-report", "--check", str(trainer_runs), "--offline", "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hermes3 wandb-report: {trainer_runs}: 16 panel keys have no data: ")  # 5+3+2+3+1+2 by section
    assert "Fig. 2: table 'lr_search' is not logged by any run in group 'lr-search';" in err
    assert "Fig. 5" not in err.replace("Fig. 5: image 'fig5'", "")  # the DPO series are there
    assert not (tmp_path / "r.json").exists()


def test_offline_writes_the_spec_with_the_reports_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    out = tmp_path / "report.json"
    assert main(["wandb-report", "--out", str(out)]) == 0
    spec = json.loads(out.read_text())
    assert spec["project"] == "hermes3" and spec["entity"] is None
    items = {s["item"]: s for s in spec["sections"]}
    assert list(items) == ["Fig. 2", "Fig. 3", "Fig. 4", "Table 2", "Fig. 5", "Table 5"]
    # the report's numbers, as printed in the report (Table 2: 70B by epoch; Table 5: final evals)
    assert "| Total Score | 27.5 | 63.65 | 83.89 | 37.09 |" in items["Table 2"]["report"]
    assert "| IFEval | 76.52 | 78.92 | 81.33 | 86.61 |" in items["Table 2"]["report"]
    assert "| MT-Bench Avg. | 8.93 | 9.17 | 8.99 | 8.93 | 8.27 | 8.39 |" in items["Table 5"]["report"]
    assert "**96% efficiency**" in items["Fig. 3"]["report"] and "**7×10⁻⁶ selected**" in items["Fig. 2"]["report"]
    assert capsys.readouterr().out.startswith(f"offline: wrote the report spec (6 sections) to {out}")


def test_wandb_objects_carry_the_spec():
    import wandb_workspaces.reports.v2 as wr

    report = wandb_report.build(wandb_report.sections(), "my-entity")
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    heads = [b.text for b in report.blocks if isinstance(b, wr.H2)]
    assert heads[4] == "Fig. 5: DPO reward margins"
    fig5 = grids[4]
    assert (fig5.runsets[0].entity, fig5.runsets[0].project, fig5.runsets[0].filters) == ("my-entity", "hermes3", "Group = 'dpo'")
    assert [(type(p).__name__, getattr(p, "y", None)) for p in fig5.panels] == [
        ("LinePlot", ["train/rewards/margins"]), ("LinePlot", ["train/rewards/accuracies"]), ("MediaBrowser", None)]
