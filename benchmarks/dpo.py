"""DPO benchmarks, each side measured in the same run on the same model and pairs.

    python benchmarks/dpo.py [--pairs 16] [--steps 4]

1. Peak memory of a DPO step: our LoRA DPO (reference = adapter disabled, no second model)
   vs full-parameter DPO with an explicit reference model (TRL's layout without peft),
   each in a fresh subprocess (peak RSS). Goal <= 0.6x.
2. Pairs per second: packed padding-free batches vs padded batches (TRL's layout), same
   LoRA model, same HH-RLHF pairs (real length distribution). Goal >= 2.5x.
3. Whole trainers on the same pairs: ours (``hermes3.dpo.train``, the Trainer engine, packed)
   vs TRL's ``DPOTrainer`` + peft (padded; its ``padding_free`` is unavailable for DPO), same
   LoRA, optimizer, bf16 autocast, dropout kept; pairs/s over the steps after the first and
   peak RSS during training, each in a fresh process.

Data: the demo build under the runs root (``$HERMES3_RUNS``, default ``runs/``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hermes3.paths import runs  # noqa: E402


def _setup(tmp: Path, hidden: int, layers: int):
    from transformers import AutoTokenizer

    from hermes3.modeling import tiny_llama

    folder = tmp / f"model-{hidden}-{layers}"
    if not folder.exists():
        tok = AutoTokenizer.from_pretrained(runs("data", "demo", "tokenizer"))
        tiny_llama(len(tok), hidden_size=hidden, num_layers=layers, num_heads=8).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


def _pairs(model_dir: Path, n: int, source: str):
    from transformers import AutoTokenizer

    from hermes3.dpo import load_pairs, tokenize_pair

    tok = AutoTokenizer.from_pretrained(model_dir)
    raw = [p for p in load_pairs(runs("data", "demo")) if p["source"] == source]
    return [tokenize_pair(p, tok) for p in raw[:n]], tok


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    import re

    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def memory_child(mode: str, model_dir: str, pairs: int, checkpointing: bool) -> None:
    import gc

    import torch
    from transformers import AutoModelForCausalLM

    import hermes3.attention  # noqa: F401  (registers hermes_varlen_sdpa in this fresh process)
    from hermes3.dpo import (
        DPOConfig,
        _lora,
        collate_packed,
        dpo_loss,
        dpo_step_loss,
        enable_checkpointing,
        sequence_logps,
    )

    data, tok = _pairs(Path(model_dir), pairs, "hh_rlhf")
    batch = collate_packed(data)
    # Process baseline (interpreter, torch, transformers, peft, data): shared by both modes, not DPO's.
    base = _rss_mb("VmRSS")
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="hermes_varlen_sdpa")
    if checkpointing:
        enable_checkpointing(model)
    ref = None
    if mode == "full":
        ref = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="hermes_varlen_sdpa").eval()
    else:
        model = _lora(model, DPOConfig())
    model.train()  # as in training: dropout on, and transformers only checkpoints in train mode
    gc.collect()
    load_peak = _rss_mb("VmHWM")
    # from_pretrained briefly holds a second copy of the weights while loading; that transient is
    # not the DPO step's memory (on a GPU it would never be on the device), so reset the peak here.
    Path("/proc/self/clear_refs").write_text("5")
    loaded = _rss_mb("VmRSS")
    opt = torch.optim.RMSprop([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    if ref is None:
        loss, _ = dpo_step_loss(model, batch, 0.1)
    else:
        with torch.no_grad():
            r = sequence_logps(ref, batch)
        loss, _ = dpo_loss(sequence_logps(model, batch), r, 0.1)
    loss.backward()
    opt.step()
    peak = _rss_mb("VmHWM")
    print("RESULT " + json.dumps({"loaded_mb": loaded - base, "step_mb": peak - base,
                                  "lifetime_peak_mb": max(load_peak, peak)}))  # VmHWM: ru_maxrss keeps the parent's


def throughput(model_dir: Path, pairs: int, steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from hermes3.dpo import DPOConfig, _lora, collate_packed, collate_padded, dpo_step_loss

    data, tok = _pairs(model_dir, pairs * steps, "hh_rlhf")
    out = {}
    for name in ("packed", "padded"):
        attn = "hermes_varlen_sdpa" if name == "packed" else "sdpa"
        model = _lora(AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn), DPOConfig())
        opt = torch.optim.RMSprop([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        t0 = None
        for k in range(steps + 1):
            chunk = data[(k % steps) * pairs:(k % steps + 1) * pairs]
            b = collate_packed(chunk) if name == "packed" else collate_padded(chunk, tok.pad_token_id)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _ = dpo_step_loss(model, b, 0.1)
            loss.backward()
            opt.step()
            opt.zero_grad()
            if k == 0:
                t0 = time.perf_counter()  # first step warms up
        out[name] = pairs * steps / (time.perf_counter() - t0)
    return out


def _step_clock(marks: dict):
    """A TrainerCallback: time of each optimizer step's end; peak RSS from the start of training."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here (loading excluded)
            marks["rss0"] = _rss_mb("VmRSS")

        def on_step_end(self, args, state, control, **kw):
            marks.setdefault("t", []).append(time.perf_counter())

        def on_train_end(self, args, state, control, **kw):
            marks["peak"] = _rss_mb("VmHWM")

    return Clock()


def trainer_child(which: str, model_dir: str, pairs: int, steps: int, out: str) -> None:
    """One trainer on the first ``pairs x steps`` HH-RLHF pairs (``pairs`` per step)."""
    import torch

    from hermes3.dpo import DPOConfig, prepare, train

    torch.manual_seed(0)
    data_dir = Path(out) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    from hermes3.dpo import load_pairs

    raw = [p for p in load_pairs(runs("data", "demo")) if p["source"] == "hh_rlhf"][:pairs * steps]
    (data_dir / "preferences.jsonl").write_text("".join(json.dumps(p) + "\n" for p in raw))
    cfg = DPOConfig(model=model_dir, data=str(data_dir), output_dir=str(Path(out) / "run"), pairs_per_step=pairs,
                    max_steps=steps, heldout_fraction=0.0, wandb_mode="disabled", bf16="true", lr=1e-5)
    marks: dict = {}
    if which == "ours":
        train(cfg, callbacks=(_step_clock(marks),))
    else:
        import trl
        from datasets import Dataset

        class IdsDPOTrainer(trl.DPOTrainer):
            def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
                return dataset

        model, tok, tr, _, _ = prepare(cfg)  # same LoRA (r32, alpha 16, dropout 0.05), same pairs
        model.set_attn_implementation("sdpa")  # padded batches: transformers' own attention, as TRL users run it
        rows = []
        for p in tr:
            row = {}
            for side in ("chosen", "rejected"):
                ids, labels = p[side]["input_ids"], p[side]["labels"]
                first = next(i for i, x in enumerate(labels) if x != -100)
                row["prompt_ids"], row[f"{side}_ids"] = ids[:first], ids[first:]
            rows.append(row)
        args = trl.DPOConfig(output_dir=str(Path(out) / "trl"), per_device_train_batch_size=pairs, max_steps=steps,
                             learning_rate=1e-5, optim="rmsprop", lr_scheduler_type="linear", warmup_steps=9,
                             bf16=True, gradient_checkpointing=False, disable_dropout=False, max_length=None,
                             pad_to_multiple_of=None, neftune_noise_alpha=5.0, report_to=[], save_strategy="no",
                             logging_steps=1, use_cpu=True, seed=0)
        IdsDPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                      callbacks=[_step_clock(marks)]).train()
    t = marks["t"]
    print("RESULT " + json.dumps({"pairs_per_s": pairs * (len(t) - 1) / (t[-1] - t[0]),
                                  "peak_mb": marks["peak"] - marks["rss0"]}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--mem-pairs", type=int, default=2, help="pairs in the memory measurement")
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--trainer-pairs", type=int, default=8, help="pairs per step in the trainer comparison")
    ap.add_argument("--trainer-steps", type=int, default=4)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--trainer-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return memory_child(args.child[0], args.child[1], int(args.child[2]), args.child[3] == "1")
    if args.trainer_child:
        w, m, p, n, o = args.trainer_child
        return trainer_child(w, m, int(p), int(n), o)
    with tempfile.TemporaryDirectory() as tmp:
        # ~170M parameters and a small batch: weights and optimizer state dominate, as in real DPO
        big = _setup(Path(tmp), 1024, 12)
        print(f"## 1. Peak memory of one DPO step, ~140M-parameter fp32 model, {args.mem_pairs} HH-RLHF pairs "
              "(fresh process each)\n\n"
              "MB above the process baseline (interpreter, libraries, data): the peak of the step itself,\n"
              "after loading (from_pretrained's transient second copy excluded), and the lifetime peak RSS\n\n"
              "activation checkpointing | mode | step peak MB | lifetime peak RSS MB")
        for ckpt in (False, True):
            res = {}
            for mode in ("lora", "full"):
                r = subprocess.run([sys.executable, __file__, "--child", mode, str(big), str(args.mem_pairs),
                                    str(int(ckpt))], capture_output=True, text=True)
                line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    raise RuntimeError(f"memory child {mode} failed:\n{r.stderr[-2000:]}")
                res[mode] = r = json.loads(line[0][7:])
                print(f"{'on' if ckpt else 'off'} | {'LoRA, reference = adapter off' if mode == 'lora' else 'full DPO + reference model'} | "
                      f"{r['step_mb']:,.0f} | {r['lifetime_peak_mb']:,.0f}")
            print(f"ratio LoRA / full, checkpointing {'on' if ckpt else 'off'}: step peak "
                  f"{res['lora']['step_mb'] / res['full']['step_mb']:.2f}x (goal <= 0.6x); lifetime peak RSS "
                  f"{res['lora']['lifetime_peak_mb'] / res['full']['lifetime_peak_mb']:.2f}x")
        if args.memory_only:
            return
        small = _setup(Path(tmp), 256, 4)
        print(f"\n## 2. Pairs per second, HH-RLHF pairs, {args.pairs} pairs per step, LoRA, bf16 autocast\n")
        t = throughput(small, args.pairs, args.steps)
        for k, v in t.items():
            print(f"{k} | {v:.2f} pairs/s")
        print(f"ratio packed / padded: {t['packed'] / t['padded']:.2f}x (goal >= 2.5x)")
        print(f"\n## 3. Whole trainers, ours vs TRL DPOTrainer + peft, {args.trainer_pairs} HH-RLHF pairs per step, "
              f"{args.trainer_steps} steps, bf16 autocast, LoRA r32 dropout 0.05, NEFTune 5 (fresh process each)\n")
        res = {}
        for which in ("ours", "trl"):
            r = subprocess.run([sys.executable, __file__, "--trainer-child", which, str(small), str(args.trainer_pairs),
                                str(args.trainer_steps), str(Path(tmp) / which)], capture_output=True, text=True)
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(f"trainer child {which} failed:\n{r.stderr[-3000:]}")
            res[which] = json.loads(line[0][7:])
            print(f"{which} | {res[which]['pairs_per_s']:.2f} pairs/s | peak RSS in training "
                  f"{res[which]['peak_mb']:,.0f} MB")
        print(f"ratio ours / TRL: {res['ours']['pairs_per_s'] / res['trl']['pairs_per_s']:.2f}x pairs/s, "
              f"{res['ours']['peak_mb'] / max(res['trl']['peak_mb'], 1e-9):.2f}x peak RSS")


if __name__ == "__main__":
    main()
