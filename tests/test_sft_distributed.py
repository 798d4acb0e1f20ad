"""Two processes (torchrun, gloo) match one process: DDP through `hermes3 sft` (the recipe code
path), and FSDP2 `fully_shard` over our packed rows (which transformers skips on CPU)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import make_tiny_model
from hermes3.train.sft import SFTConfig, read_metrics, train

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
needs_torchrun = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun not installed")


# the plain LM head (the tokenizer's 1,024 entries), and TRL's fused head (a 40,000-entry vocabulary)
HEADS = pytest.mark.parametrize("vocab", [None, 40000], ids=["plain-head", "fused-head"])


@needs_torchrun
@HEADS
def test_two_process_ddp_matches_single_process(smoke_data, tmp_path, vocab):
    base = make_tiny_model(tmp_path / "base", smoke_data / "tokenizer", seed=2, vocab_size=vocab)
    common = dict(model=str(base), data=str(smoke_data), max_length=256, lr=1e-3, warmup_steps=1, max_steps=3,
                  bf16="false", wandb_mode="disabled", save_each_epoch=False, shuffle=False)
    one = train(SFTConfig(**common, output_dir=str(tmp_path / "one"), rows_per_device=2))
    overrides = [f"{k}={v}" for k, v in common.items()] + [f"output_dir={tmp_path / 'two'}", "rows_per_device=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([TORCHRUN, "--nproc_per_node", "2", "-m", "hermes3.cli", "sft", *overrides],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = read_metrics(one), read_metrics(tmp_path / "two")
    assert list(a.step) == list(b.step) == [1, 2, 3]
    for x, y in zip(a.loss, b.loss):
        assert abs(x - y) < 1e-4
    pa = AutoModelForCausalLM.from_pretrained(one / "final").state_dict()
    pb = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "final").state_dict()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=1e-5, rtol=1e-4, msg=k)


@needs_torchrun
@HEADS
def test_two_process_fsdp2_fully_shard_matches_single_process(smoke_data, tmp_path, vocab):
    base = make_tiny_model(tmp_path / "base", smoke_data / "tokenizer", seed=2, vocab_size=vocab)
    worker = os.path.join(os.path.dirname(__file__), "fsdp2_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for cmd in ([sys.executable, worker], [TORCHRUN, "--nproc_per_node", "2", worker]):
        out = str(tmp_path / f"{len(cmd)}.json")
        r = subprocess.run([*cmd, str(base), str(smoke_data), out], capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in (2, 4))
    assert not one["sharded"] and two["sharded"]  # the 2-process run really held DTensor shards
    assert one["fused"] == two["fused"] == (vocab is not None)
    for x, y in zip(one["losses"], two["losses"], strict=True):
        assert abs(x - y) < 1e-5
    pa, pb = (torch.load(tmp_path / f"{n}.json.pt") for n in (2, 4))
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=1e-5, rtol=1e-4, msg=k)
