"""Evaluation results cached per task, keyed by everything that decides them, so a re-run, a
second notebook scoring the same checkpoint or a suite sharing tasks never generates twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hermes3.core.paths import runs
from hermes3.eval.tasks import OFFLINE_TASKS


def _store(key: str, unit: dict) -> None:
    """One task's results into the cache: complete or absent (an interrupted run leaves a .tmp)."""
    folder = _cache_dir() / key
    tmp_dir = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")  # two workers never share a tmp
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "raw.json").write_text(json.dumps(unit))
    try:
        tmp_dir.rename(folder)
    except OSError:  # another worker stored the same task first: the same result
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)

def _cache_dir() -> Path:
    return Path(os.environ.get("HERMES3_EVAL_CACHE") or runs("eval", "cache"))

def cache_key(model: str, task_dir: Path, task: str, shots, **settings) -> str:
    """Digest of what decides one task's result: the model's bytes (``model_digest``), the
    task's written files (items, prompts) and the shared ones (scorers, content spans), the
    source of prompts, generation and checkers, the settings, and lm-eval's version."""
    import hashlib
    from importlib.metadata import version

    h = hashlib.blake2b(digest_size=16)
    h.update(model.encode())
    here = Path(__file__).parent  # the source of prompts (lmeval_tasks), generation (evaluate) and scorers
    for src in (here / "lmeval_tasks.py", here / "evaluate.py", here.parent / "data" / "checkers.py"):
        h.update(src.read_bytes())
    here = str(task_dir.resolve()).encode()
    for f in sorted(p for p in task_dir.rglob("*") if p.is_file()):
        if f.stem in OFFLINE_TASKS and f.stem != task:  # another task's items and YAML
            continue
        h.update(str(f.relative_to(task_dir)).encode() + f.read_bytes().replace(here, b"<tasks>"))
    h.update(json.dumps({"task": task, "shots": shots, "lm_eval": version("lm_eval"), **settings}, sort_keys=True,
                        default=str).encode())
    return h.hexdigest()
