"""hermes3.data.harness: no cheat passes the unit-test checker; honest code is judged as before.

Every cheat is paired with a WRONG solution (``add`` returns 3): the old checker ran
``solution + tests`` as one file and trusted the exit code, so the early exits below
passed it.
"""

import pytest

from hermes3.data.checkers import check
from hermes3.data.harness import run_tests
from hermes3.data.sandbox import isolation_method

pytestmark = pytest.mark.skipif(isolation_method() is None, reason="no kernel isolation (bwrap) on this machine")

WRONG = "def add(a, b):\n    return 3\n"
TESTS = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"
# writes a guessed or stolen token where the harness writes the real one, then leaves "successfully"
FORGE = "\ndef _forge(tok):\n    import os\n    open('verdict', 'wb').write(tok)\n    os._exit(0)\n"


def test_honest_solutions_are_judged_as_before():
    assert run_tests("def add(a, b):\n    return a + b\n", TESTS) == (True, "ok")
    assert run_tests(WRONG, TESTS) == (False, "python: AssertionError")
    assert run_tests("def add(a, b) return a\n", TESTS)[1].startswith("python: SyntaxError")
    assert run_tests("def add(a, b):\n    return a / 0\n", TESTS) == (False, "python: ZeroDivisionError: division by zero")
    assert run_tests("def add(a, b):\n    while True: pass\n", TESTS, timeout=1.0) == (False, "python: timed out")
    # what honest code uses keeps working: stdlib helpers that peek at frames, files, unittest, big output
    honest = ("import collections, dataclasses, enum, logging, typing, pathlib\n"
              "P = collections.namedtuple('P', 'x y')\nE = enum.Enum('E', 'A B')\nT = typing.TypeVar('T')\n"
              "@dataclasses.dataclass\nclass D:\n    a: int\n"
              "logging.getLogger('x').warning('hi')\npathlib.Path('notes.txt').write_text('x')\n"
              "print('y' * 1_000)\n"
              "def add(a, b):\n    return a + b\n")
    unit = ("import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n"
            "r = unittest.TextTestRunner().run(unittest.defaultTestLoader.loadTestsFromTestCase(T))\n"
            "assert r.wasSuccessful()\n")
    assert run_tests(honest, TESTS + unit) == (True, "ok")
    # through check(), as the data filters and evaluation call it
    spec = {"kind": "python", "tests": TESTS}
    assert check(spec, "<SOLUTION>\ndef add(a, b):\n    return a + b\n</SOLUTION>") == (True, "ok")
    assert check(spec, f"<SOLUTION>\n{WRONG}import sys\nsys.exit(0)\n</SOLUTION>") == (False, "python: SystemExit: 0")


EARLY_EXITS = {
    "raise SystemExit": "raise SystemExit",
    "raise SystemExit(0)": "raise SystemExit(0)",
    "sys.exit(0)": "import sys\nsys.exit(0)",
    "os._exit(0)": "import os\nos._exit(0)",
    "SIGKILL self": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "exit in the function": "import os\ndef add(a, b):\n    os._exit(0)",
    "SystemExit in the function": "def add(a, b):\n    raise SystemExit(0)",
    "KeyboardInterrupt": "def add(a, b):\n    raise KeyboardInterrupt",
    "atexit": "import atexit, os\natexit.register(os._exit, 0)\natexit.register(print, 'ALL TESTS PASSED')",
    "excepthook": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)",
    "unraisablehook+excepthook": "import os, sys\nsys.unraisablehook = sys.excepthook = lambda *a: os._exit(0)",
}


@pytest.mark.parametrize("cheat", EARLY_EXITS, ids=list(EARLY_EXITS))
def test_early_exits_fail(cheat):
    ok, why = run_tests(WRONG + EARLY_EXITS[cheat] + "\n", TESTS)
    assert not ok and why.startswith("python: "), why


UNIT = ("import unittest\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n"
        "r = unittest.TextTestRunner().run(unittest.defaultTestLoader.loadTestsFromTestCase(T))\n"
        "assert r.wasSuccessful()\n")
PATCHES = {  # name: (patch after the wrong solution, tests it would fool if it stayed in force)
    "builtins.str": ("import builtins\nbuiltins.str = lambda x: '4'", "assert str(add(2, 2)) == '4'\n"),
    "builtins.exec": ("import builtins\nbuiltins.exec = builtins.compile = lambda *a, **k: None", TESTS),
    "harness module globals": ("import __main__\n__main__.exec = __main__.compile = lambda *a, **k: None", TESTS),
    "os._exit patched": ("import os\nos._exit = lambda code: None\nos.write = lambda fd, b: len(b)", TESTS),
    "unittest patched": ("import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None", UNIT),
}


@pytest.mark.parametrize("cheat", PATCHES, ids=list(PATCHES))
def test_patching_builtins_and_asserts_fails(cheat):
    patch, tests = PATCHES[cheat]
    ok, why = run_tests(WRONG + patch + "\n", tests)
    assert not ok, why


# walks up from a frame to the harness's and forges its token; a guess when it finds none
STEAL = FORGE + """
def _steal(frame):
    while frame is not None:
        for tok in list(frame.f_locals.values()):
            if isinstance(tok, bytes) and len(tok) == 33:
                _forge(tok)
        frame = frame.f_back
    _forge(b'0' * 32 + b'\\n')
def _scan_memory():
    import re
    f = open('/proc/self/mem', 'rb', 0)
    for line in open('/proc/self/maps').read().splitlines():
        span, perms = line.split()[:2]
        if perms.startswith('rw'):
            a, b = (int(x, 16) for x in span.split('-'))
            try:
                f.seek(a)
                m = re.search(rb'(?<![0-9a-f])[0-9a-f]{32}\\n', f.read(b - a))
            except (OSError, OverflowError):
                continue
            if m:
                _forge(m.group())
"""
THEFTS = {
    "guessed token": "_forge(b'0' * 32 + b'\\n')",
    "printed markers": "print('ok')\nprint('ALL TESTS PASSED')\n_forge(b'ok\\n')",
    "token from stdin": "import sys\n_forge(sys.stdin.buffer.read())",
    "sys._getframe": "import sys\n_steal(sys._getframe())",
    "traceback frame": "try:\n    raise ValueError\nexcept ValueError as e:\n    _steal(e.__traceback__.tb_frame)",
    "running generator frame": "def g():\n    yield _steal(gen.gi_frame)\ngen = g()\nnext(gen)",
    "inspect.stack": "import inspect\n_steal(inspect.stack()[0].frame)",
    "sys._current_frames": "import sys\n_steal(list(sys._current_frames().values())[0])",
    "settrace": "import sys\nsys.settrace(lambda f, e, a: _steal(f))\n(lambda: 0)()",
    "signal handler": "import os, signal\nsignal.signal(signal.SIGUSR1, lambda s, f: _steal(f))\nos.kill(os.getpid(), signal.SIGUSR1)",
    "ctypes PyEval_GetFrame": ("import ctypes\nget = ctypes.pythonapi.PyEval_GetFrame\nget.restype = ctypes.py_object\n"
                               "_steal(get())"),
    "/proc/self/mem": "_scan_memory()",
    # the harness prints the traceback of a failure: str(exception) is model code, frames allowed
    "exception __str__ on the failure path": ("import sys\nclass Boom(Exception):\n    def __str__(self):\n"
                                              "        _steal(sys._getframe())\nraise Boom()"),
}


@pytest.mark.parametrize("cheat", THEFTS, ids=list(THEFTS))
def test_the_token_cannot_be_guessed_or_stolen(cheat):
    """At import time and from inside the function the tests call (the token is alive then)."""
    body = "\n".join("    " + line for line in THEFTS[cheat].splitlines())
    for code in (STEAL + WRONG + THEFTS[cheat] + "\n", STEAL + f"def add(a, b):\n{body}\n    return 3\n"):
        ok, why = run_tests(code, TESTS)
        assert not ok, (cheat, why)
