"""Wall time of the offline evaluation suite, per task, HF backend on this machine.

    python benchmarks/eval_offline.py [--model runs/base/tiny-m-*] [--data runs/data/demo]

Goal (issue 4): the whole offline suite at demo size in <= 3 minutes on 2 cores, so LR
search and epoch selection can afford it. No peer offers these tasks, so the comparison
is against the goal, not a peer.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hermes3.evaluate import OFFLINE_TASKS, evaluate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="runs/data/demo")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    model = args.model or sorted(glob.glob("runs/base/tiny-m-*"))[0]
    total = 0.0
    print(f"model {model}, data {args.data}\n\ntask | n | seconds | primary score")
    for task in OFFLINE_TASKS:
        t0 = time.perf_counter()
        r = evaluate(model, [task], data_dir=args.data, limit=args.limit, batch_size=args.batch_size)
        dt = time.perf_counter() - t0
        total += dt
        row = r.table[(r.table.task == task) & r.table.primary].iloc[0]
        print(f"{task} | {row.n} | {dt:.1f} | {row.value:.3f}")
    print(f"\ntotal {total:.1f} s (goal <= 180 s): {'met' if total <= 180 else 'NOT met'}")


if __name__ == "__main__":
    main()
