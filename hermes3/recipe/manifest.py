"""The run manifest, ``<runs>/<scale>/manifest.json``: what every stage took, made, chose and why.

Each stage records its inputs, outputs, config, selection, reason and results, with the code
version; the next stage reads its input from here, and a notebook re-run reads it back. A path
under the recipe's root (the folder holding the manifest) is recorded relative to it, so the
manifest reads the same on every machine and moves with its folder; ``resolve_path`` turns one
back into a path.

>>> relative({"dir": "/r/demo/sft", "runs": ["/r/demo", "/r/other"], "lr": 1e-3}, Path("/r/demo"))
{'dir': 'sft', 'runs': ['.', '/r/other'], 'lr': 0.001}
>>> resolve_path("/r/demo/manifest.json", "sft"), resolve_path("/r/demo/manifest.json", "/elsewhere")
(PosixPath('/r/demo/sft'), PosixPath('/elsewhere'))
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from hermes3.core.paths import REPO


def code_version() -> dict:
    """The git commit (and whether the tree had changes) plus a digest of the package sources."""
    h = hashlib.sha256()
    for f in sorted((REPO / "hermes3").rglob("*.py")):
        h.update(f.relative_to(REPO).as_posix().encode() + f.read_bytes())
    out = {"hermes3_sources": h.hexdigest()[:16]}
    try:
        out["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                       check=True).stdout.strip()
        out["dirty"] = bool(subprocess.run(["git", "status", "--porcelain", "--", "hermes3", "configs"], cwd=REPO,
                                           capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout: the source digest still identifies the code
    return out


def read(path: Path, scale: str) -> dict:
    """The manifest at ``path`` (an empty one when missing or unreadable)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {"scale": scale, "stages": {}}


def record(path: Path, scale: str, stage: str, *, inputs: dict, outputs: dict, config=None, selection=None,
           why: str = "", results: dict | None = None, jobs: list | None = None, split: dict | None = None) -> None:
    """Write one stage's hand-off into the manifest (atomically: a reader never sees half).
    ``split``: which held-out items each of its numbers comes from, ``{"selection" | "results" |
    a results key: split}`` (``validation`` for a choice, ``test`` for a finding;
    ``hermes3.data.build.SPLITS``)."""
    path = Path(path)
    m = read(path, scale)
    m["scale"] = scale
    m["stages"][stage] = {"inputs": inputs, "outputs": outputs, "config": config, "selection": selection,
                          "why": why, "results": results or {}, "split": split, "code": code_version(),
                          "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if jobs:  # the scheduler's jobs of this stage (SLURM)
        m["stages"][stage]["jobs"] = jobs
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # every stage, also those recorded before paths were relative; Path values as strings first
    tmp.write_text(json.dumps(relative(json.loads(json.dumps(m, default=str)), path.parent), indent=2) + "\n")
    os.replace(tmp, path)


def relative(x, root: Path):
    """``x`` (JSON data) with every absolute path under ``root`` relative to it."""
    if isinstance(x, dict):
        return {k: relative(v, root) for k, v in x.items()}
    if isinstance(x, list):
        return [relative(v, root) for v in x]
    if isinstance(x, str) and os.path.isabs(x) and Path(x).is_relative_to(root):
        return Path(x).relative_to(root).as_posix()
    return x


def resolve_path(manifest_path: str | Path, value: str) -> Path:
    """A path the manifest at ``manifest_path`` records (a folder or file a stage took or made):
    relative ones are under the manifest's folder."""
    return Path(manifest_path).parent / value


def digest_file(path: Path) -> str:
    """A short digest of one file (the data build's manifest: has the mixture changed?)."""
    return hashlib.blake2b(path.read_bytes(), digest_size=12).hexdigest()
