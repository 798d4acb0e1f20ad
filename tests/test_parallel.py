"""hermes3.recipe.executor: jobs in spawned one-thread worker processes (each runs jobs one after another,
from a fresh state), results in job order, errors named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hermes3.recipe.cluster import JobFailed
from hermes3.recipe.executor import call, default_workers, run_all


def _threads_and_pid(x):
    import torch

    return x * 10, torch.get_num_threads(), os.getpid()


def _fail_on_two(x):
    if x == 2:
        raise ValueError("two is bad")
    return x


def _exit_hard_on_one(x):
    if x == 1:
        os._exit(3)
    return x


def test_jobs_run_in_other_processes_in_job_order():
    out = run_all(_threads_and_pid, [3, 1, 2], workers=2, desc="test")
    assert [v for v, _, _ in out] == [30, 10, 20]
    assert all(pid != os.getpid() for _, _, pid in out)
    cores = len(os.sched_getaffinity(0))
    assert {t for _, t, _ in out} == {max(1, cores // 2)}


def _state_job(job):
    """``mutate`` leaves behind what a careless job could (a torch seed, an environment variable, a
    working directory, a thread count); ``report`` returns what a job starts with; ``sleep`` first
    keeps its worker busy, so that the other worker runs the next ready job."""
    import time

    import torch

    action, tmp = job
    if action == "mutate":
        torch.manual_seed(123)
        os.environ["HERMES3_TEST_LEFTOVER"] = "1"
        os.chdir(tmp)
        torch.set_num_threads(7)
    elif action == "sleep":
        time.sleep(3)
    return (os.getpid(), torch.rand(3).tolist(), os.environ.get("HERMES3_TEST_LEFTOVER"), os.getcwd(),
            torch.get_num_threads(), sys.stdin.read())


def test_a_worker_runs_jobs_one_after_another_each_from_a_fresh_state(tmp_path, monkeypatch):
    """Workers are reused (imports paid once, not per job), so the state a job leaves must not
    reach the next: ``_fresh``, which runs every pool job, restores a fresh interpreter's state.
    A report after a mutating job equals a report before it, and 4 jobs ran in at most 2 workers."""
    from hermes3.recipe.executor import _fresh

    pids = {pid for _, _, pid in run_all(_threads_and_pid, [1, 2, 3, 4], workers=2)}
    assert 1 <= len(pids) <= 2
    in_worker = run_all(_state_job, [("report", str(tmp_path))] * 2, workers=2)
    assert all(r[5] == "" for r in in_worker)  # a job that reads stdin gets nothing, not the caller's input
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(""))
    state = (dict(os.environ), os.getcwd(), 2)
    saved = (dict(os.environ), os.getcwd(), __import__("torch").get_num_threads())
    try:
        fresh = _fresh(_state_job, ("report", str(tmp_path)), state)
        _fresh(_state_job, ("mutate", str(tmp_path)), state)
        after_mutation = _fresh(_state_job, ("report", str(tmp_path)), state)
    finally:
        os.environ.clear()
        os.environ.update(saved[0])
        os.chdir(saved[1])
        __import__("torch").set_num_threads(saved[2])
    import torch

    torch.manual_seed(123)
    assert after_mutation[1] != torch.rand(3).tolist()  # not the seed the last job set
    assert after_mutation[2:5] == fresh[2:5] == (None, os.getcwd(), 2)


def _dag_job(job):
    """Files instead of clocks (a worker's start-up takes seconds): ``wait`` blocks until the
    file exists, ``write`` creates it, ``check`` reports whether it exists."""
    import time

    action, path = job
    path = Path(path)
    if action == "write":
        path.write_text("x")
        return True
    if action == "check":
        return path.exists()
    deadline = time.time() + 60
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    (path.parent / "slow-done").write_text("x")
    return path.exists()


def test_a_job_waits_for_its_dependencies_only(tmp_path):
    """An LR-search run waits for its own base, not for the other bases: a free worker takes the
    first job whose dependencies are done. The slow base only finishes once the run on the fast
    base has run, so waiting for every base would time it out."""
    jobs = [("wait", tmp_path / "fast-run"), ("check", tmp_path / "nothing"),
            ("check", tmp_path / "slow-done"), ("write", tmp_path / "fast-run")]
    slow, _, run_on_slow, run_on_fast = run_all(_dag_job, jobs, workers=2, after={2: [0], 3: [1]})
    assert slow and run_on_fast and run_on_slow
    with pytest.raises(ValueError, match=r"after\[0\] = \[1\]: a job can only wait for earlier jobs"):
        run_all(_dag_job, jobs[:2], workers=2, after={0: [1]})


def test_call_runs_mixed_jobs():
    assert run_all(call, [(abs, -2), (str, 3)], workers=2) == [2, "3"]


def test_one_worker_runs_in_this_process():
    out = run_all(_threads_and_pid, [1, 2], workers=1)
    assert [pid for _, _, pid in out] == [os.getpid()] * 2


def test_a_failing_job_is_named_in_one_line():
    with pytest.raises(JobFailed) as e:
        run_all(_fail_on_two, [1, 2], workers=2, desc="demo", names=["a", "b"])
    assert str(e.value) == "demo: job 'b' failed: ValueError: two is bad"
    assert "_fail_on_two" in str(e.value.__cause__.__cause__)  # the worker's traceback, for --debug
    with pytest.raises(JobFailed, match=r"^demo: job 'a' died \(exit code 3\)$"):
        run_all(_exit_hard_on_one, [1, 2], workers=2, desc="demo", names=["a", "b"])
    assert run_all(abs, [-1, -2], workers=2) == [1, 2]  # the next call gets a working pool


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """multiprocessing's spawn would re-run this script in each worker (the README's snippets have
    no ``if __name__ == "__main__"``); our workers only import what the job needs."""
    script = tmp_path / "snippet.py"
    script.write_text("from hermes3.recipe.executor import run_all\nprint('start')\nprint(run_all(abs, [-1, -2, 3], workers=2))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "start\n[1, 2, 3]\n"


def test_workers_do_not_repeat_the_wandb_offline_banner(tmp_path):
    """transformers prints "[INFO] Running in WANDB offline mode" on import; a notebook cell that
    runs jobs in parallel must not show it once per worker."""
    script = tmp_path / "banner.py"
    script.write_text("from hermes3.recipe.executor import run_all\n"
                      "print(run_all(exec, ['import transformers.integrations.integration_utils'] * 2, workers=2))\n")
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[None, None]\n"


def test_workers_of_a_quiet_notebook_are_quiet(tmp_path):
    """lm-eval logs routine choices as warnings ("Overwriting default num_fewshot ..."); a notebook
    silences them (hermes3.core.quiet.quiet), and its workers must too, or they reach the cell."""
    script = tmp_path / "quiet.py"
    script.write_text("import logging\nfrom hermes3.core.quiet import quiet\nfrom hermes3.recipe.executor import call, run_all\n"
                      "quiet()\nrun_all(call, [(logging.getLogger('lm_eval').warning, 'routine')] * 2, workers=2)\n"
                      "run_all(call, [(logging.getLogger('lm_eval').error, 'real problem')] * 2, workers=2)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "routine" not in out.stderr and out.stderr.count("real problem") == 2


def test_workers_env(monkeypatch):
    monkeypatch.setenv("HERMES3_WORKERS", "3")
    assert default_workers(5) == 3 and default_workers(2) == 2
    monkeypatch.setenv("HERMES3_WORKERS", "0")
    with pytest.raises(ValueError, match="HERMES3_WORKERS must be a positive integer, got '0'"):
        default_workers(2)


def test_no_bar_in_a_reproduce_kernel(monkeypatch):
    """tqdm.notebook passes disable=False to tqdm itself, so TQDM_DISABLE does not reach a kernel's bar,
    whose first frame would be saved in the notebook: under ``hermes3 reproduce`` there is none."""
    from hermes3.recipe.executor import Progress

    assert not Progress("jobs", 2, bar="jobs (2 processes)").bar.disable
    monkeypatch.setenv("HERMES3_BATCH", "1")
    assert Progress("jobs", 2, bar="jobs (2 processes)").bar.disable
