"""GPU path check (one CUDA GPU, no internet), called by scripts/gpu_check.sh.

1. A few SFT steps through `hermes3.train.sft.train` (the code path of the recipes) on a ~1B-parameter
   Llama-shaped model with random weights: packed 8192-token rows, bf16, the CUDA attention
   (flash-attn varlen when installed, else our per-sample SDPA). Prints tokens/s and model FLOPs
   utilisation (MFU) against the GPU's dense bf16 peak.
2. A few DPO steps through `hermes3.train.dpo.train` (the Trainer engine) on the same 1B shape: LoRA
   r32 on all linear layers, packed pairs, bf16, activation checkpointing; prints pairs/s and
   the peak GPU memory of training.
3. FP8 inference of one converted layer: `torch._scaled_mm` on our FP8_DYNAMIC weights with
   per-token activation scales vs the bf16 matmul: time, TFLOP/s, error against our emulation.

    python scripts/gpu_check.py [--steps 8] [--workdir runs/gpu_check]
    python scripts/gpu_check.py --cpu-dry-run     (the DPO check on a tiny shape, on CPU: the code path only)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Dense bf16 peak TFLOP/s (no sparsity) by device name; override with PEAK_TFLOPS.
PEAKS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}
SHAPE_1B = dict(hidden_size=2048, num_layers=16, num_heads=32, num_kv_heads=8, intermediate_size=8192)


def peak_tflops() -> float:
    if "PEAK_TFLOPS" in os.environ:
        return float(os.environ["PEAK_TFLOPS"])
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), float("nan"))


def train_flops_per_token(model, seq_lens: list[int]) -> float:
    """6 x parameters in matmuls (forward + backward) + causal attention scores and values:
    per layer 2 matmuls x 2 FLOPs x n^2/2 x hidden forward, x3 with backward, averaged per token."""
    cfg = model.config
    matmul = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embed_tokens" not in n)
    attn = 3 * 2 * cfg.num_hidden_layers * cfg.hidden_size * sum(n * n for n in seq_lens) / max(sum(seq_lens), 1)
    return 6 * matmul + attn


def _data_and_model(workdir: Path, shape: dict, name: str = "llama-1b-random") -> Path:
    """The demo data build and a random-weight Llama of ``shape`` (built once in ``workdir``)."""
    from transformers import AutoTokenizer

    from hermes3.core.config import load_config
    from hermes3.data.build import DataConfig, build
    from hermes3.train.modeling import tiny_llama

    data_cfg = load_config(DataConfig, ROOT / "configs/data/demo.yaml", [f"out_dir={workdir / 'data'}"])
    if not (workdir / "data" / "manifest.json").exists():
        build(data_cfg, progress=False)
    tok = AutoTokenizer.from_pretrained(workdir / "data" / "tokenizer")
    model_dir = workdir / name
    if not (model_dir / "config.json").exists():
        tiny_llama(len(tok), **shape).to(torch.bfloat16).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
    return model_dir


def dpo_check(workdir: Path, steps: int, pairs: int = 16, shape: dict | None = None) -> dict:
    """DPO steps through the engine; pairs/s over the steps after the first, peak memory of
    training (CUDA: ``max_memory_allocated``; CPU dry run: not measured)."""
    from transformers import TrainerCallback

    from hermes3.train.dpo import DPOConfig, train

    model_dir = _data_and_model(workdir, shape or SHAPE_1B, "llama-1b-random" if shape is None else "llama-dry-run")
    cuda = torch.cuda.is_available()
    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if cuda:
                torch.cuda.reset_peak_memory_stats()

        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    out = workdir / "dpo"
    shutil.rmtree(out, ignore_errors=True)
    cfg = DPOConfig(model=str(model_dir), data=str(workdir / "data"), output_dir=str(out), pairs_per_step=pairs,
                    max_steps=steps, warmup_steps=1, max_length=4096, gradient_checkpointing=True,
                    bf16="true" if cuda else "false", heldout_fraction=0.0, wandb_mode="disabled")
    t0 = time.perf_counter()
    train(cfg, callbacks=(Clock(),))
    return {"steps": steps, "pairs_per_step": pairs,
            "pairs_per_s": pairs * (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 else float("nan"),
            "peak_memory_GB": torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan"),
            "wall_s": time.perf_counter() - t0}


def sft_check(workdir: Path, steps: int) -> dict:
    from hermes3.train.sft import SFTConfig, read_metrics, train

    model_dir = _data_and_model(workdir, SHAPE_1B)
    out = workdir / "sft"
    shutil.rmtree(out, ignore_errors=True)
    cfg = SFTConfig(model=str(model_dir), data=str(workdir / "data"), output_dir=str(out), max_length=8192,
                    rows_per_device=1, max_steps=steps, warmup_steps=2, lr=7e-6, bf16="true", attn="auto",
                    save_each_epoch=False, wandb_mode="disabled", logging_steps=1)
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    m = read_metrics(out)
    tps = float(m.tokens_per_second.iloc[2:].median())  # after warm-up steps
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    plan = json.loads((out / "packing.json").read_text())
    mean_len = plan["packed_tokens"] / plan["samples"]  # attention FLOPs use the mean sample length
    flops = train_flops_per_token(meta, [int(mean_len)])
    from hermes3.train.attention import choose_attention

    return {"attention": choose_attention("cuda"), "params_B": sum(p.numel() for p in meta.parameters()) / 1e9,
            "steps": steps, "tokens_per_s": tps, "TFLOPs_per_s": tps * flops / 1e12,
            "MFU": tps * flops / 1e12 / peak_tflops(), "wall_s": wall}


def fp8_check(m: int = 8192, k: int = 4096, n: int = 14336, reps: int = 20) -> dict:
    from hermes3.convert.fp8 import FP8, dequantize_weight, fake_quantize_tokens, quantize_weight

    torch.manual_seed(0)
    w = (torch.randn(n, k, device="cuda") * 0.02).to(torch.bfloat16)  # an 8B MLP up_proj
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    qw, sw = quantize_weight(w)
    sw_t = sw.float().t().contiguous()

    def fp8_mm():
        sx = (x.abs().amax(dim=-1, keepdim=True).float() / 448).clamp_min(torch.finfo(torch.float32).eps)
        qx = (x.float() / sx).clamp(-448, 448).to(FP8)
        return torch._scaled_mm(qx, qw.t(), scale_a=sx, scale_b=sw_t, out_dtype=torch.bfloat16)

    def bf16_mm():
        return x @ w.t()

    res = {}
    for name, fn in (("bf16", bf16_mm), ("fp8", fp8_mm)):
        fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / reps
        res[name] = {"ms": dt * 1e3, "TFLOPs_per_s": 2 * m * k * n / dt / 1e12}
    ref = (fake_quantize_tokens(x.float()) @ dequantize_weight(qw, sw).float().t())
    err = (fp8_mm().float() - ref).abs().max().item() / ref.abs().max().item()
    bf = (bf16_mm().float() - x.float() @ w.float().t()).abs().max().item()
    return {"shape": f"[{m}x{k}] @ [{k}x{n}]", **{f"{a}_{b}": v for a, r in res.items() for b, v in r.items()},
            "speedup_fp8_vs_bf16": res["bf16"]["ms"] / res["fp8"]["ms"], "fp8_rel_err_vs_emulation": err,
            "bf16_abs_err_vs_fp32": bf}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "gpu_check"))
    ap.add_argument("--cpu-dry-run", action="store_true", help="only the DPO check, tiny shape, CPU, 2 steps")
    args = ap.parse_args()
    if args.cpu_dry_run:
        r = dpo_check(Path(args.workdir), 2, pairs=2, shape=dict(hidden_size=64, num_layers=2, num_heads=4))
        print("## dpo (CPU dry run)\n" + "\n".join(f"{k:28s} {v}" for k, v in r.items()))
        return
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, peak bf16 {peak_tflops():.0f} TFLOP/s")
    rows = {"sft": sft_check(Path(args.workdir), args.steps), "dpo": dpo_check(Path(args.workdir), args.steps)}
    if torch.cuda.get_device_capability() >= (8, 9):
        rows["fp8"] = fp8_check()
    for name, r in rows.items():
        print(f"\n## {name}")
        for k, v in r.items():
            print(f"{k:28s} {v:.4g}" if isinstance(v, float) else f"{k:28s} {v}")


if __name__ == "__main__":
    main()
