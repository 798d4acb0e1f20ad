"""hermes3.recipe.pipeline: stages reused when built from the same config, set aside and rebuilt when
not, resumed when interrupted; a failing notebook is one line naming the stage."""

import json
import shutil
from dataclasses import replace

import jupytext
import nbformat
import pytest

from conftest import ROOT, make_tiny_model
from hermes3.core.config import load_config
from hermes3.data.build import DataConfig
from hermes3.recipe import pipeline
from hermes3.train.dpo import DPOConfig
from hermes3.train.modeling import model_digest
from hermes3.train.sft import SFTConfig


def test_data_stage_reuses_and_sets_aside(tmp_path):
    cfg = load_config(DataConfig, ROOT / "configs/data/smoke.yaml", [f"out_dir={tmp_path / 'd'}"])
    out = pipeline.data(cfg)
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert pipeline.data(cfg) == out and (out / "manifest.json").stat().st_mtime_ns == stamp  # reused
    pipeline.data(replace(cfg, seed=1))  # another config: the old build is kept aside, not lost
    (stale,) = tmp_path.glob("d.stale-*")
    assert json.loads((stale / "manifest.json").read_text())["config"]["seed"] == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 1


def test_sft_stage_reuses_resumes_and_sets_aside(smoke_data, tmp_path, monkeypatch):
    base = make_tiny_model(tmp_path / "base", smoke_data / "tokenizer")
    cfg = SFTConfig(model=str(base), data=str(smoke_data), output_dir=str(tmp_path / "run"), max_length=256,
                    max_steps=2, warmup_steps=1, lr=1e-3, bf16="false", wandb_mode="disabled", save_steps=1,
                    save_each_epoch=False)
    out = pipeline.sft(cfg)
    assert (out / "final" / "COMPLETE").exists()
    import hermes3.train.sft

    calls = []
    real = hermes3.train.sft.train
    monkeypatch.setattr(hermes3.train.sft, "train", lambda c: calls.append(c) or real(c))
    pipeline.sft(replace(cfg, wandb_mode="offline"))  # a setting that changes nothing: reused
    assert calls == []
    (out / "final" / "COMPLETE").unlink()  # as if killed before the end
    pipeline.sft(cfg)
    assert calls[-1].resume and (out / "final" / "COMPLETE").exists()
    w = out / "final" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])  # damaged after it was finished: rebuilt from checkpoint-2
    pipeline.sft(cfg)
    assert calls[-1].resume and len(calls) == 2
    from hermes3.train.modeling import check_model_folder

    check_model_folder(out / "final")
    pipeline.sft(replace(cfg, lr=2e-3))
    assert not calls[-1].resume and len(list(tmp_path.glob("run.stale-*"))) == 1
    assert json.loads((out / "config.json").read_text())["lr"] == 2e-3
    # The base re-built in the same folder (another pre-training): same config, other weights -> retrained.
    assert (out / "model_digest.txt").read_text() == model_digest(base)
    make_tiny_model(base, smoke_data / "tokenizer", seed=1)
    pipeline.sft(replace(cfg, lr=2e-3))
    assert len(calls) == 4 and not calls[-1].resume and len(list(tmp_path.glob("run.stale-*"))) == 2
    assert (out / "model_digest.txt").read_text() == model_digest(base)


def test_dpo_stage_is_reused_when_complete_and_resumed_when_interrupted(smoke_data, tmp_path, monkeypatch):
    sft = make_tiny_model(tmp_path / "sft", smoke_data / "tokenizer")
    cfg = DPOConfig(model=str(sft), data=str(smoke_data), output_dir=str(tmp_path / "dpo"), pairs_per_step=2,
                    max_steps=2, save_steps=1, max_length=512, wandb_mode="disabled", bf16="false")
    out = pipeline.dpo(cfg)
    assert (out / "COMPLETE").exists() and (out / "merged" / "config.json").exists()
    whole = (out / "metrics.csv").read_text().splitlines()
    import hermes3.train.dpo
    import hermes3.train.engine

    calls, picked = [], []
    real_train, real_pick = hermes3.train.dpo.train, hermes3.train.engine.check_fresh_or_resume
    monkeypatch.setattr(hermes3.train.dpo, "train", lambda c: calls.append(c) or real_train(c))
    monkeypatch.setattr(hermes3.train.engine, "check_fresh_or_resume", lambda *a: picked.append(real_pick(*a)) or picked[-1])
    pipeline.dpo(replace(cfg, wandb_mode="offline"))  # a setting that changes nothing: reused
    assert calls == []
    # Killed while saving checkpoint-2: no COMPLETE marker there, no adapter, merged model or run marker.
    for f in ("COMPLETE", "checkpoint-2/COMPLETE", "heldout.json"):
        (out / f).unlink()
    for d in ("adapter", "merged"):
        shutil.rmtree(out / d)
    pipeline.dpo(cfg)
    assert calls[-1].resume and picked == [out / "checkpoint-1"]
    resumed = (out / "metrics.csv").read_text().splitlines()
    assert resumed[:2] == whole[:2] and len(resumed) == 3  # header and step 1 kept, step 2 re-run once
    assert (out / "COMPLETE").exists() and (out / "merged" / "config.json").exists()


def test_set_aside_twice_in_one_second_keeps_both(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline.time, "strftime", lambda fmt: "20261202-045654")
    for k in range(3):
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "x").write_text(str(k))
        pipeline._set_aside(tmp_path / "run", "test")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run.stale-20261202-045654", "run.stale-20261202-045654-1", "run.stale-20261202-045654-2"]
    assert (tmp_path / "run.stale-20261202-045654-2" / "x").read_text() == "2"


def test_failing_stage_is_one_line(tmp_path):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('scale = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell('open("runs/data/missing/sft.jsonl")')]
    jupytext.write(nb, folder / "01_broken.py", fmt="py:percent")
    with pytest.raises(pipeline.StageError) as e:
        pipeline.run_notebooks("smoke", folder=folder)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("stage 01_broken failed: FileNotFoundError:")
    assert "runs/data/missing/sft.jsonl" in msg


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_a_run_killed_before_its_digest_is_written_resumes(stage, smoke_data, tmp_path, monkeypatch):
    """A real kill in training (step 3 of 3, after checkpoint-2 was saved whole) leaves what a kill
    leaves: config.json and complete checkpoints, but no model digest (written after training).
    The next call resumes that folder from checkpoint-2; nothing is set aside or retrained."""
    import importlib

    from transformers import Trainer

    module = importlib.import_module(f"hermes3.train.{stage}")
    model = make_tiny_model(tmp_path / "model", smoke_data / "tokenizer")
    common = dict(model=str(model), data=str(smoke_data), output_dir=str(tmp_path / "run"), max_steps=3, save_steps=1,
                  wandb_mode="disabled", bf16="false")
    cfg = (SFTConfig(**common, max_length=256, warmup_steps=1, lr=1e-3, save_each_epoch=False) if stage == "sft"
           else DPOConfig(**common, pairs_per_step=2, max_length=512))
    run = getattr(pipeline, stage)
    real_step = Trainer.training_step

    def killed_in_step_3(self, *a, **kw):
        if self.state.global_step == 2:
            raise KeyboardInterrupt("killed in step 3")
        return real_step(self, *a, **kw)

    monkeypatch.setattr(Trainer, "training_step", killed_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.setattr(Trainer, "training_step", real_step)
    out = cfg.output()
    assert (out / "config.json").exists() and (out / "checkpoint-2" / "COMPLETE").exists()
    assert not (out / "model_digest.txt").exists() and not (out / "checkpoint-3").exists()
    calls, real_train = [], module.train
    monkeypatch.setattr(module, "train", lambda c: calls.append(c) or real_train(c))
    run(cfg)
    assert len(calls) == 1 and calls[0].resume
    assert not list(tmp_path.glob("run.stale-*"))
    assert (out / "model_digest.txt").read_text() == model_digest(model)
    assert module.read_metrics(out).step.tolist() == [1, 2, 3]
    run(cfg)  # now whole: reused
    assert len(calls) == 1


def test_progress_lines_name_the_jobs_and_the_time_left(monkeypatch, capsys):
    previous = {"02_sft": 60.0, "03_lr_search": 600.0, "04_loss_curves": 300.0}
    status = pipeline._Status(2, list(previous), previous)
    monkeypatch.setattr(pipeline.time, "time", lambda: status.start + 240)
    state = {"desc": "LR search runs", "done": 7, "total": 14, "running": ["base tiny-l", "lr 0.001"], "seconds": 200}
    assert status.progress(state) == ("[hermes3] (2/3) 03_lr_search: LR search runs: 7/14 jobs done "
                                      "(base tiny-l, lr 0.001 running), ~6 min left (~11 min in all)")
    # past its previous time, the pace of the jobs so far; no total while a later notebook has no time
    status = pipeline._Status(1, ["01_lr", "02_new"], {"01_lr": 100.0})
    assert status.progress({**state, "running": []}).endswith("7/14 jobs done, ~3 min left")
    status.show({**state, "done": 14, "running": []})  # a finished call (a reused stage): no line
    status.show(state)
    assert capsys.readouterr().err.count("[hermes3]") == 1
    assert status.left() == ""  # past its previous time, and no job done yet: no estimate


def test_relay_shows_the_latest_state_of_the_jobs(tmp_path, monkeypatch):
    from hermes3.recipe.executor import run_all

    monkeypatch.setattr(pipeline, "RELAY_SECONDS", 0.05)
    seen = []
    with pipeline.relaying(tmp_path / "progress.jsonl", seen.append):
        run_all(abs, [-1, 2, -3], workers=1, desc="abs", names=["a", "b", "c"])
        pipeline.time.sleep(0.3)
    assert {k: v for k, v in seen[-1].items() if k != "seconds"} == {"desc": "abs", "done": 3, "total": 3, "running": []}
    assert len((tmp_path / "progress.jsonl").read_text().splitlines()) == 4  # each job started, then all done


def test_stable_notebooks_hold_no_progress_bars_and_no_machine_paths(tmp_path):
    from hermes3.core.paths import runs

    bar = "runs:   0%|          | 0/13 [00:00<?, ?it/s]"
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})
    nb.cells = [nbformat.v4.new_code_cell("run()", outputs=[
        nbformat.v4.new_output("display_data", data={"text/plain": bar, pipeline._WIDGET: {"model_id": "x"}}),
        nbformat.v4.new_output("stream", name="stderr", text=f"\r{bar}\r{bar}\nUserWarning: kept\n"),
        nbformat.v4.new_output("stream", name="stderr", text=f"{bar}\n"),
        nbformat.v4.new_output("stream", name="stdout", text=f"saved in {runs('demo', 'sft')}\n")])]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    pipeline._make_stable(path, tmp_path / "01_x.py")
    book = nbformat.read(path, as_version=4)
    assert [o.get("text") for o in book.cells[0].outputs] == ["UserWarning: kept\n", "saved in runs/demo/sft\n"]
    assert "widgets" not in book.metadata


def test_the_terminal_hears_of_a_notebooks_jobs_and_nothing_else(tmp_path, monkeypatch, capfd):
    """A kernel's jobs reach the terminal, not the saved notebook; its kernel starts without the
    "running over TCP without encryption" warning; the times are kept for the next run's estimate."""
    from hermes3.core.paths import runs

    monkeypatch.setattr(pipeline, "RELAY_SECONDS", 0.1)
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('scale = "smoke"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\nfrom hermes3.recipe.executor import run_all\n"
                                          "run_all(time.sleep, [1, 1], workers=1, desc='naps', names=['nap 1', 'nap 2'])")]
    jupytext.write(nb, folder / "01_naps.py", fmt="py:percent")
    (times,) = pipeline.run_notebooks("smoke", out_dir=tmp_path / "out", folder=folder)
    err = capfd.readouterr().err
    assert "[hermes3] (1/1) 01_naps: naps: 0/2 jobs done (nap 1 running)" in err, err
    assert "without encryption" not in err
    cells = nbformat.read(tmp_path / "out" / "01_naps.ipynb", as_version=4).cells
    assert [o["data"]["text/plain"] for o in cells[-1].outputs] == ["[None, None]"]
    assert json.loads(runs("smoke", "notebook_times.json").read_text())["01_naps"] == times[1]
