"""DPO benchmarks, each side measured in the same run on the same model and pairs.

    python benchmarks/dpo.py [--pairs 16] [--steps 4]

1. Peak memory of a DPO step: our LoRA DPO (reference = adapter disabled, no second model)
   vs full-parameter DPO with an explicit reference model (TRL's layout without peft), on a
   Llama-shaped 142M-parameter fp32 model, each in a fresh subprocess. Goal <= 0.6x. Counted
   with torch's own CPU allocator accounting (what ``torch.cuda.max_memory_allocated`` is on a
   GPU): the model's resident weights plus the peak of the bytes torch allocated during the
   step (activations, logits, gradients, optimizer state). Peak RSS is printed beside it.
2. Pairs per second: packed padding-free batches vs padded batches (TRL's layout), same
   LoRA model, same HH-RLHF pairs (real length distribution). Goal >= 2.5x.
3. Whole trainers on the same pairs: ours (``hermes3.train.dpo.train``, the Trainer engine, packed)
   vs TRL's ``DPOTrainer`` + peft (padded; its ``padding_free`` is unavailable for DPO), same
   LoRA, optimizer, bf16 autocast, dropout kept; pairs/s over the steps after the first and
   peak RSS during training, each in a fresh process.

Data: the demo build under the runs root (``$HERMES3_RUNS``, default ``runs/``) where ``make
demo`` writes it (``<runs>/demo/data``) or ``hermes3 data build --config configs/data/demo.yaml``
does (``<runs>/data/demo``); without either, a smoke build with all 300 HH-RLHF pairs is made in a
temporary folder (seconds; its smaller vocabulary tokenizes the same pairs longer).
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

from hermes3.core.paths import runs  # noqa: E402


def data_build(tmp: Path) -> Path:
    """The data build the pairs and the tokenizer come from: the demo build where ``make demo``
    puts it (``hermes3.recipe.stages``: ``<runs>/demo/data``) or where ``hermes3 data build --config
    configs/data/demo.yaml`` does (``<runs>/data/demo``); else a smoke build made in ``tmp``."""
    for d in (runs("demo", "data"), runs("data", "demo")):
        if (d / "preferences.jsonl").is_file() and (d / "tokenizer").is_dir():
            return d
    from hermes3.core.config import load_config
    from hermes3.core.errors import Hermes3Error
    from hermes3.data.build import DataConfig, build

    out = tmp / "data-smoke"
    if (out / "preferences.jsonl").is_file():  # built by an earlier child of this run
        return out
    print(f"[dpo.py] no demo data build in {runs('demo', 'data')} or {runs('data', 'demo')}: building "
          f"configs/data/smoke.yaml (300 HH-RLHF pairs) into {out}", file=sys.stderr)
    try:  # the benchmark needs >= 64 HH-RLHF pairs; smoke.yaml keeps 20
        build(load_config(DataConfig, ROOT / "configs/data/smoke.yaml", [f"out_dir={out}", "preferences_real=300"]),
              progress=False)
    except Hermes3Error as e:
        raise SystemExit(f"dpo.py: no data build to read pairs from, and a smoke build failed: {e}") from None
    return out


def _setup(tmp: Path, data: Path, hidden: int, layers: int):
    from transformers import AutoTokenizer

    from hermes3.train.modeling import tiny_llama

    folder = tmp / f"model-{hidden}-{layers}"
    if not folder.exists():
        tok = AutoTokenizer.from_pretrained(data / "tokenizer")
        tiny_llama(len(tok), hidden_size=hidden, num_layers=layers, num_heads=8).save_pretrained(folder)
        tok.save_pretrained(folder)
    return folder


def _pairs(model_dir: Path, data: Path, n: int, source: str):
    from transformers import AutoTokenizer

    from hermes3.train.dpo import load_pairs, tokenize_pair

    tok = AutoTokenizer.from_pretrained(model_dir)
    raw = [p for p in load_pairs(data) if p["source"] == source]
    if len(raw) < n:
        raise SystemExit(f"dpo.py: {data}/preferences.jsonl has {len(raw)} {source} pairs, the benchmark needs {n}")
    return [tokenize_pair(p, tok) for p in raw[:n]], tok


def _rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    import re

    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _tensor_bytes(*models) -> int:
    """Bytes of the models' parameters and buffers, each storage once (tied embeddings)."""
    seen = {}
    for m in models:
        for t in (*m.parameters(), *m.buffers()):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def _peak_allocated(prof) -> int:
    """The peak of torch's CPU allocator total over a profiled block. Each ``[memory]`` event of
    the trace carries the allocator's running total of bytes allocated inside the block and
    still live; torch exposes it on CPU only through the profiler."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    return max((e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"), default=0)


def memory_child(mode: str, model_dir: str, data_dir: str, pairs: int, checkpointing: bool) -> None:
    """One DPO step (reference pass, policy pass, backward, RMSProp step) of ``mode`` (lora | full).

    Why torch's accounting rather than RSS: the weights are memory-mapped from safetensors (RSS
    grows only as pages are touched), and glibc keeps freed activation buffers in its heap (its
    mmap threshold rises after the first large free), so the RSS peak depends on the allocator's
    history more than on what the step holds: on this model with checkpointing, LoRA's RSS rose
    to ~1.9 GB above the baseline while torch never held more than 0.9 GB (and LoRA / full read
    1.03x and 0.93x in RSS). The profiler's own records inflate RSS, so none is reported here."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    from transformers import AutoModelForCausalLM

    import hermes3.train.attention  # noqa: F401  (registers hermes_varlen_sdpa in this fresh process)
    from hermes3.train.dpo import DPOConfig, _lora, enable_checkpointing
    from hermes3.train.dpo_loss import collate_packed, dpo_step, pair_terms, sequence_logps

    data, tok = _pairs(Path(model_dir), Path(data_dir), pairs, "hh_rlhf")
    batch = collate_packed(data)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="hermes_varlen_sdpa")
    if checkpointing:
        enable_checkpointing(model)
    n_params = model.num_parameters()
    ref = None
    if mode == "full":
        ref = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="hermes_varlen_sdpa").eval()
    else:
        model = _lora(model, DPOConfig())
    model.train()  # as in training: dropout on, and transformers only checkpoints in train mode
    resident = _tensor_bytes(model, *([ref] if ref is not None else []))
    trainable = [p for p in model.parameters() if p.requires_grad]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        opt = torch.optim.RMSprop(trainable, lr=1e-5)
        if ref is None:
            loss = dpo_step(model, batch, 0.1)[0].mean()  # reference = adapter off, under no_grad
        else:
            with torch.no_grad():
                r = sequence_logps(ref, batch)
            loss = pair_terms(sequence_logps(model, batch), r, 0.1)[0].mean()
        loss.backward()
        opt.step()
    step = _peak_allocated(prof)
    print("RESULT " + json.dumps({"weights_mb": resident / 2**20, "step_mb": (resident + step) / 2**20,
                                  "tokens": int(batch["input_ids"].numel()),
                                  "params": n_params, "trainable": sum(p.numel() for p in trainable)}))


def throughput(model_dir: Path, data_dir: Path, pairs: int, steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from hermes3.train.dpo import DPOConfig, _lora
    from hermes3.train.dpo_loss import collate_packed, collate_padded, dpo_step

    data, tok = _pairs(model_dir, data_dir, pairs * steps, "hh_rlhf")
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
                loss = dpo_step(model, b, 0.1)[0].mean()
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


def trainer_child(which: str, model_dir: str, data_dir: str, pairs: int, steps: int, out: str) -> None:
    """One trainer on the first ``pairs x steps`` HH-RLHF pairs (``pairs`` per step)."""
    import torch

    from hermes3.train.dpo import DPOConfig, prepare, train

    torch.manual_seed(0)
    from hermes3.train.dpo import load_pairs

    raw = [p for p in load_pairs(data_dir) if p["source"] == "hh_rlhf"][:pairs * steps]
    subset = Path(out) / "data"  # the pairs both trainers see, and only those
    subset.mkdir(parents=True, exist_ok=True)
    (subset / "preferences.jsonl").write_text("".join(json.dumps(p) + "\n" for p in raw))
    cfg = DPOConfig(model=model_dir, data=str(subset), output_dir=str(Path(out) / "run"), pairs_per_step=pairs,
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
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): what the test suite runs, so a moved path or renamed API fails there")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--trainer-child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke:
        args.pairs, args.steps, args.mem_pairs, args.trainer_pairs, args.trainer_steps = 2, 1, 1, 2, 2
    big_shape, small_shape = ((64, 2), (64, 2)) if args.smoke else ((1024, 12), (256, 4))
    if args.child:
        mode, m, d, n, ckpt = args.child
        return memory_child(mode, m, d, int(n), ckpt == "1")
    if args.trainer_child:
        w, m, d, p, n, o = args.trainer_child
        return trainer_child(w, m, d, int(p), int(n), o)
    with tempfile.TemporaryDirectory() as tmp:
        data = data_build(Path(tmp))
        # A Llama shape of 142M parameters and a small batch, so that weights, gradients and optimizer
        # state (what LoRA saves) weigh against the activations as in the recipes' 8B DPO with checkpointing
        big = _setup(Path(tmp), data, *big_shape)
        shape = json.loads((big / "config.json").read_text())
        print(f"data: {data}\n\n## 1. Peak memory of one DPO step (reference pass, policy pass, backward, RMSProp), "
              f"fp32, {args.mem_pairs} HH-RLHF pairs, fresh process each\n\n"
              f"model: Llama shape, hidden {shape['hidden_size']}, {shape['num_hidden_layers']} layers, "
              f"{shape['num_attention_heads']} heads / {shape['num_key_value_heads']} KV heads, MLP "
              f"{shape['intermediate_size']}, vocab {shape['vocab_size']} (tied)\n"
              "step peak: resident weights + peak of torch's CPU allocator total during the step (activations,\n"
              "logits, gradients, optimizer state: torch.cuda.max_memory_allocated's meaning; RSS is not, see\n"
              "memory_child)\n\n"
              "activation checkpointing | mode | parameters (trainable) | tokens | weights MB | step peak MB")
        for ckpt in (False, True):
            res = {}
            for mode in ("lora", "full"):
                r = subprocess.run([sys.executable, __file__, "--child", mode, str(big), str(data), str(args.mem_pairs),
                                    str(int(ckpt))], capture_output=True, text=True)
                line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    raise RuntimeError(f"memory child {mode} failed:\n{r.stderr[-2000:]}")
                res[mode] = r = json.loads(line[0][7:])
                print(f"{'on' if ckpt else 'off'} | "
                      f"{'LoRA, reference = adapter off' if mode == 'lora' else 'full DPO + reference model'} | "
                      f"{r['params'] / 1e6:.1f}M ({r['trainable'] / 1e6:.1f}M) | {r['tokens']} | {r['weights_mb']:,.0f} | "
                      f"{r['step_mb']:,.0f}")
            print(f"ratio LoRA / full, checkpointing {'on' if ckpt else 'off'}: step peak "
                  f"{res['lora']['step_mb'] / res['full']['step_mb']:.2f}x (goal <= 0.6x)")
        if args.memory_only:
            return
        small = _setup(Path(tmp), data, *small_shape)
        print(f"\n## 2. Pairs per second, HH-RLHF pairs, {args.pairs} pairs per step, LoRA, bf16 autocast\n")
        t = throughput(small, data, args.pairs, args.steps)
        for k, v in t.items():
            print(f"{k} | {v:.2f} pairs/s")
        print(f"ratio packed / padded: {t['packed'] / t['padded']:.2f}x (goal >= 2.5x)")
        print(f"\n## 3. Whole trainers, ours vs TRL DPOTrainer + peft, {args.trainer_pairs} HH-RLHF pairs per step, "
              f"{args.trainer_steps} steps, bf16 autocast, LoRA r32 dropout 0.05, NEFTune 5 (fresh process each)\n")
        res = {}
        for which in ("ours", "trl"):
            r = subprocess.run([sys.executable, __file__, "--trainer-child", which, str(small), str(data), str(args.trainer_pairs),
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
