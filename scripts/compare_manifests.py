"""Compare two recipe manifests stage by stage: inputs, config, selection, reason and results.

    python scripts/compare_manifests.py A/manifest.json B/manifest.json [--tol 0]

Paths are compared relative to each manifest's runs root (two runs in different folders hold the
same stages), and what differs between any two runs by nature is left out: wall times
(``seconds``, ``finished``, ``*_seconds``), the code identity (``code``), the SLURM job records
(``jobs``). Numbers must be equal, or within ``--tol`` (absolute) when it is given. Prints one line
per difference and a summary; exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SKIP = {"seconds", "finished", "code", "jobs", "wall_seconds"}


def flatten(x, root: str, path: str = ""):
    """Every leaf of a manifest part by its path, paths made relative to ``root``."""
    if isinstance(x, dict):
        for k, v in x.items():
            if k not in SKIP and not k.endswith("_seconds"):
                yield from flatten(v, root, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from flatten(v, root, f"{path}[{i}]")
    elif isinstance(x, str):
        yield path, x.replace(root, "<runs>")
    else:
        yield path, x


def differences(a: dict, b: dict, root_a: str, root_b: str, tol: float = 0.0) -> list[str]:
    bad = []
    for stage in sorted(set(a["stages"]) | set(b["stages"])):
        if stage not in a["stages"] or stage not in b["stages"]:
            bad.append(f"{stage}: only in {'A' if stage in a['stages'] else 'B'}")
            continue
        fa, fb = dict(flatten(a["stages"][stage], root_a)), dict(flatten(b["stages"][stage], root_b))
        for key in sorted(set(fa) | set(fb)):
            va, vb = fa.get(key, "<missing>"), fb.get(key, "<missing>")
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
            if (abs(va - vb) > tol) if numeric else va != vb:
                bad.append(f"{stage}{key}: {va!r} vs {vb!r}")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--tol", type=float, default=0.0, help="absolute tolerance on numbers (default: equal)")
    args = ap.parse_args()
    (a, ra), (b, rb) = ((json.loads(Path(p).read_text()), str(Path(p).resolve().parent.parent)) for p in (args.a, args.b))
    bad = differences(a, b, ra, rb, args.tol)
    for line in bad:
        print(line)
    n = len(set(a["stages"]) | set(b["stages"]))
    print(f"{n} stages compared, {len(bad)} values differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
