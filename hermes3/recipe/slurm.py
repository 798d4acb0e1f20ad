"""The SLURM backend of ``hermes3.recipe.executor``: submitit's SLURM executor, a job registry
for re-attaching, and requeue on preemption.

Each job is submitted with ``sbatch`` (through submitit) with its resources and, when it waits for
jobs still queued or running, ``--dependency=afterok:...``. The registry, ``registry.json`` in the
job folder, maps a digest of what a job runs (``executor.job_key``) to its SLURM job id, name, log
paths, host and time of submission: asking for the same job again attaches to it while it is
queued or running, takes its result once it is done, and submits it again (saying so in one line,
with the old log) when it failed or was cancelled. Job states come from ``squeue`` (``sacct``
needs accounting storage, which many clusters and the one-host check lack).

A training job is wrapped in ``Requeueable`` (submitit's ``Checkpointable``): when SLURM
preempts it or its time limit nears, submitit requeues the same call, and the stage resumes from
its last complete checkpoint (``hermes3.recipe.pipeline``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from tqdm.auto import tqdm

from hermes3.core.quiet import in_batch
from hermes3.recipe.cluster import (
    ExecutorConfig,
    JobFailed,
    JobsPending,
    Resources,
    in_tasks,
    job_folder,
    job_key,
    job_threads,
)

# Records of the jobs submitted or attached to since the last manifest entry: ``Recipe.record``
# takes them into the stage it records (job ids, state, logs, host and time of submission).
SINCE_LAST_RECORD: list[dict] = []

ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "REQUEUE_HOLD",
          "REQUEUE_FED", "STAGE_OUT", "SIGNALING"}


def _checkpointable():
    import submitit

    class Requeueable(submitit.helpers.Checkpointable):
        """``fn(arg)``, requeued with the same call on preemption or timeout (submitit's default
        ``checkpoint``): the stage resumes from its last complete checkpoint when it runs again."""

        def __init__(self, fn):
            self.fn = fn

        def __call__(self, arg):
            return self.fn(arg)

    return Requeueable


def sbatch_parameters(res: Resources, cfg: ExecutorConfig, name: str, depends_on: list[str]) -> dict:
    """submitit ``update_parameters`` for one job: its resources, the cluster file's partition,
    account and QoS, and its dependencies.

    >>> p = sbatch_parameters(Resources(nodes=6, tasks_per_node=8, gpus_per_node=8, timeout_min=600),
    ...                       ExecutorConfig(backend="slurm", partition="h100"), "sft 8B", ["41", "42"])
    >>> p["nodes"], p["tasks_per_node"], p["gpus_per_node"], p["timeout_min"], p["slurm_partition"]
    (6, 8, 8, 600, 'h100')
    >>> p["slurm_additional_parameters"]
    {'dependency': 'afterok:41:42'}
    """
    p = {"name": name.replace(" ", "_")[:60], "nodes": res.nodes, "tasks_per_node": res.tasks_per_node,
         "cpus_per_task": res.cpus_per_task, "timeout_min": res.timeout_min, "slurm_signal_delay_s": 120}
    if res.gpus_per_node:
        p["gpus_per_node"] = res.gpus_per_node
    for key in ("partition", "account", "qos"):
        if getattr(cfg, key):
            p[f"slurm_{key}"] = getattr(cfg, key)
    if depends_on:
        p["slurm_additional_parameters"] = {"dependency": "afterok:" + ":".join(depends_on)}
    return p


class Registry:
    """``registry.json`` in the job folder: job key -> the job's record (written whole each time)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "registry.json"

    def read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def put(self, key: str, record: dict) -> None:
        data = self.read()
        data[key] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)


def slurm_state(job_id: str) -> str | None:
    """The job's state from ``squeue`` (None when SLURM no longer lists it: finished, failed or cancelled)."""
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    states = [s.strip() for s in out.stdout.splitlines() if s.strip()]
    return states[0] if out.returncode == 0 and states else None


def _attach(folder: Path, job_id: str):
    import submitit

    return submitit.SlurmJob(folder=folder, job_id=str(job_id), tasks=(0,))


def _outcome(job) -> tuple[str, object]:
    """``("done", result)``, ``("failed", why)`` or ``("active", state)`` of a submitted job."""
    state = slurm_state(job.job_id)
    if state in ACTIVE:
        return "active", state
    result = Path(str(job.paths.result_pickle).replace("%t", "0"))
    if not result.exists():
        return "failed", f"ended without a result ({state or 'no longer queued'}: cancelled, killed or out of time)"
    import pickle

    with result.open("rb") as f:
        status, value = pickle.load(f)
    if status == "success":
        return "done", value
    return "failed", str(value).strip().splitlines()[-1] if value else "raised"


def run_on_slurm(fn, jobs: list, names: list[str], after: dict, resources: list[Resources], cfg: ExecutorConfig,
                 desc: str) -> list:
    """Submit (or attach to) every job, then wait for all unless ``cfg.wait`` is false."""
    import submitit

    logging.getLogger("submitit").setLevel(logging.ERROR)  # its sacct fallback warns on every poll
    folder = job_folder(cfg)
    registry = Registry(folder)
    known = registry.read()
    handles: dict[int, object] = {}
    results: dict[int, object] = {}
    Requeueable = _checkpointable()
    for i, job in enumerate(jobs):
        key = job_key(desc, names[i], fn, job)
        rec = known.get(key)
        if rec is not None:
            old = _attach(folder / key, rec["job_id"])
            kind, value = _outcome(old)
            if kind in ("done", "active"):
                SINCE_LAST_RECORD.append({**rec, "state": "COMPLETED" if kind == "done" else value})
            if kind == "done":
                results[i] = value
                continue
            if kind == "active":
                handles[i] = old
                continue
            print(f"[hermes3] {desc}: job {names[i]!r} (SLURM {rec['job_id']}) {value}: submitting it again "
                  f"(log: {rec['stderr']})", flush=True)
        depends = [str(handles[d].job_id) for d in sorted(after.get(i, ())) if d in handles]
        ex = submitit.AutoExecutor(folder=folder / key, cluster="slurm")
        ex.update_parameters(**sbatch_parameters(resources[i], cfg, names[i], depends))
        target = Requeueable(in_tasks) if resources[i].tasks > 1 else Requeueable(_one_task)
        submitted = ex.submit(target, (fn, job))
        handles[i] = submitted
        rec = {"job_id": str(submitted.job_id), "name": names[i], "stage": desc, "host": socket.gethostname(),
               "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "stdout": str(submitted.paths.stdout).replace("%t", "0"),
               "stderr": str(submitted.paths.stderr).replace("%t", "0"), "resources": vars(resources[i])}
        registry.put(key, rec)
        SINCE_LAST_RECORD.append({**rec, "state": "SUBMITTED"})
    if handles and not cfg.wait:
        ids = ", ".join(f"{names[i]} = {h.job_id}" for i, h in handles.items())
        raise JobsPending(f"{desc}: {len(handles)} SLURM job(s) submitted ({ids}); run the same cell or command "
                          "again to follow them")
    # tqdm.notebook passes disable=False itself, so a reproduce kernel's TQDM_DISABLE never reaches this bar
    bar = tqdm(total=len(jobs), initial=len(results), desc=f"{desc} (SLURM)", disable=in_batch())
    try:
        while handles:
            states = {}
            for i, h in list(handles.items()):
                kind, value = _outcome(h)
                if kind == "active":
                    states[value] = states.get(value, 0) + 1
                    continue
                if kind == "failed":
                    rec = registry.read().get(job_key(desc, names[i], fn, jobs[i]), {})
                    raise JobFailed(f"{desc}: job {names[i]!r} (SLURM {h.job_id}) failed: {value} "
                                    f"(log: {rec.get('stderr', h.paths.stderr)}); run it again to resubmit")
                results[i] = value
                del handles[i]
                for r in SINCE_LAST_RECORD:
                    if r["job_id"] == str(h.job_id):
                        r["state"] = "COMPLETED"
                bar.update(1)
            bar.set_postfix_str(", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
            if handles:
                time.sleep(cfg.poll_seconds)
    finally:
        bar.close()
    return [results[i] for i in range(len(jobs))]


def _one_task(pair):
    import torch

    fn, arg = pair
    if not torch.cuda.is_available():
        torch.set_num_threads(job_threads())
    return fn(arg)
