"""W&B offline runs: what we log can be read back from disk (and later `wandb sync`-ed)."""

import time

import pandas as pd

from hermes3.core import tracking


def test_offline_run_holds_logged_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "offline")
    run = tracking.start("sft", "tracking-test", {"lr": 7e-6})
    run.log({"train/loss": 1.5})
    run.log({"train/loss": 1.25})
    tracking.log_table(run, "scores", pd.DataFrame({"task": ["a"], "value": [0.5]}))
    run.summary.update({"selected_epoch": "epoch_3"})
    run.finish()
    (folder,) = list((tmp_path / "wandb").glob("offline-run-*"))
    for _ in range(50):  # the wandb service process may still be flushing the file
        logged = tracking.read_offline_run(folder)
        if "selected_epoch" in logged["summary"]:
            break
        time.sleep(0.2)
    assert [h["train/loss"] for h in logged["history"] if "train/loss" in h] == [1.5, 1.25]
    assert logged["summary"]["selected_epoch"] == "epoch_3"
    assert logged["config"]["lr"] == 7e-6
    assert any(k.startswith("scores/") for h in logged["history"] for k in h)  # the table
