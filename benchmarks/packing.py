"""Packing benchmark: hermes3 vs TRL vs naive greedy, measured in the same run.

    python benchmarks/packing.py [--million 1000000] [--steps 5]

1. Efficiency at 8192 on real length distributions (Llama 3 tokenizer when
   ../shared/data has it, else a BPE trained on the data). `bound` = the best any packer
   can do: total / (ceil(total / 8192) * 8192).
2. Planning time for 1M lengths resampled from the arena distribution: hermes3 vs TRL's
   BFD packer called once on the whole table (its fastest path).
3. One CPU training step of a ~5M-parameter Llama on 2048-token rows, bf16 autocast for
   both: padding-free rows + per-sample SDPA vs padded batches + SDPA with a padding
   mask, in real (non-pad) tokens per second.
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

from hermes3.modeling import packed_forward, tiny_llama  # noqa: E402
from hermes3.packing import PackedDataset, PaddingFreeCollator, pack  # noqa: E402
from hermes3.packing_stats import compare_packers, pack, real_lengths, trl_bfd  # noqa: E402,F811


def tokenizer():
    from hermes3.packing_stats import _find
    from hermes3.tokenizer import load_tokenizer

    p = _find("tokenizer_llama3/tokenizer.model")
    if p is not None:
        return load_tokenizer(p), "Llama 3 (tiktoken)"
    from hermes3.chat import render
    from hermes3.loaders import load_conversations
    from hermes3.tokenizer import build_tokenizer

    convs = load_conversations(Path(__file__).parent.parent / "data/sources/toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json")[0]
    return build_tokenizer([render(c["messages"], c["tools"]) for c in convs], 4096), "BPE-4096 trained on glaive"


def table(rows, cols):
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r.get(c, ''):.4f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols))


def step_throughput(lengths, steps, row_len=2048):
    samples = [{"input_ids": [random.randrange(4, 2000) for _ in range(n)]} for n in lengths]
    for s in samples:
        s["labels"] = list(s["input_ids"])
    plan = pack([len(s["input_ids"]) for s in samples], row_len)
    ds, coll = PackedDataset(samples, plan), PaddingFreeCollator()
    packed = [coll([ds[i]]) for i in range(len(ds))]
    # Padded baseline: same samples in the packed rows' groups, padded to the longest.
    padded = []
    for row in plan.rows:
        L = max(len(samples[i]["input_ids"]) for i in row)
        ids = torch.zeros(len(row), L, dtype=torch.long)
        mask = torch.zeros(len(row), L, dtype=torch.long)
        lab = torch.full((len(row), L), -100)
        for j, i in enumerate(row):
            n = len(samples[i]["input_ids"])
            ids[j, :n] = torch.tensor(samples[i]["input_ids"])
            lab[j, 1:n] = ids[j, 1:n]
            mask[j, :n] = 1
        padded.append({"input_ids": ids, "attention_mask": mask, "labels": lab})
    results = {}
    for name, attn, batches, fwd in (("padding-free + hermes_varlen_sdpa", "hermes_varlen_sdpa", packed, packed_forward),
                                     ("padded + sdpa", "sdpa", padded, lambda m, b: m(**b, use_cache=False))):
        model = tiny_llama(2048, attn_implementation=attn, hidden_size=256, num_layers=4, num_heads=4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        real = 0
        times = []
        for k in range(steps + 1):
            b = batches[k % len(batches)]
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = fwd(model, b).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if k:  # first step warms up
                times.append(time.perf_counter() - t0)
                real += int((b["labels"] != -100).sum()) if "attention_mask" not in b else int(b["attention_mask"].sum())
        results[name] = real / sum(times)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--million", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
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

    print(f"\n## 3. One SFT step, CPU, 2048-token rows, bf16 autocast ({args.steps} timed steps)\n")
    torch.manual_seed(0)
    random.seed(0)
    lens = [min(n, 2048) for n in rng.sample(base, min(len(base), 200))]
    res = step_throughput(lens, args.steps)
    for k, v in res.items():
        print(f"{k}: {v:,.0f} real tokens/s")
    a, b = res.values()
    print(f"ratio padding-free / padded: {a / b:.2f}x")


if __name__ == "__main__":
    main()
