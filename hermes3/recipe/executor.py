"""Where the recipe's jobs run: side by side on this machine, or as jobs of a SLURM cluster.

Every stage hands its work here as a list of jobs (``run_all``): base pre-training, the
LR-search, loss-curve and main SFT runs, DPO, evaluations and held-out scoring. The stages do
not know which backend runs them; ``$HERMES3_EXECUTOR`` (or the ``backend`` of the cluster file
in ``$HERMES3_CLUSTER``) picks one:

* ``local`` (default): loky's reusable process pool, one worker per core with one torch thread
  each (at demo size, two 1-thread processes do 1.4x the work of one 2-thread process). A worker
  pays its imports once and, before each job, restores what a fresh interpreter has (an unseeded
  torch generator, the environment, the working directory, the thread count), so a job's result
  does not depend on which jobs ran before it in that worker. A job of several tasks (one
  process per GPU, or 2 gloo processes on a CPU) runs through submitit's ``LocalExecutor``.
  With one worker (``HERMES3_WORKERS=1``, or a GPU) one-task jobs run in this process.
* ``slurm``: submitit's SLURM executor. Every job is submitted at once with its dependencies
  (``afterok``), with the resources its stage needs (nodes, tasks and GPUs per node, time
  limit) and the cluster file's partition, account and QoS. Job ids go to a registry in the job
  folder, so running the same stage again re-attaches to jobs still queued or running instead
  of submitting them twice; a job that failed is submitted again and named in one line with its
  log. Training jobs are requeued by submitit when SLURM preempts them or their time runs out,
  and resume from their last complete checkpoint. With ``wait: false`` the call returns at once
  (``JobsPending``, naming the job ids); running it again shows progress or the results.

A job's dependencies are ``after[i]``: the jobs that must finish before job ``i`` starts (an
LR-search run waits for its own base, not for the other bases).

Progress is a bar, except in a kernel of ``hermes3 reproduce`` (``HERMES3_BATCH=1``), whose saved
cells would keep the bar's first frame: there each change (a job done, another started) is one JSON
line appended to the file ``$HERMES3_PROGRESS`` names, which ``pipeline.run_notebooks`` relays to
its terminal.

>>> run_all(abs, [-1, 2, -3], workers=1, desc="abs")
[1, 2, 3]
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from hermes3.core.quiet import in_batch
from hermes3.recipe.cluster import (
    ONE,
    ExecutorConfig,
    JobFailed,
    Resources,
    cores,
    executor_config,
    in_tasks,
    job_folder,
)

PROGRESS = "HERMES3_PROGRESS"  # the file a notebook's run_all reports to (pipeline.run_notebooks reads it)


def default_workers(jobs: int) -> int:
    """``HERMES3_WORKERS`` if set, else 1 with a GPU, else one worker per core (at most ``jobs``)."""
    env = os.environ.get("HERMES3_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"HERMES3_WORKERS must be a positive integer, got {env!r}")
        return min(int(env), max(jobs, 1))
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(cores(), jobs))


def call(pair: tuple[Callable, object]):
    """``function(argument)`` of a ``(function, argument)`` pair: ``run_all(call, pairs)``."""
    fn, arg = pair
    return fn(arg)


def run_all(fn: Callable, jobs: Sequence, workers: int | None = None, desc: str = "jobs",
            names: Sequence[str] | None = None, after: dict[int, Sequence[int]] | None = None,
            resources: Sequence[Resources] | None = None) -> list:
    """``[fn(job) for job in jobs]`` on the configured backend; results in job order.

    ``fn`` must be importable (a module-level function) and jobs and results picklable; ``fn=call``
    runs ``(function, argument)`` pairs, so one call can hold jobs of different kinds. ``names``
    label the jobs in errors, the progress bar and the job registry. ``resources[i]`` is what job
    ``i`` needs (default: one task on one node)."""
    jobs = list(jobs)
    names = list(names) if names is not None else [str(i) for i in range(len(jobs))]
    after = {i: set(d) for i, d in (after or {}).items()}
    for i, deps in after.items():
        if not (0 <= i < len(jobs)) or any(not (0 <= d < len(jobs)) or d >= i for d in deps):
            raise ValueError(f"{desc}: after[{i}] = {sorted(deps)}: a job can only wait for earlier jobs")
    resources = list(resources) if resources is not None else [ONE] * len(jobs)
    if not jobs:
        return []
    cfg = executor_config()
    if cfg.backend == "slurm":
        from hermes3.recipe.slurm import run_on_slurm  # submitit, imported when used

        return run_on_slurm(fn, jobs, names, after, resources, cfg, desc)
    workers = default_workers(len(jobs)) if workers is None else workers
    if workers <= 1 and all(r.tasks == 1 for r in resources):
        return _run_here(fn, jobs, names, desc)
    return _run_local(fn, jobs, names, after, resources, max(workers, 1), desc, cfg)


class Progress:
    """How far a ``run_all`` call is: a tqdm bar labelled ``bar`` (none when None, and none in a
    ``hermes3 reproduce`` kernel), and lines for the file ``$HERMES3_PROGRESS`` when it is set
    (``{"desc", "done", "total", "running", "seconds"}``)."""

    def __init__(self, desc: str, total: int, bar: str | None = None):
        self.desc, self.total, self.done, self.start = desc, total, 0, time.time()
        # tqdm.notebook passes disable=False itself, so the kernel's TQDM_DISABLE never reaches its bar
        self.bar = tqdm(total=total, desc=bar, disable=bar is None or in_batch())
        self.relay = os.environ.get(PROGRESS)

    def finished(self, name: str) -> None:
        self.done += 1
        self.bar.update(1)
        self.bar.set_postfix_str(f"done: {name}")

    def show(self, running: list[str]) -> None:
        """Report the state: jobs done so far and those running now (file only: the bar shows its own)."""
        if not self.relay:
            return
        line = {"desc": self.desc, "done": self.done, "total": self.total, "running": running,
                "seconds": round(time.time() - self.start, 1)}
        with open(self.relay, "a") as f:
            f.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.show([])
        self.bar.close()


def _run_here(fn, jobs, names, desc) -> list:
    """Every job in this process, in list order (which already puts each after its dependencies)."""
    progress, results = Progress(desc, len(jobs)), []
    try:
        for name, job in zip(names, jobs):
            progress.show([name])
            results.append(fn(job))
            progress.finished(name)
    finally:
        progress.close()
    return results


def _run_local(fn, jobs, names, after, resources, workers, desc, cfg) -> list:
    """One-task jobs in loky's reusable pool; several-task jobs through submitit's local executor,
    alone (they take every core)."""
    from loky import get_reusable_executor

    # loky restarts a worker whose memory grew by over 300 MB since its first job, and says so once as a
    # possible leak. Here it is no leak: jobs differ in size (a base pre-trained, then a larger one), and
    # the restart is harmless (every job starts from a fresh state anyway, _fresh). Only that warning is
    # ignored: a worker that stopped (killed, out of memory) still warns, and fails its job.
    warnings.filterwarnings("ignore", message="A worker was restarted while some jobs were given",
                            category=UserWarning, module="loky")
    threads = max(1, cores() // workers)
    state = (dict(os.environ), os.getcwd(), threads)
    # workers import what this process imports (a checkout on sys.path, not only the installed one)
    pool = get_reusable_executor(max_workers=workers, timeout=300,
                                 env={"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    results: list = [None] * len(jobs)
    pending, finished, running, changed = list(range(len(jobs))), set(), {}, True
    progress = Progress(desc, len(jobs), bar=f"{desc} ({workers} processes x {threads} thread{'s' * (threads > 1)})")
    try:
        while pending or running:
            for i in [i for i in pending if after.get(i, set()) <= finished]:
                multi = resources[i].tasks > 1
                if multi and running or len(running) >= workers or any(isinstance(r, _TaskJob) for r in running.values()):
                    break  # a several-task job runs alone; the pool takes one job per worker
                pending.remove(i)
                running[i] = (_TaskJob(fn, jobs[i], resources[i], names[i], cfg) if multi
                              else pool.submit(_fresh, fn, jobs[i], state))
            if changed:
                progress.show([names[i] for i in running])
                changed = False
            time.sleep(0.05)
            for i, job in list(running.items()):
                if not job.done():
                    continue
                del running[i]
                try:
                    results[i] = job.result()
                except Exception as e:  # one line; the worker's traceback is the cause (--debug)
                    raise JobFailed(f"{desc}: job {names[i]!r} {_why(e)}") from e
                finished.add(i)
                progress.finished(names[i])
                changed = True
    except BaseException:  # a failed job or Ctrl-C: stop the other jobs too
        for job in running.values():
            job.cancel()
        pool.shutdown(wait=False, kill_workers=True)
        raise
    finally:
        progress.close()
    return results


def _why(e: Exception) -> str:
    from loky.process_executor import TerminatedWorkerError

    if isinstance(e, TerminatedWorkerError):  # a segfault, os._exit, or the OOM killer
        codes = re.findall(r"EXIT\((-?\d+)\)", str(e))
        return f"died (exit code {', '.join(codes) or 'unknown'})"
    first = str(e).strip().splitlines()
    return f"failed: {type(e).__name__}: {first[0] if first else ''}"


def _fresh(fn, job, state):
    """Run ``fn(job)`` in a pool worker from a fresh interpreter's state (see the module docstring)."""
    import torch

    from hermes3.core.quiet import import_wandb_integration_quietly, quiet

    environ, cwd, threads = state
    if environ.get("HERMES3_QUIET") == "1":
        quiet()  # a notebook's workers log as quietly as its kernel
    import_wandb_integration_quietly()  # the parent has already shown the banner, if any
    torch.seed()  # a fresh interpreter's torch seed is random too, never the last job's
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    torch.set_num_threads(threads)
    return fn(job)


class _TaskJob:
    """A several-task job on this machine (submitit ``LocalExecutor``), future-like: ``done``,
    ``result`` (rank 0's) and ``cancel``."""

    def __init__(self, fn, job, res: Resources, name: str, cfg: ExecutorConfig):
        import submitit

        folder = job_folder(cfg) / "local"
        ex = submitit.LocalExecutor(folder=str(folder))
        ex.update_parameters(tasks_per_node=res.tasks_per_node, nodes=1, timeout_min=res.timeout_min,
                             gpus_per_node=res.gpus_per_node)
        self.job, self.name = ex.submit(in_tasks, (fn, job)), name

    def done(self) -> bool:
        return self.job.done()

    def result(self):
        try:
            return self.job.results()[0]
        except Exception as e:
            raise RuntimeError(f"{e} (log: {self.job.paths.stderr})") from None

    def cancel(self) -> None:
        if not self.job.done():
            self.job.cancel()


def balance(costs: dict, parts: int) -> list[list]:
    """The keys of ``costs`` in at most ``parts`` groups of about equal total cost: longest first,
    each into the lightest group so far (LPT). Groups keep ``costs``' order; no empty groups.

    >>> balance({"a": 5, "b": 3, "c": 3, "d": 1}, 2)
    [['a', 'd'], ['b', 'c']]
    """
    groups: list[list] = [[] for _ in range(max(1, parts))]
    load = [0.0] * len(groups)
    for key in sorted(costs, key=lambda k: -costs[k]):
        i = load.index(min(load))
        groups[i].append(key)
        load[i] += costs[key]
    order = {k: i for i, k in enumerate(costs)}
    return [sorted(g, key=order.get) for g in groups if g]
