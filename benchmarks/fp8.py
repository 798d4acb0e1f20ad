"""FP8 conversion benchmarks: disk size of an 8B-shaped Llama, and speed/memory vs llm-compressor.

    python benchmarks/fp8.py --shape 1b --llmc-python .venv-xc/bin/python   # both converters, same run
    python benchmarks/fp8.py --shape 8b                                     # disk ratio on 16 GB of shards

Random bf16 weights are written shard by shard straight from the architecture's shapes
(never a whole model in memory, no download). Each converter runs in a fresh subprocess
so its peak RSS is its own: `hermes3.convert.fp8.convert` (streams shard by shard) and
llm-compressor's `oneshot(scheme="FP8_DYNAMIC", ignore=["lm_head"])` + `save_pretrained`
(loads the whole model; needs its own venv, see `make fp8-crosscheck`). Throughput is GB of
bf16 input per second of wall time, load and save included on both sides.
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

# Llama 3.2 1B's shape (untied here, like 8B) and Llama 3.1 8B's, from our recipe file.
SHAPES = {
    "1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
               num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
    "tiny": dict(model_type="llama", hidden_size=512, intermediate_size=1536, num_hidden_layers=4,
                 num_attention_heads=8, num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False),
}


def model_config(shape: str) -> dict:
    if shape in SHAPES:
        return dict(SHAPES[shape])
    import yaml

    return yaml.safe_load((ROOT / f"configs/sft/llama3.1-{shape}.yaml").read_text())["model_config"]


def write_random_checkpoint(folder: Path, config: dict, shard_gb: float = 2.0) -> int:
    """Write a bf16 safetensors checkpoint with random weights, one shard in memory at a time."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from hermes3.train.plan import meta_model

    folder.mkdir(parents=True, exist_ok=True)
    shapes = {k: tuple(v.shape) for k, v in meta_model(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    shard, size, n, weight_map, total = {}, 0, 0, {}, 0

    def flush():
        nonlocal shard, size, n
        if shard:
            n += 1
            name = f"model-{n:05d}.safetensors"
            save_file(shard, folder / name, metadata={"format": "pt"})
            weight_map.update({k: name for k in shard})
            shard, size = {}, 0

    for name, shape in shapes.items():
        t = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16) if "norm" not in name \
            else torch.ones(shape, dtype=torch.bfloat16)
        shard[name] = t
        size += t.numel() * 2
        total += t.numel() * 2
        if size >= shard_gb * 1e9:
            flush()
    flush()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    cfg = AutoConfig.for_model(**config)
    cfg.torch_dtype = "bfloat16"
    cfg.save_pretrained(folder)
    return total


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


def run_child(python: str, code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return its wall time and peak RSS (and stdout's RESULT)."""
    t0 = time.perf_counter()
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{r.stderr[-3000:]}")
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return {"wall_s": wall, **json.loads(line[7:])}


# VmHWM, not ru_maxrss: Linux carries the parent's peak (here: the checkpoint writer's) into a
# child's ru_maxrss across fork + exec.
PEAK = ("import re, json; print('RESULT ' + json.dumps({'peak_rss_gb': int(re.search(r'VmHWM:\\s+(\\d+)', "
        "open('/proc/self/status').read()).group(1)) / 1e6}))")

OURS = """
from hermes3.convert.fp8 import convert
convert({src!r}, {out!r}, overwrite=True)
""" + PEAK

LLMC = """
import torch
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({src!r}, torch_dtype=torch.bfloat16)
oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"]))
model.save_pretrained({out!r}, save_compressed=True)
""" + PEAK


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="1b", help="1b | tiny | 8b | 70b | 405b (recipe files)")
    ap.add_argument("--llmc-python", default=None, help="python of a venv with llmcompressor (optional)")
    ap.add_argument("--workdir", default=None, help="where to write checkpoints (default: a temp dir)")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (seconds): what the test suite runs, so a moved path or renamed API fails there")
    args = ap.parse_args()
    if args.smoke:
        args.shape = "tiny"
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        total = write_random_checkpoint(tmp / "bf16", model_config(args.shape), args.shard_gb)
        largest = max(f.stat().st_size for f in (tmp / "bf16").glob("*.safetensors"))
        print(f"# FP8 conversion, {args.shape}-shaped Llama, random bf16 weights: {total / 1e9:.2f} GB in "
              f"{len(list((tmp / 'bf16').glob('*.safetensors')))} shards (largest {largest / 1e9:.2f} GB), "
              f"written in {time.perf_counter() - t0:.0f} s\n")
        runs = {"hermes3": (sys.executable, OURS)}
        if args.llmc_python:
            runs["llm-compressor"] = (args.llmc_python, LLMC)
        res = {}
        print("converter | wall s | GB/s of input | peak RSS GB | FP8 / bf16 on disk")
        for name, (py, code) in runs.items():
            out = tmp / name
            try:
                r = run_child(py, code.replace("{src!r}", repr(str(tmp / "bf16"))).replace("{out!r}", repr(str(out))))
            except RuntimeError as e:  # e.g. llm-compressor killed for memory at 8B: say so, keep ours
                print(f"{name} | failed: {str(e).splitlines()[-1][:200]}")
                continue
            r["ratio"] = folder_bytes(out) / folder_bytes(tmp / "bf16")
            res[name] = r
            print(f"{name} | {r['wall_s']:.1f} | {total / 1e9 / r['wall_s']:.2f} | {r['peak_rss_gb']:.2f} | {r['ratio']:.4f}")
            if name == "hermes3" and len(runs) > 1:
                import shutil
                shutil.rmtree(out)  # disk: keep one converted copy at a time
        if "llm-compressor" in res and "hermes3" in res:
            a, b = res["hermes3"], res["llm-compressor"]
            print(f"\nthroughput hermes3 / llm-compressor: {b['wall_s'] / a['wall_s']:.2f}x (goal >= 1x); "
                  f"peak RSS hermes3 / llm-compressor: {a['peak_rss_gb'] / b['peak_rss_gb']:.2f}x")
        print(f"disk ratio FP8 / bf16 (hermes3, lm_head kept in bf16): {res['hermes3']['ratio']:.4f} (goal <= 0.53)")


if __name__ == "__main__":
    main()
