"""Packing benchmark: hermes3 vs TRL vs naive greedy, measured in the same run.

    python benchmarks/packing.py [--million 1000000] [--samples 120]

1. Efficiency at 8192 on real length distributions (Llama 3 tokenizer when
   ../shared/data has it, else a BPE trained on the data). `bound` = the best any packer
   can do: total / (ceil(total / 8192) * 8192).
2. Planning time for 1M lengths resampled from the arena distribution: hermes3 vs TRL's
   BFD packer called once on the whole table (its fastest path).
3. CPU training steps of a ~5M-parameter Llama over the same samples, bf16 autocast:
   padding-free 2048-token rows + per-sample SDPA, the same rows through transformers'
   sdpa (block-diagonal mask), and random batches padded to their longest; in real
   (target) tokens per second.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hermes3.train.modeling import packed_forward, tiny_llama  # noqa: E402
from hermes3.train.packing import PackedDataset, PaddingFreeCollator, pack  # noqa: E402
from hermes3.train.packing_stats import compare_packers, pack, real_lengths, trl_bfd  # noqa: E402,F811


def tokenizer():
    from hermes3.format.tokenizer import load_tokenizer
    from hermes3.train.packing_stats import _find

    p = _find("tokenizer_llama3/tokenizer.model")
    if p is not None:
        return load_tokenizer(p), "Llama 3 (tiktoken)"
    from hermes3.data.loaders import load_conversations
    from hermes3.format.chat import render
    from hermes3.format.tokenizer import build_tokenizer

    convs = load_conversations(Path(__file__).parent.parent / "data/sources/toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json")[0]
    return build_tokenizer([render(c["messages"], c["tools"]) for c in convs], 4096), "BPE-4096 trained on glaive"


def table(rows, cols):
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):.4f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols))


def _padded(samples, batch_size):
    """Random batches padded to their longest sample: what a Trainer does without packing."""
    out = []
    for k in range(0, len(samples), batch_size):
        group = samples[k:k + batch_size]
        L = max(len(s["input_ids"]) for s in group)
        ids = torch.zeros(len(group), L, dtype=torch.long)
        mask = torch.zeros_like(ids)
        lab = torch.full_like(ids, -100)
        for j, s in enumerate(group):
            n = len(s["input_ids"])
            ids[j, :n] = torch.tensor(s["input_ids"])
            lab[j, 1:n] = ids[j, 1:n]
            mask[j, :n] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "labels": lab})
    return out


def step_throughput(lengths, row_len=2048, seed=0):
    """Real tokens/s for one pass over the same samples, three ways (bf16 autocast):
    padding-free rows + our per-sample SDPA, the same rows through transformers' sdpa
    (it builds a block-diagonal L x L mask), and random batches padded to their longest
    (batch size = row_len / mean length, so each step sees about as many real tokens)."""
    rng = random.Random(seed)
    samples = [{"input_ids": [rng.randrange(4, 2000) for _ in range(n)]} for n in lengths]
    for s in samples:
        s["labels"] = list(s["input_ids"])
    plan = pack(lengths, row_len)
    ds, coll = PackedDataset(samples, plan), PaddingFreeCollator()
    packed = [coll([ds[i]]) for i in range(len(ds))]
    shuffled = samples[:]
    rng.shuffle(shuffled)
    padded = _padded(shuffled, max(1, round(row_len / statistics.mean(lengths))))
    real = sum(lengths) - len(lengths)  # target tokens (first token of each sample has none)
    plain = lambda m, b: m(**b, use_cache=False)  # noqa: E731
    results = {}
    for name, attn, batches, fwd in (
            ("padding-free rows + hermes_varlen_sdpa", "hermes_varlen_sdpa", packed, packed_forward),
            ("padding-free rows + transformers sdpa (block mask)", "sdpa", packed, packed_forward),
            ("random batches padded to longest + sdpa", "sdpa", padded, plain)):
        torch.manual_seed(seed)
        model = tiny_llama(2048, attn_implementation=attn, hidden_size=256, num_layers=4, num_heads=4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(b):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = fwd(model, b).loss  # noqa: B023
            loss.backward()
            opt.step()  # noqa: B023
            opt.zero_grad()  # noqa: B023

        step(batches[0])  # warm-up
        t0 = time.perf_counter()
        for b in batches:
            step(b)
        results[name] = real / (time.perf_counter() - t0)
    return results, {"samples": len(lengths), "rows": len(packed), "padded_batches": len(padded),
                     "pad_fraction": 1 - sum(lengths) / sum(b["input_ids"].numel() for b in padded)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=120, help="samples for the training-step comparison")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): what the test suite runs, so a moved path or renamed API fails there")
    args = ap.parse_args()
    if args.smoke:
        args.million, args.samples = 10_000, 16
    tok, tok_name = tokenizer()
    print(f"## 1. Packing efficiency at 8192 (tokenizer: {tok_name})\n")
    sets, notes = real_lengths(tok)
    rows = []
    for name, lens in sets.items():
        for r in compare_packers(lens):
            rows.append({"set": name, "n": len(lens), "mean_len": round(statistics.mean(lens)), **r})
    table(rows, ["set", "n", "mean_len", "packer", "rows", "efficiency", "bound", "seconds"])
    for k, v in notes.items():
        print(f"note: {k}: {v}")
    print("report (Hermes 3, §4.1): 0.96")

    base = sets.get("arena_chats") or next(iter(sets.values()))
    rng = random.Random(0)
    big = [rng.choice(base) for _ in range(args.million)]
    print(f"\n## 2. Planning time, {args.million:,} lengths resampled from {'arena' if 'arena_chats' in sets else 'first set'}\n")
    t0 = time.perf_counter()
    plan = pack(big, 8192)
    ours = time.perf_counter() - t0
    trl = trl_bfd(big, 8192, whole_table=True)
    print("packer | seconds | efficiency")
    print(f"hermes3 bfd | {ours:.2f} | {plan.efficiency:.4f}")
    print(f"TRL _pack_bfd (whole table) | {trl['seconds']:.2f} | {trl['efficiency']:.4f}")
    print(f"ratio TRL/hermes3 time: {trl['seconds'] / ours:.2f}x")

    print("\n## 3. SFT steps on CPU: ~5M-param Llama, 2048-token rows, bf16 autocast, same samples\n")
    lens = [n for n in rng.sample(base, min(len(base), args.samples)) if n <= 2048]
    res, info = step_throughput(lens)
    print(info)
    for k, v in res.items():
        print(f"{k}: {v:,.0f} real tokens/s")
    ours, blockmask, padded = res.values()
    print(f"ratio ours / padded: {ours / padded:.2f}x   ours / transformers packed sdpa: {ours / blockmask:.2f}x")


if __name__ == "__main__":
    main()
