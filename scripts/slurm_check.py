"""`make slurm-check`: the recipe on a real SLURM, started on this host, against a local run.

    python scripts/slurm_check.py [--keep DIR]

1. Starts munged, slurmctld and slurmd from a slurm.conf in a temporary folder
   (`scripts/slurm_local.sh`, which installs slurm-wlm and munge when they are missing; root).
2. `hermes3 reproduce --scale smoke` twice, side by side: on the local executor, and on SLURM with
   every stage a job and the SFT and DPO jobs as 2-task jobs (gloo DDP).
3. Checks that SLURM ran each stage as a job of its own, that every selection in the two manifests
   is equal and every loss within 1e-5, that an SFT job cancelled mid-run (`scancel`) resumes when
   its stage runs again and ends with the uninterrupted run's weights, and that a DPO job requeued
   mid-run (`scontrol requeue`, what preemption does) finishes on its own with the same weights.
4. Stops the daemons, whatever happened, and prints one summary line (exit 1 when a check failed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from compare_manifests import flatten  # noqa: E402  (one way of reading a manifest part)

PY = sys.executable
HERMES3 = [PY, "-m", "hermes3.cli"]


def sh(cmd, env, **kw):
    return subprocess.run(cmd, env=env, cwd=ROOT, text=True, **kw)


def reproduce(env, runs: Path, *extra) -> subprocess.Popen:
    """Start `hermes3 reproduce --scale smoke` into ``runs`` (its output in runs/reproduce.log)."""
    runs.mkdir(parents=True, exist_ok=True)
    log = (runs / "reproduce.log").open("w")
    proc = subprocess.Popen([*HERMES3, "reproduce", "--scale", "smoke", *extra], env={**env, "HERMES3_RUNS": str(runs)},
                            cwd=ROOT, text=True, stdout=log, stderr=subprocess.STDOUT)
    proc.started, proc.log, proc.what = time.time(), runs / "reproduce.log", " ".join(extra) or "(local)"
    return proc


def finished(proc: subprocess.Popen) -> float:
    """Seconds the run took, or one line naming it and its last output line when it failed."""
    if proc.wait():
        last = (proc.log.read_text().strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"slurm_check: `hermes3 reproduce --scale smoke {proc.what}` failed: {last} (log: {proc.log})")
    return time.time() - proc.started


def compare(local: dict, cluster: dict, root_local: Path, root_cluster: Path) -> list[str]:
    """Selections equal (paths taken relative to each runs root); losses (train and held-out) within 1e-5."""
    bad = []
    for stage, a in local["stages"].items():
        b = cluster["stages"].get(stage)
        if b is None:
            bad.append(f"{stage}: missing on SLURM")
            continue
        sa, sb = (dict(flatten(x.get("selection"), str(r))) for x, r in ((a, root_local), (b, root_cluster)))
        if sa != sb and stage != "data":
            bad.append(f"{stage}: selection {a.get('selection')} != {b.get('selection')}")
        na, nb = (dict(flatten(x.get("results", {}), str(r))) for x, r in ((a, root_local), (b, root_cluster)))
        for key, va in na.items():
            vb = nb.get(key)
            if "loss" in key and isinstance(va, float) and isinstance(vb, float) and abs(va - vb) > 1e-5:
                bad.append(f"{stage}{key}: {va} vs {vb}")
    return bad


def interrupted(env, runs: Path, cluster: Path, stage: str, interrupt: str) -> str | None:
    """Re-run the stage's job into a new folder, interrupt it mid-run (``scancel`` or ``scontrol
    requeue``), let it finish (re-running the stage after a cancel; on its own after a requeue),
    and compare its model with the uninterrupted run's. Returns what went wrong, or None."""
    code = f"""
import json, os, sys, time, subprocess, torch
from pathlib import Path
from dataclasses import replace
from safetensors.torch import load_file
from hermes3.core.config import load_config
from hermes3.recipe import pipeline
from hermes3.recipe.cluster import JobsPending, Resources
from hermes3.recipe.executor import call, run_all
from hermes3.recipe.manifest import resolve_path
from hermes3.recipe.slurm import Registry
from hermes3.train.sft import SFTConfig
from hermes3.train.dpo import DPOConfig
import yaml

stage, interrupt, runs = {stage!r}, {interrupt!r}, Path({str(runs)!r})
recorded = runs / "smoke" / "manifest.json"
done = json.loads(recorded.read_text())["stages"][stage]
cls, fn, model = (SFTConfig, pipeline.sft, "final") if stage == "sft" else (DPOConfig, pipeline.dpo, "merged")
ref = resolve_path(recorded, done["outputs"]["dir"])
tmp = runs / f"{{stage}}-config.yaml"
# the manifest records paths under its folder relative to it
tmp.write_text(yaml.safe_dump({{**done["config"], **{{k: str(resolve_path(recorded, done["config"][k])) for k in ("model", "data")}}}}))
cfg = load_config(cls, tmp, [f"output_dir={{runs / (stage + '-' + interrupt)}}", "save_steps=1"])
res = [Resources(tasks_per_node=2)]
os.environ["HERMES3_WAIT"] = "0"
try:
    run_all(call, [(fn, cfg)], desc=f"{{stage}} ({{interrupt}})", names=[stage], resources=res)
except JobsPending:
    pass
(rec,) = [r for r in Registry(runs / "jobs").read().values() if r["stage"] == f"{{stage}} ({{interrupt}})"]
job = rec["job_id"]
deadline = time.time() + 300
while not list(cfg.output().glob("checkpoint-*/COMPLETE")) and time.time() < deadline:
    time.sleep(0.2)
if not list(cfg.output().glob("checkpoint-*/COMPLETE")):
    sys.exit(f"no checkpoint within 300 s")
if interrupt == "scancel":
    subprocess.run(["scancel", job], check=True)
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        time.sleep(0.2)
else:
    subprocess.run(["scontrol", "requeue", job], check=True)
    # SLURM holds a requeued job back for about two minutes (its begin time); the job itself is
    # left as it is, only that wait is skipped once it is pending again
    deadline = time.time() + 120
    while (state := subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True,
                                   text=True).stdout.strip()) != "PENDING" and time.time() < deadline:
        time.sleep(0.2)
    if state == "PENDING":
        subprocess.run(["scontrol", "update", f"JobId={{job}}", "StartTime=now"], check=True)
os.environ["HERMES3_WAIT"] = "1"
out = run_all(call, [(fn, cfg)], desc=f"{{stage}} ({{interrupt}})", names=[stage], resources=res)[0]
again = [r for r in Registry(runs / "jobs").read().values() if r["stage"] == f"{{stage}} ({{interrupt}})"]
resubmitted = again[0]["job_id"] != job
a, b = load_file(str(ref / model / "model.safetensors")), load_file(str(out / model / "model.safetensors"))
worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(json.dumps({{"job": job, "resubmitted": resubmitted, "worst": worst, "keys": sorted(a) == sorted(b)}}))
"""
    r = sh([PY, "-c", code], {**env, "HERMES3_RUNS": str(runs), "HERMES3_CLUSTER": str(cluster)}, capture_output=True)
    if r.returncode:
        return f"{stage} {interrupt}: {(r.stderr.strip().splitlines() or ['?'])[-1]}"
    info = json.loads(r.stdout.strip().splitlines()[-1])
    if not info["keys"] or info["worst"] > 1e-5:
        return f"{stage} {interrupt}: final weights differ from the uninterrupted run (max {info['worst']:.2e})"
    if interrupt == "scancel" and not info["resubmitted"]:
        return f"{stage} scancel: the cancelled job was not resubmitted"
    if interrupt == "requeue" and info["resubmitted"]:
        return f"{stage} requeue: the job was resubmitted instead of finishing on its own"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", default="", help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="hermes3-slurm-"))
    work.mkdir(parents=True, exist_ok=True)
    state = work / "slurm"
    t0 = time.time()
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "SLURM_CONF": str(state / "slurm.conf")}
    env.pop("HERMES3_EXECUTOR", None)
    env.pop("HERMES3_CLUSTER", None)
    problems: list[str] = []
    runs: list[subprocess.Popen] = []
    try:
        r = sh(["bash", "scripts/slurm_local.sh", "start", str(state)], env, capture_output=True)
        if r.returncode:
            print(f"slurm_check: FAILED: SLURM did not start: {r.stderr.strip()}")
            return 1
        cluster = work / "cluster.yaml"
        cluster.write_text(f"backend: slurm\ntrain_tasks: 2\npoll_seconds: 1\nfolder: {work / 'slurm-runs' / 'jobs'}\n")
        # side by side: their results do not depend on it (one thread per job either way), and each
        # fills the other's idle time (kernel starts, job start-up, SLURM's polling)
        runs = [reproduce(env, work / "local-runs"),
                reproduce(env, work / "slurm-runs", "--executor", "slurm", "--cluster", str(cluster))]
        t_local, t_slurm = (finished(p) for p in runs)
        local = json.loads((work / "local-runs" / "smoke" / "manifest.json").read_text())
        on_slurm = json.loads((work / "slurm-runs" / "smoke" / "manifest.json").read_text())
        registry = json.loads((work / "slurm-runs" / "jobs" / "registry.json").read_text())
        kinds = {r["name"].split(" (")[0].split(":")[0] for r in registry.values()}
        for want in ("base tiny-m", "main SFT run", "DPO", "FP8", "held-out likelihood SFT+DPO"):
            if not any(k.startswith(want) for k in kinds):
                problems.append(f"no SLURM job for {want!r} (jobs: {sorted(kinds)})")
        two = [r for r in registry.values() if r["resources"]["tasks_per_node"] == 2]
        if not any(r["name"] == "DPO" for r in two) or not any("SFT" in r["name"] for r in two):
            problems.append("the SFT and DPO jobs did not run as 2-task jobs")
        problems += compare(local, on_slurm, work / "local-runs", work / "slurm-runs")
        for stage, how in (("sft", "scancel"), ("dpo", "requeue")):
            bad = interrupted(env, work / "slurm-runs", cluster, stage, how)
            if bad:
                problems.append(bad)
    finally:
        for proc in runs:
            if proc.poll() is None:
                proc.kill()
        sh(["bash", "scripts/slurm_local.sh", "stop", str(state)], env, capture_output=True)
    summary = (f"{len(registry)} SLURM jobs, {len(on_slurm['stages'])} stages equal to the local run, "
               f"scancel -> resumed, requeue -> finished; local smoke {t_local:.0f} s beside SLURM smoke {t_slurm:.0f} s, "
               f"all {time.time() - t0:.0f} s (work folder {work})")
    if problems:
        print("slurm_check: FAILED: " + "; ".join(problems))
        return 1
    print("slurm_check: OK: " + summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
