"""Every benchmark runs at its ``--smoke`` size, so a moved path or a renamed API fails here rather
than for the next person who measures (the numbers at this size mean nothing)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

# script -> a line its report always prints, after every section has run
BENCHMARKS = {
    "packing.py": "ratio ours / padded",
    "sft.py": "ratio hermes3/TRL",
    "dpo.py": "ratio ours / TRL",
    "fp8.py": "disk ratio FP8 / bf16",
    "eval_offline.py": "whole offline suite, one run",
    "memory.py": "sft fused / trl peak",
}


@pytest.mark.parametrize("script", sorted(BENCHMARKS))
def test_benchmark_runs_at_smoke_size(script, tmp_path):
    env = {**os.environ, "HERMES3_RUNS": str(tmp_path / "runs"), "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke"], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert BENCHMARKS[script] in r.stdout, r.stdout[-3000:]
