"""Hermetic test session (tests/ and the doctests in hermes3/ alike).

Every output root points into one temporary folder before anything is imported: runs, figures,
W&B, NLTK data and the evaluation cache (``hermes3.core.paths``). At the end, the session fails if it
changed a tracked file or left anything new in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent
_TMP = Path(tempfile.mkdtemp(prefix="hermes3-tests-"))
for var, sub in (("HERMES3_RUNS", "runs"), ("HERMES3_FIGURES", "figures"), ("WANDB_DIR", "wandb"),
                 ("NLTK_DATA", "nltk_data"), ("HERMES3_EVAL_CACHE", "eval-cache")):
    os.environ[var] = str(_TMP / sub)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(_TMP / "hypothesis")  # else ./.hypothesis
try:  # and its example database
    from hypothesis import settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    settings.register_profile("hermes3", database=DirectoryBasedExampleDatabase(str(_TMP / "hypothesis")))
    settings.load_profile("hermes3")
except ImportError:
    pass


def _status() -> str | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=normal"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout: nothing to compare
    # Changed and new files, ignored ones included (runs/, .hypothesis/, wandb/): only Python's
    # bytecode caches may appear.
    return "\n".join(sorted(ln for ln in out.splitlines() if "__pycache__" not in ln))


_BEFORE = _status()


def pytest_sessionfinish(session, exitstatus):
    after = _status()
    shutil.rmtree(_TMP, ignore_errors=True)
    if _BEFORE is None or after == _BEFORE or os.environ.get("HERMES3_ALLOW_DIRTY") == "1":
        return
    changed = sorted(set(after.splitlines()) ^ set(_BEFORE.splitlines()))
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(
        "hermes3: the test session changed the checkout (tests must write under a temporary folder):\n  "
        + "\n  ".join(changed[:20]), red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
