"""Bit-exact check of `hermes3 fp8` against llm-compressor (run in llm-compressor's own venv).

    make fp8-crosscheck

llm-compressor pins older transformers/compressed-tensors, so it cannot share our
environment: `make fp8-crosscheck` builds `.venv-xc`, writes a small bf16 Llama with hermes3,
converts it with `hermes3 fp8`, then runs this script in `.venv-xc`: llm-compressor's
`oneshot(scheme="FP8_DYNAMIC", ignore=["lm_head"])` on the same model, and a comparison of
every tensor (names, dtypes, bytes) and of the quantization config.

    python scripts/fp8_crosscheck.py BF16_DIR HERMES3_FP8_DIR OUT_DIR
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def tensors(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def main(src: str, ours: str, out: str) -> int:
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, torch_dtype="auto")
    oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"]))
    model.save_pretrained(out, save_compressed=True)
    a, b = tensors(Path(ours)), tensors(Path(out))
    problems = [f"only in hermes3: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in llm-compressor: {k}" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x.dtype != y.dtype or x.shape != y.shape:
            problems.append(f"{k}: {x.dtype}{tuple(x.shape)} vs {y.dtype}{tuple(y.shape)}")
        elif not torch.equal(x.view(torch.uint8) if x.dtype == torch.float8_e4m3fn else x,
                             y.view(torch.uint8) if y.dtype == torch.float8_e4m3fn else y):
            problems.append(f"{k}: values differ")
    qa = json.loads((Path(ours) / "config.json").read_text())["quantization_config"]
    qb = json.loads((Path(out) / "config.json").read_text())["quantization_config"]
    for key in ("quant_method", "format", "ignore"):
        if qa.get(key) != qb.get(key):
            problems.append(f"config {key}: {qa.get(key)!r} vs {qb.get(key)!r}")
    for part in ("weights", "input_activations"):
        for field in ("num_bits", "type", "symmetric", "strategy", "dynamic"):
            va = qa["config_groups"]["group_0"][part][field]
            vb = next(iter(qb["config_groups"].values()))[part][field]
            if va != vb:
                problems.append(f"config {part}.{field}: {va!r} vs {vb!r}")
    print(f"compared {len(set(a) & set(b))} tensors")
    for p in problems:
        print("MISMATCH", p)
    print("bit-exact: yes" if not problems else f"bit-exact: NO ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
