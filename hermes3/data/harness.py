"""Unit tests for model-written code, with a verdict the code cannot forge.

A checker that runs ``solution + tests`` as one file and trusts the exit code passes a
wrong solution ending in ``raise SystemExit`` or ``os._exit(0)``. Here the verdict is
"the test harness reached its end", proven by a random per-call token:

1. We start the harness (``_HARNESS`` below) in the sandbox (``hermes3.data.sandbox``), with
   the token on its stdin, and ``solution.py`` / ``tests.py`` in its folder.
2. Before any model code runs, the harness reads the token into a local variable,
   replaces stdin by ``/dev/null``, and installs an audit hook (PEP 578; hooks cannot be
   removed) that refuses what would reach that variable or redirect control flow: frame
   access (``sys._getframe``, ``tb_frame``, ``gi_frame``...), ``gc`` object walks,
   ``sys.settrace``/``setprofile``, code-object construction, ``ctypes``, opening
   ``/proc`` (``/proc/self/mem``), process creation, and installing signal handlers
   (a handler is given the current frame).
3. It runs the solution in its own namespace, then restores ``builtins``, ``sys`` hooks
   and drops every module the solution imported (so tests see pristine ``unittest``,
   ``math``...), then runs the tests.
4. Only if the tests raised nothing (``SystemExit`` included) does it write the token to
   a file and leave with ``os._exit(0)`` (no ``atexit``, no ``excepthook``).

So early exits (``sys.exit``, ``raise SystemExit``, ``os._exit``, a signal), ``atexit``
or ``excepthook`` tricks, patched ``builtins`` or library asserts, and printed markers all
end without the token, and count as failures.

The price: model code cannot look at frames. ``traceback`` formatting, ``inspect`` and a
failing ``unittest`` report raise ``ValueError`` (so a wrong solution still fails, with a
less helpful reason); ``logging``, ``namedtuple``, ``enum`` and ``typing`` expect that and
carry on; processes cannot be started (nor could they under the old prelude).

Not caught: a solution that makes wrong answers *compare* equal (an object whose
``__eq__`` always returns True) passes ``assert f(x) == y`` as it would under any
in-process test runner; write tests that check types where that matters. Exploits of
CPython's own memory safety (hand-crafted bytecode through ``marshal``) are out of scope.

>>> run_tests("def add(a, b):\\n    return a + b", "assert add(1, 2) == 3")
(True, 'ok')
>>> run_tests("def add(a, b):\\n    return 3\\nraise SystemExit(0)", "assert add(2, 2) == 4")
(False, 'python: SystemExit: 0')
>>> run_tests("import os\\ndef add(a, b):\\n    return 3\\nos._exit(0)", "assert add(2, 2) == 4")
(False, 'python: exited before the tests finished (exit code 0)')
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from hermes3.data.sandbox import run_python

_HARNESS = r'''
def _harness():
    import builtins, ctypes, os, signal, _signal, sys, traceback
    # everything used once model code exists is bound here, before it exists
    write, exit_, open_, compile_, exec_, BaseException_ = os.write, os._exit, os.open, compile, exec, BaseException
    modules, bdict, flags = sys.modules, vars(builtins), os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    token, chunk = b"", b""
    while not token.endswith(b"\n"):  # the token, read before any model code exists
        chunk = os.read(0, 256)
        if not chunk:
            exit_(3)
        token += chunk
    chunk = None  # (stdin is empty now: we wrote the token and closed it)
    # not dumpable: /proc/self/mem becomes root's, so this process cannot read its own memory
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
    with open("solution.py", encoding="utf-8") as f:
        solution = f.read()
    with open("tests.py", encoding="utf-8") as f:
        tests = f.read()

    relaxed = [False]
    frames = frozenset({"sys._getframe", "tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    denied = frozenset({"sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
                        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__",
                        "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                        "subprocess.Popen", "pty.spawn", "sys.addaudithook"})
    reimport = ("signal", "_signal", "ctypes", "_ctypes")

    def hook(event, args, ValueError=ValueError, str=str):
        if event == "object.__getattr__":  # audited attributes: frames, and harmless ones like __code__
            event = str(args[1])
        if event in frames:
            if relaxed[0]:
                return
        elif not (event in denied or event.startswith("ctypes.") or (event == "import" and args[0] in reimport)):
            return
        # ValueError: what namedtuple, enum, typing and logging already expect from sys._getframe
        raise ValueError(event + " is disabled in the hermes3 test harness")

    def no_handlers(*args, **kwargs):  # a signal handler is handed the current frame
        raise ValueError("signal handlers are disabled in the hermes3 test harness")

    signal.signal = _signal.signal = no_handlers
    sys.addaudithook(hook)

    pristine = dict(bdict)
    hooks = (sys.excepthook, sys.displayhook, sys.unraisablehook, sys.breakpointhook,
             sys.stdin, sys.stdout, sys.stderr)
    before = set(modules)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    stage = "solution"
    try:
        exec_(compile_(solution, "solution.py", "exec"), namespace)
        # undo what the solution may have rigged for the tests
        bdict.clear()
        bdict.update(pristine)
        (sys.excepthook, sys.displayhook, sys.unraisablehook, sys.breakpointhook,
         sys.stdin, sys.stdout, sys.stderr) = hooks
        for name in [m for m in modules if m not in before]:
            del modules[name]
        stage = "tests"
        exec_(compile_(tests, "tests.py", "exec"), namespace)
    except BaseException_ as e:  # SystemExit and KeyboardInterrupt included
        token = None             # gone before model code (str(e)) or frame access can run
        relaxed[0] = True
        write(2, ("[hermes3 harness] " + stage + " raised\n").encode())
        traceback.print_exception(e)
        exit_(1)
    fd = open_("verdict", flags, 0o600)
    write(fd, token)
    exit_(0)


_harness()
'''


def run_tests(code: str, tests: str, timeout: float = 5.0, memory_mb: int = 512) -> tuple[bool, str]:
    """Run ``code`` then ``tests`` in the sandbox; ``(True, "ok")`` only if the harness
    reached its end (the token came back), else ``(False, "python: <why>")``."""
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="hermes3-tests-") as tmp:
        d = Path(tmp)
        (d / "solution.py").write_text(code, encoding="utf-8")
        (d / "tests.py").write_text(tests, encoding="utf-8")
        r = run_python(_HARNESS, timeout=timeout, memory_mb=memory_mb, stdin=token + "\n", workdir=d)
        verdict = d / "verdict"
        proven = verdict.is_file() and not verdict.is_symlink() and verdict.read_bytes() == (token + "\n").encode()
    if r.timed_out:
        return False, "python: timed out"
    if proven and r.returncode == 0:
        return True, "ok"
    lines = r.stderr.strip().splitlines()
    if "[hermes3 harness]" not in r.stderr or not lines:
        return False, f"python: exited before the tests finished (exit code {r.returncode})"
    return False, f"python: {lines[-1][:80]}"
