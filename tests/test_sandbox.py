"""hermes3.sandbox: model-written code is contained (loop, fork bomb, huge print, secrets)."""

import os
import time

from hermes3.sandbox import run_python


def test_runs_code_and_reports_failure():
    assert run_python("print(sum(range(10)))").stdout == "45\n"
    r = run_python("raise SystemExit(3)")
    assert r.returncode == 3 and not r.ok
    assert "ZeroDivisionError" in run_python("1/0").stderr


def test_infinite_loop_times_out():
    t0 = time.perf_counter()
    r = run_python("while True: pass", timeout=1.0)
    assert r.timed_out and not r.ok and time.perf_counter() - t0 < 10


def test_huge_print_is_capped():
    r = run_python("while True: print('x' * 1000)", timeout=5.0, max_output=10_000)
    assert r.output_truncated and not r.ok and len(r.stdout) <= 10_000


def test_fork_bomb_is_contained():
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.perf_counter()
    r = run_python(code, timeout=2.0, max_procs=16)
    assert not r.ok and time.perf_counter() - t0 < 15
    # no stray children survive the group kill
    time.sleep(0.2)
    assert run_python("print(1)").stdout == "1\n"


def test_no_inherited_secrets_and_memory_cap():
    os.environ["HF_TOKEN"] = "secret-value"
    try:
        r = run_python("import os; print(os.environ.get('HF_TOKEN'))")
        assert r.stdout == "None\n"
    finally:
        del os.environ["HF_TOKEN"]
    assert "MemoryError" in run_python("x = bytearray(2 * 1024 ** 3)", memory_mb=256).stderr


def test_process_creation_is_refused():
    r = run_python("import subprocess\nsubprocess.run(['true'])")
    assert not r.ok and "process creation is disabled" in r.stderr
