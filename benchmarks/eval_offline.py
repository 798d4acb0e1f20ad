"""Wall time of the offline evaluation suite, HF backend on this machine.

    python benchmarks/eval_offline.py [--model runs/demo/sft/final] [--data runs/demo/data] [--per-task]

Goal (issue 4): the whole offline suite at demo size in <= 3 minutes on 2 cores, so LR
search and epoch selection can afford it. The suite is timed as users run it: one
`evaluate(model, "offline")` call (one lm-eval run, the model loaded once), with the cache
off. `--per-task` adds one run per task, to see where the time goes (each pays lm-eval's
start-up and the model load again, so their sum is larger). No peer offers these tasks, so
the comparison is against the goal, not a peer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hermes3.core.paths import runs  # noqa: E402
from hermes3.eval.evaluate import evaluate  # noqa: E402
from hermes3.eval.tasks import OFFLINE_TASKS  # noqa: E402


def smoke(args) -> None:
    """The suite, one item per task, on a random tiny model of a smoke data build in a temporary folder."""
    import tempfile

    from transformers import AutoTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dpo import data_build

    from hermes3.train.modeling import tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        data = data_build(Path(tmp))
        tok = AutoTokenizer.from_pretrained(data / "tokenizer")
        model = Path(tmp) / "model"
        tiny_llama(len(tok), hidden_size=32, num_layers=1, num_heads=2).save_pretrained(model)
        tok.save_pretrained(model)
        args.model, args.data, args.limit, args.per_task = str(model), str(data), 1, False
        run(args)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(runs("demo", "sft", "final")), help="the demo SFT model (make demo builds it)")
    ap.add_argument("--data", default=str(runs("demo", "data")), help="the demo data build (make demo builds it)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--per-task", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="a random tiny model on a smoke data build, one item per "
                    "task (seconds): what the test suite runs, so a moved path or renamed API fails there")
    args = ap.parse_args()
    if args.smoke:
        return smoke(args)
    run(args)


def run(args) -> None:
    kw = dict(data_dir=args.data, limit=args.limit, batch_size=args.batch_size, cache=False)
    print(f"model {args.model}, data {args.data}\n")
    if args.per_task:
        print("task | n | seconds (own lm-eval run) | primary score")
        for task in OFFLINE_TASKS:
            t0 = time.perf_counter()
            r = evaluate(args.model, [task], **kw)
            row = r.table[(r.table.task == task) & r.table.primary].iloc[0]
            print(f"{task} | {row.n} | {time.perf_counter() - t0:.1f} | {row.value:.3f}")
    t0 = time.perf_counter()
    r = evaluate(args.model, "offline", **kw)
    total = time.perf_counter() - t0
    prim = r.table[r.table.primary & r.table.task.isin(OFFLINE_TASKS)]
    print(f"\nwhole offline suite, one run: {len(prim)} tasks, {int(prim.n.sum())} items, {total:.1f} s "
          f"(goal <= 180 s): {'met' if total <= 180 else 'NOT met'}")


if __name__ == "__main__":
    main()
