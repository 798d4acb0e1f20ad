"""Run untrusted (model-written) Python in a contained subprocess.

Model-generated code never runs in our process. ``run_python`` starts a fresh
interpreter in isolated mode (``-I``: no user site, no PYTHON* variables) in an empty
temporary folder, with:

* a wall-clock timeout, after which the whole process group is killed;
* ``RLIMIT_CPU`` / ``RLIMIT_AS`` caps on CPU seconds and address space;
* stdout/stderr written to files capped by ``RLIMIT_FSIZE`` (a huge print gets SIGXFSZ
  instead of filling our memory), and read back truncated to ``max_output``;
* a minimal environment (no inherited secrets such as tokens or API keys);
* a fork-bomb guard: a prelude replaces ``os.fork``, ``os.system``, the ``spawn``/``exec``
  family and ``subprocess.Popen`` with functions that raise ``PermissionError``, and
  ``RLIMIT_NPROC`` caps processes (the kernel ignores it for root, so as root the child
  drops to ``nobody`` when the interpreter is reachable by that user).

It does not cut the network; do not run code you would not run on a sandboxed CI box.

>>> run_python("print(6 * 7)").stdout
'42\\n'
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
# Runs before the user's code. Not a security boundary against hostile code (ctypes can
# get around it) but it stops the runaway process creation model code produces.
_PRELUDE = """import os as _os, subprocess as _sp
def _denied(*a, **k):
    raise PermissionError("process creation is disabled in the hermes3 sandbox")
for _n in ("fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "execv", "execve", "execl",
           "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe",
           "spawnv", "spawnve", "spawnvp", "spawnvpe"):
    if hasattr(_os, _n):
        setattr(_os, _n, _denied)
_sp.Popen = _denied
del _n
"""


def _reachable_by_others(path: str) -> bool:
    """Can a non-owner execute ``path`` (every parent folder searchable)?"""
    p = Path(path).resolve()
    if not p.stat().st_mode & 0o001:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in p.parents)


@dataclass
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    output_truncated: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _limits(cpu_s: int, memory_mb: int, max_output: int, max_procs: int, drop_root: bool):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_output, max_output))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if drop_root:  # NPROC is not enforced for root: become nobody first
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (max_procs, max_procs))

    return apply


def run_python(code: str, timeout: float = 5.0, memory_mb: int = 512, max_output: int = 20_000,
               max_procs: int = 64, stdin: str = "") -> SandboxResult:
    """Run ``code`` with the limits above; never raises for what the code does."""
    with tempfile.TemporaryDirectory(prefix="hermes3-sandbox-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o777)  # the child may run as nobody
        (d / "main.py").write_text(_PRELUDE + code, encoding="utf-8")
        out_p, err_p = d / "stdout.txt", d / "stderr.txt"
        drop_root = os.geteuid() == 0 and _reachable_by_others(sys.executable)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "HOME": tmp}
        t0 = time.perf_counter()
        with open(out_p, "wb") as out, open(err_p, "wb") as err:
            os.chmod(out_p, 0o666)
            os.chmod(err_p, 0o666)
            proc = subprocess.Popen([sys.executable, "-I", "main.py"], cwd=d, env=env, stdin=subprocess.PIPE,
                                    stdout=out, stderr=err,
                                    preexec_fn=_limits(int(timeout) + 1, memory_mb, max_output, max_procs, drop_root))
            timed_out = False
            try:
                proc.communicate(stdin.encode(), timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:  # kill the whole group: children of a fork bomb included
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        seconds = time.perf_counter() - t0
        raw_out, raw_err = out_p.read_bytes(), err_p.read_bytes()
        truncated = len(raw_out) >= max_output or len(raw_err) >= max_output or proc.returncode == -signal.SIGXFSZ
        return SandboxResult(None if timed_out else proc.returncode, raw_out[:max_output].decode("utf-8", "replace"),
                             raw_err[:max_output].decode("utf-8", "replace"), timed_out, truncated, seconds)
