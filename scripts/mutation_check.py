"""Mutation check: do the tests catch small defects planted in the production code?

Each entry of ``scripts/mutations.yaml`` (beside this file) is one small edit (a sign flip, swapped
bounds, an inverted flag, an off-by-one, a dropped keyword) and the narrowest tests that must
fail with it in place. The checkout is copied once to a temporary folder (``hermes3/``, ``tests/``,
``configs/``, ``data/`` and the files pytest reads); each edit is applied there alone, those tests
run (``pytest -x -q``, the copy first on ``PYTHONPATH``), and the file is restored. A mutation is
*caught* when a test fails, *missed* when all pass. Before any mutation, the same tests run on
the unmutated copy: they must pass, or a "caught" would mean nothing.

    python scripts/mutation_check.py                 # all of them (heavy: not part of `make test`)
    python scripts/mutation_check.py --only dpo-loss-sign,lr-interior-inverted
    python scripts/mutation_check.py --list

Exits 0 when every mutation is caught, 1 when one is missed (or its tests could not run), and 2,
with one line and nothing run, when a snippet no longer matches its file (the list is stale).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
LIST = Path(__file__).with_name("mutations.yaml")
COPIED = ("hermes3", "tests", "configs", "data", "scripts", "benchmarks", "notebooks", "docs", "pyproject.toml",
          "conftest.py", "README.md", "Makefile")
FIELDS = ("id", "description", "file", "original", "replacement", "tests")


def load(path: Path = LIST) -> list[dict]:
    entries = yaml.safe_load(path.read_text())
    for e in entries:
        missing = [f for f in FIELDS if f not in e]
        if missing:
            raise SystemExit(f"mutation_check: {path.name}: entry {e.get('id', '?')} lacks {', '.join(missing)}")
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"mutation_check: {path.name}: duplicate ids")
    return entries


def stale(entries: list[dict], root: Path = REPO) -> str | None:
    """One line naming the first entry whose snippet is not found exactly once in its file."""
    for e in entries:
        f = root / e["file"]
        n = f.read_text().count(e["original"]) if f.is_file() else -1
        if n != 1:
            where = "file missing" if n < 0 else ("snippet not found" if n == 0 else f"snippet found {n} times")
            return (f"mutation_check: {e['id']}: {where} in {e['file']}; the list is stale "
                    f"(update {LIST.relative_to(REPO)} to the code)")
    return None


def copy_repo(dest: Path) -> Path:
    """The checkout's code and tests in ``dest/repo``; ``dest/shared`` stands for ``../shared``."""
    repo = dest / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=ignore, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, repo / name)
    shared = (REPO.parent / "shared").resolve()
    if shared.is_dir():
        (dest / "shared").symlink_to(shared)
    return repo


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[int | None, str, float]:
    """``(pytest exit code or None on timeout, first failing test or last line, seconds)``."""
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1", "WANDB_MODE": "offline",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=repo,
                           env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s", time.monotonic() - t0
    out = r.stdout + r.stderr
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    return r.returncode, (failed[0] if failed else (lines[-1] if lines else "")), time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated ids to run")
    ap.add_argument("--list", action="store_true", help="print the mutations and exit")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on unmutated code")
    args = ap.parse_args(argv)
    entries = load()
    if args.only:
        want = args.only.split(",")
        unknown = sorted(set(want) - {e["id"] for e in entries})
        if unknown:
            print(f"mutation_check: unknown ids: {', '.join(unknown)}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e["id"] in want]
    line = stale(entries)
    if line:
        print(line, file=sys.stderr)
        return 2
    if args.list:
        for e in entries:
            print(f"{e['id']:32} {e['file']:30} {e['description']}")
        return 0
    start = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="hermes3-mutation-") as tmp:
        repo = copy_repo(Path(tmp))
        if not args.no_baseline:
            tests = list(dict.fromkeys(t for e in entries for t in e["tests"]))
            rc, what, secs = run_tests(repo, tests, args.timeout * 2)
            if rc != 0:
                print(f"mutation_check: the tests fail without any mutation ({what}); fix them first", file=sys.stderr)
                return 1
            print(f"baseline: {len(tests)} test selections pass unmutated ({secs:.0f} s)", flush=True)
        for e in entries:
            f = repo / e["file"]
            original = f.read_text()
            f.write_text(original.replace(e["original"], e["replacement"], 1))
            try:
                rc, what, secs = run_tests(repo, e["tests"], args.timeout)
            finally:
                f.write_text(original)
            status = {0: "MISSED", 1: "caught"}.get(rc, "error")
            results.append((e, status, what, secs))
            print(f"{status:7} {e['id']:32} {secs:6.0f} s  {what if status != 'MISSED' else e['description']}",
                  flush=True)
    caught = sum(s == "caught" for _, s, _, _ in results)
    print(f"\n{caught} of {len(results)} mutations caught in {time.monotonic() - start:.0f} s")
    for e, s, what, _ in results:
        if s != "caught":
            print(f"  {s}: {e['id']} ({e['file']}): {e['description']}; tests: {' '.join(e['tests'])}"
                  + (f"; {what}" if s == "error" else ""))
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
