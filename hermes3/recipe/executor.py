"""Independent CPU training jobs side by side, one thread each.

Why: at demo size a second torch thread buys little. Measured on the 2-core demo machine
(tiny-m pre-training, 300 steps): one process with 2 threads ran 1.7 steps/s; two processes
with 1 thread each ran 1.2 steps/s *each*, i.e. 1.4x the throughput. The LR search (Fig. 2)
and the three base sizes and their loss-curve runs (Fig. 4) are independent jobs, so the recipe
runs them here first; its usual sequential loop then finds every run complete and only reads it.

Each worker is an interpreter of its own (``python -m hermes3.recipe.executor``, with this process's
import path and ``torch.set_num_threads(cores // workers)``) that runs one job after another for
the length of one ``run_all`` call: it pays the imports (torch, transformers, lm-eval: ~7-9 s on
the 2-core demo machine) once, not once per job. Before each job it restores what a fresh
interpreter would have: an unseeded torch generator, the environment, the working directory and the
thread count, so a job's result does not depend on which jobs ran before it in that worker. Not
``multiprocessing``: its ``spawn`` re-imports the caller's script, so a script without an ``if
__name__ == "__main__"`` guard (the README's snippets) would run itself again in every worker; and
``fork`` copies a process holding torch's thread pool or a Jupyter kernel. A job's own progress bar
goes to stderr; the caller sees one bar over jobs. A failing job stops the others and is re-raised
here with its name and traceback. With a GPU, one worker or one job, the jobs run in this process,
one after another.

``HERMES3_WORKERS`` overrides the number of workers (``1`` = sequential, in process).

>>> run_all(abs, [-1, 2, -3], workers=1, desc="abs")
[1, 2, 3]
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


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
    return max(1, min(_cores(), jobs))


def run_all(fn: Callable, jobs: Sequence, workers: int | None = None, desc: str = "jobs",
            names: Sequence[str] | None = None, after: dict[int, Sequence[int]] | None = None) -> list:
    """``[fn(job) for job in jobs]``, run in ``workers`` processes; results in job order.

    ``fn`` must be importable (a module-level function) and jobs and results picklable (configs
    are dataclasses); ``fn=call`` runs ``(function, argument)`` pairs, so one pool can hold jobs of
    different kinds. ``names`` label the jobs in errors and the progress bar. ``after[i]`` lists
    the jobs that must finish before job ``i`` starts (an LR-search run waits for its base, not
    for the other bases); otherwise a free worker takes the first waiting job in list order."""
    jobs = list(jobs)
    names = list(names) if names is not None else [str(i) for i in range(len(jobs))]
    after = {i: set(d) for i, d in (after or {}).items()}
    for i, deps in after.items():
        if not (0 <= i < len(jobs)) or any(not (0 <= d < len(jobs)) or d >= i for d in deps):
            raise ValueError(f"{desc}: after[{i}] = {sorted(deps)}: a job can only wait for earlier jobs")
    workers = default_workers(len(jobs)) if workers is None else workers
    if workers <= 1 or len(jobs) <= 1:
        return [fn(job) for job in jobs]  # list order already puts every job after its dependencies
    threads = max(1, _cores() // workers)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    results: list = [None] * len(jobs)
    pending, finished = list(range(len(jobs))), set()
    procs: list[subprocess.Popen] = []
    busy: dict[int, int] = {}  # worker -> the job it runs
    bar = tqdm(total=len(jobs), desc=f"{desc} ({workers} processes x {threads} thread{'s' * (threads > 1)})")
    with tempfile.TemporaryDirectory(prefix="hermes3-parallel-") as tmp:
        try:
            while pending or busy:
                for w in [w for w in range(workers) if w not in busy]:
                    ready = [i for i in pending if after.get(i, set()) <= finished]
                    if not ready:
                        break
                    i = ready[0]
                    pending.remove(i)
                    if w == len(procs):  # started on first use: a pool of 2 jobs on 4 cores starts 2
                        procs.append(subprocess.Popen([sys.executable, "-m", "hermes3.recipe.executor", str(threads)],
                                                      env=env, stdin=subprocess.PIPE, text=True))
                    job_file = Path(tmp) / f"{i}.job"
                    job_file.write_bytes(pickle.dumps((fn, jobs[i])))
                    busy[w] = i
                    try:
                        procs[w].stdin.write(f"{job_file}\n")
                        procs[w].stdin.flush()
                    except BrokenPipeError:  # the worker is gone: reported with the job's name below
                        pass
                time.sleep(0.1)
                for w, i in list(busy.items()):
                    out_file = Path(tmp) / f"{i}.out"
                    if not out_file.exists():  # written whole (renamed into place) when the job ends
                        if procs[w].poll() is not None:
                            raise RuntimeError(f"{desc}: job {names[i]!r} died (exit code {procs[w].returncode})")
                        continue
                    del busy[w]
                    ok, value = pickle.loads(out_file.read_bytes())
                    if not ok:
                        raise RuntimeError(f"{desc}: job {names[i]!r} failed: {value}")
                    results[i] = value
                    finished.add(i)
                    bar.update(1)
                    bar.set_postfix_str(f"done: {names[i]}")
            for proc in procs:  # end of input: each worker exits after its last job
                proc.stdin.close()
                proc.wait()
        finally:
            for proc in procs:  # an error or Ctrl-C here: stop the other jobs too
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            bar.close()
    return results


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


def call(pair: tuple[Callable, object]):
    """``function(argument)`` of a ``(function, argument)`` pair: ``run_all(call, pairs)``."""
    fn, arg = pair
    return fn(arg)


def _worker(threads: int) -> None:
    """Run the job files named on stdin, one per line, until stdin closes; each result goes
    to the job file's ``.out`` sibling, renamed into place whole."""
    import traceback

    import torch

    from hermes3.core.quiet import import_wandb_integration_quietly, quiet

    if os.environ.get("HERMES3_QUIET") == "1":
        quiet()  # a notebook's workers log as quietly as its kernel
    import_wandb_integration_quietly()  # the parent has already shown the banner, if any
    # What a fresh interpreter starts with, restored before each job (see the module docstring).
    environ, cwd = dict(os.environ), os.getcwd()
    # The job list arrives on stdin; a job that reads stdin gets /dev/null, not the job list.
    jobs = os.fdopen(os.dup(0), "r")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.stdin = open(os.devnull)
    for line in jobs:
        job_file = Path(line.rstrip("\n"))
        torch.seed()  # a fresh interpreter's torch seed is random too, never the last job's
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        torch.set_num_threads(threads)
        fn, job = pickle.loads(job_file.read_bytes())
        try:
            out = (True, fn(job))
        except Exception as e:  # handed back to run_all, which raises it with the job's name
            out = (False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        tmp = job_file.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(out))
        os.replace(tmp, job_file.with_suffix(".out"))


if __name__ == "__main__":
    _worker(int(sys.argv[1]))
