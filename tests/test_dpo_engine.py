"""DPO on the Trainer engine: 2 processes == 1 (DDP through `hermes3 dpo`, FSDP2 `fully_shard`),
exact resume after a kill in training and in a checkpoint save, logged LR == applied LR,
everything on the engine's device."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback

from conftest import make_tiny_model
from hermes3.core.config import ConfigError
from hermes3.train.dpo import DPOConfig, read_metrics, train

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed")
COLUMNS = ["step", "epoch", "loss", "learning_rate", "grad_norm", "rewards/chosen", "rewards/rejected",
           "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"]


@pytest.fixture(scope="module")
def sft_model(smoke_data, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("sft"), smoke_data / "tokenizer", seed=3)


def _common(sft_model, smoke_data, **kw):
    d = dict(model=str(sft_model), data=str(smoke_data), lr=1e-3, warmup_steps=1, pairs_per_step=4, max_steps=3,
             max_length=512, wandb_mode="disabled", bf16="false")
    return {**d, **kw}


def _adapter(out):
    return load_file(out / "adapter" / "adapter_model.safetensors")


@needs_torchrun
def test_two_process_ddp_matches_single_process(sft_model, smoke_data, tmp_path):
    """Same global batch (pairs_per_step=4): 1 process x 4 pairs vs 2 processes x 2 pairs. LoRA
    dropout and NEFTune off: their random draws depend on how pairs are split over processes."""
    common = _common(sft_model, smoke_data, lora_dropout=0.0, neftune_alpha=0.0)
    one = train(DPOConfig(**common, output_dir=str(tmp_path / "one")))
    overrides = [f"{k}={v}" for k, v in common.items()] + [f"output_dir={tmp_path / 'two'}"]
    r = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "-m", "hermes3.cli", "dpo", *overrides],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(tmp_path / "two")
    assert list(a.columns) == list(b.columns) == COLUMNS and list(a.step) == list(b.step) == [1, 2, 3]
    for col in ("loss", "rewards/margins", "rewards/chosen", "logps/chosen", "grad_norm"):
        for x, y in zip(a[col], b[col], strict=True):
            # 1e-5, plus float32 resolution of summed log-probs near -500 (ulp 3e-5): the in-process run
            # and the torchrun workers use different thread counts, so reductions differ in order
            assert abs(x - y) < 1e-5 + 2e-7 * abs(x), (col, x, y)
    pa, pb = _adapter(one), _adapter(tmp_path / "two")
    assert pa.keys() == pb.keys() and len(pa) > 10
    # The adapter moved (LoRA B starts at 0), so the weight comparison below can fail. Not the margins:
    # after 3 steps on the smoke pairs they can be ~3e-5, no more than the comparison's tolerance.
    assert max(v.abs().max().item() for k, v in pa.items() if "lora_B" in k) > 1e-4
    # RMSProp divides each gradient element by its own running RMS, so an element whose gradient is near
    # zero turns reduction-order noise into a visible share of its step (the metrics above compare the
    # gradients themselves). Measured with untied embeddings: 2 of 35,840 elements outside (1e-5, 1e-4),
    # the worst 4.4e-5 off. So: every element within a tenth of one LR step (1e-4), all but 0.1% tight.
    loose = sum(int(((pa[k] - pb[k]).abs() > 1e-5 + 1e-4 * pb[k].abs()).sum()) for k in pa)
    assert loose <= sum(v.numel() for v in pa.values()) // 1000, loose
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=1e-4, rtol=0, msg=k)
    ha, hb = (json.loads((d / "heldout.json").read_text()) for d in (one, tmp_path / "two"))
    # held-out margins: beta x differences of float32 log-probs near -350 (ulp 3e-5), so 3e-5
    for x, y in zip(ha["after"]["margins"], hb["after"]["margins"], strict=True):
        assert abs(x - y) < 3e-5


@needs_torchrun
def test_two_process_fsdp2_fully_shard_matches_single_process(sft_model, smoke_data, tmp_path):
    worker = os.path.join(os.path.dirname(__file__), "fsdp2_dpo_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for cmd in ([sys.executable, worker], [TORCHRUN, "--nproc_per_node", "2", worker]):
        out = str(tmp_path / f"{len(cmd)}.json")
        r = subprocess.run([*cmd, str(sft_model), str(smoke_data), out], capture_output=True, text=True, timeout=600,
                           env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in (2, 4))
    assert not one["sharded"] and two["sharded"]  # the 2-process run really held DTensor shards
    for key in ("losses", "margins"):
        for x, y in zip(one[key], two[key], strict=True):
            assert abs(x - y) < 1e-5, (key, x, y)
    assert max(abs(m) for m in one["margins"][1:]) > 1e-4
    pa, pb = (torch.load(tmp_path / f"{n}.json.pt") for n in (2, 4))
    assert pa.keys() == pb.keys() and all("lora_" in k for k in pa)
    for k in pa:  # RMSProp divides by sqrt(v): round-off in tiny gradients shows in the weights
        d = float((pa[k] - pb[k]).abs().max())
        torch.testing.assert_close(pa[k], pb[k], atol=1e-4, rtol=1e-3, msg=f"{k}: max abs diff {d:.3g}")


class _Kill(TrainerCallback):
    """Stops the run as a kill would: an exception out of the training loop at ``step``."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed after step {self.step}")


def _merged(out):
    return AutoModelForCausalLM.from_pretrained(out / "merged").state_dict()


def test_resume_after_a_kill_in_training_and_in_a_save_is_exact(sft_model, smoke_data, tmp_path, monkeypatch):
    """LoRA dropout 0.05 and NEFTune on: steps after the resume point also depend on the restored
    RNG state and the noise seeds, not only on weights, optimizer and scheduler."""
    common = _common(sft_model, smoke_data, max_steps=6, save_steps=2, eval_steps=2)
    full = train(DPOConfig(**common, output_dir=str(tmp_path / "full")))
    # 1. killed in training in step 5: checkpoint-4 is the resume point
    a = tmp_path / "a"
    with pytest.raises(KeyboardInterrupt):
        train(DPOConfig(**common, output_dir=str(a)), callbacks=(_Kill(5),))
    assert sorted(p.name for p in a.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert read_metrics(a).step.tolist() == [1, 2, 3, 4]  # killed after step 5's update, before its log row
    with pytest.raises(ConfigError, match="already holds a dpo run: pass resume=true"):
        train(DPOConfig(**common, output_dir=str(a)))
    # 2. killed inside the save of checkpoint-4, after the weights were written: no COMPLETE
    # marker, so checkpoint-2 is the resume point
    b = tmp_path / "b"
    save = Trainer._save_optimizer_and_scheduler

    def dies_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise KeyboardInterrupt("killed while saving checkpoint-4")
        return save(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(DPOConfig(**common, output_dir=str(b)))
    monkeypatch.undo()
    assert (b / "checkpoint-4" / "adapter_model.safetensors").exists() and not (b / "checkpoint-4" / "COMPLETE").exists()
    for out in (a, b):
        train(DPOConfig(**common, output_dir=str(out), resume=True))
    ref = read_metrics(full)
    assert list(ref.columns) == COLUMNS and ref.step.tolist() == [1, 2, 3, 4, 5, 6]
    held = (full / "heldout.csv").read_text()
    merged = _merged(full)
    for out in (a, b):
        m = read_metrics(out)
        for col in COLUMNS:  # bit-identical on CPU, the rows re-run after the checkpoint included
            assert m[col].tolist() == ref[col].tolist(), (out.name, col)
        assert (out / "heldout.csv").read_text() == held
        assert json.loads((out / "heldout.json").read_text()) == json.loads((full / "heldout.json").read_text())
        for k, v in _merged(out).items():
            torch.testing.assert_close(v, merged[k], atol=0, rtol=0, msg=k)
    assert held.count("\n") == 5  # header + steps 0, 2, 4, 6


def test_logged_lr_is_the_applied_lr_and_everything_is_on_the_engine_device(sft_model, smoke_data, tmp_path):
    seen = {"lr": [], "devices": set(), "inputs": set()}

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            seen["engine"] = args.device
            model.register_forward_pre_hook(
                lambda mod, a, kwargs: seen["inputs"].update(v.device for v in kwargs.values() if torch.is_tensor(v)),
                with_kwargs=True)

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            seen.setdefault("clipped", []).append(
                torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None])).item())

        def on_optimizer_step(self, args, state, control, optimizer=None, model=None, **kw):
            # after optimizer.step(), before the scheduler moves on: the LR this step used
            seen["lr"].append(optimizer.param_groups[0]["lr"])
            seen["devices"].update(t.device for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
            seen["devices"].update(p.device for p in model.parameters())
            # memory: optimizer state for the adapter only, never for the frozen base
            seen["optimized"] = {id(p) for g in optimizer.param_groups for p in g["params"]}
            seen["stateful"] = {id(p) for p in optimizer.state}
            seen["lora"] = {id(p) for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n}

    out = train(DPOConfig(**_common(sft_model, smoke_data, lr=1e-4, warmup_steps=0, max_steps=3, max_grad_norm=0.03,
                                    output_dir=str(tmp_path / "run"))), callbacks=(Probe(),))
    m = read_metrics(out)
    # linear decay from 1e-4 over 3 steps without warmup: 1e-4, 6.67e-5, 3.33e-5 (0 is never applied)
    assert seen["lr"] == pytest.approx([1e-4, 2e-4 / 3, 1e-4 / 3], rel=1e-12)
    assert m.learning_rate.tolist() == seen["lr"]
    # clipping at max_grad_norm=0.03: the logged norm is before clipping, the applied one after
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6): the clipped norm is 0.03 within 1e-4 relative
    assert seen["clipped"] == pytest.approx([min(g, 0.03) for g in m.grad_norm], rel=1e-4)
    assert m.grad_norm.max() > 0.03
    assert seen["engine"] == torch.device("cpu") and seen["devices"] == seen["inputs"] == {seen["engine"]}
    assert len(seen["lora"]) == 2 * 7 * 2 and seen["optimized"] == seen["stateful"] == seen["lora"]


def test_wandb_gets_the_rows_of_metrics_csv_and_the_dpo_config(sft_model, smoke_data, tmp_path, monkeypatch):
    """One W&B path for SFT and DPO: the Trainer's WandbCallback, offline, plus our config."""
    import time

    from hermes3.core.tracking import read_offline_run

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    out = train(DPOConfig(**{**_common(sft_model, smoke_data, max_steps=2), "wandb_mode": "offline"},
                          output_dir=str(tmp_path / "run")))
    (folder,) = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    for _ in range(50):  # the wandb service process may still be flushing the file
        logged = read_offline_run(folder)
        if "heldout/rewards/margins" in logged["summary"]:
            break
        time.sleep(0.2)
    m = read_metrics(out)
    rows = [h for h in logged["history"] if "train/rewards/margins" in h]
    assert [h["train/rewards/margins"] for h in rows] == pytest.approx(m["rewards/margins"].tolist(), rel=1e-6)
    assert [h["train/learning_rate"] for h in rows] == pytest.approx(m["learning_rate"].tolist(), rel=1e-12)
    assert logged["config"]["hermes3"]["beta"] == 0.1 and logged["config"]["hermes3"]["pairs_per_step"] == 4
    held = json.loads((out / "heldout.json").read_text())["after"]
    assert logged["summary"]["heldout/rewards/margins"] == pytest.approx(held["rewards/margins"])
    assert os.environ.get("WANDB_RUN_GROUP") is None  # the stage's group was set for the run only
