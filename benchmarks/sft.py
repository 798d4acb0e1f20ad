"""SFT throughput and peak memory on CPU: hermes3 vs TRL's stock SFTTrainer(packing=True).

    python benchmarks/sft.py [--steps 20] [--rows 2048 8192]

Same tiny model (tiny-m shape, random init), same conversations (the demo data build),
same optimizer settings, bf16 autocast for both, one process each (run as a subprocess so
peak RSS is per run). TRL runs as users configure it: ``packing=True`` (its BFD per
1000-row batch, padding-free) with ``assistant_only_loss=True`` on our chat template (which
carries the ``{% generation %}`` markers TRL needs) and TRL's own attention choice (sdpa).
Tokens/s counts real (non-pad) tokens per optimizer step.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dpo import data_build  # noqa: E402  (the demo's data build where make demo writes it, else a smoke one)


def _base(tmp: Path) -> Path:
    from transformers import AutoTokenizer

    from hermes3.train.modeling import tiny_llama

    tok = AutoTokenizer.from_pretrained(data_build(tmp) / "tokenizer")
    folder = tmp / "base"
    if not folder.exists():
        tiny_llama(len(tok), hidden_size=256, num_layers=4, num_heads=4).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


def run_ours(base: Path, rows: int, steps: int, out: Path) -> dict:
    from hermes3.train.sft import SFTConfig, read_metrics, train

    cfg = SFTConfig(model=str(base), data=str(data_build(out.parent)), output_dir=str(out), max_length=rows,
                    rows_per_device=1, max_steps=steps, lr=1e-3, warmup_steps=2, wandb_mode="disabled",
                    save_each_epoch=False, bf16="true", shuffle=False)
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    m = read_metrics(out)
    packing = json.loads((out / "packing.json").read_text())
    real = packing["packed_tokens"] / packing["rows"] * steps
    return {"tokens_per_s": float(m.tokens_per_second.iloc[1:].median()), "real_tokens_per_step": real / steps,
            "wall_s": wall}


def run_trl(base: Path, rows: int, steps: int, out: Path) -> dict:
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from hermes3.data.build import load_sft

    tok = AutoTokenizer.from_pretrained(base)
    convs = load_sft(data_build(out.parent))
    ds = datasets.Dataset.from_list([{"messages": c["messages"], "tools": json.dumps(c["tools"]) if c["tools"] else None}
                                     for c in convs if not c["tools"]]).remove_columns(["tools"])
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    times, toks = [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=1, learning_rate=1e-3,
                     warmup_steps=2, packing=True, max_length=rows, assistant_only_loss=True, bf16=True, use_cpu=True,
                     logging_steps=1, report_to=[], save_strategy="no", gradient_checkpointing=False,
                     dataset_num_proc=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Clock()])
    dl = trainer.get_train_dataloader()
    for i, b in enumerate(dl):
        if i >= steps:
            break
        toks.append(int(b["input_ids"].numel()))
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    per_step = sum(toks) / len(toks)
    return {"tokens_per_s": per_step / sorted(times[1:])[len(times[1:]) // 2], "real_tokens_per_step": per_step,
            "wall_s": wall}


def child(which: str, rows: int, steps: int, tmp: str) -> None:
    tmp_p = Path(tmp)
    base = _base(tmp_p)
    fn = run_ours if which == "hermes3" else run_trl
    res = fn(base, rows, steps, tmp_p / f"{which}-{rows}")
    # VmHWM, not ru_maxrss (which keeps a parent's peak across fork + exec)
    res["peak_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    print("RESULT " + json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rows", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): what the test suite runs, so a moved path or renamed API fails there")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.steps = [256], 3
    if args.child:
        which, rows, steps, tmp = args.child
        return child(which, int(rows), int(steps), tmp)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--child", "hermes3", "64", "1", tmp], check=True,
                       capture_output=True)  # builds the shared base model once
        print("row length | runner | real tokens/s | real tokens/step | peak RSS MB")
        for rows in args.rows:
            res = {}
            for which in ("hermes3", "trl"):
                r = subprocess.run([sys.executable, __file__, "--child", which, str(rows), str(args.steps), tmp],
                                   capture_output=True, text=True)
                line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    print(f"{rows} | {which} | failed: {r.stderr[-500:]}")
                    continue
                res[which] = json.loads(line[0][7:])
                print(f"{rows} | {which} | {res[which]['tokens_per_s']:,.0f} | {res[which]['real_tokens_per_step']:,.0f} | "
                      f"{res[which]['peak_rss_mb']:,.0f}")
            if len(res) == 2:
                print(f"{rows} | ratio hermes3/TRL | {res['hermes3']['tokens_per_s'] / res['trl']['tokens_per_s']:.2f}x | | "
                      f"{res['hermes3']['peak_rss_mb'] / res['trl']['peak_rss_mb']:.2f}x memory")


if __name__ == "__main__":
    main()
