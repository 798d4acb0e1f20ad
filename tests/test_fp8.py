"""FP8_DYNAMIC conversion: exact arithmetic, transformers parity, safety, streaming memory."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import make_tiny_model
from transformers import AutoModelForCausalLM

from hermes3.fp8 import FP8Error, convert, dequantize_weight, emulate, fake_quantize_tokens, quantize_weight
from hermes3.modeling import tiny_llama


def test_per_channel_scales_rounding_zero_rows_and_saturation():
    torch.manual_seed(0)
    w = torch.randn(8, 64, dtype=torch.bfloat16) * 3
    w[3] = 0
    q, s = quantize_weight(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (8, 1) and s.dtype == torch.bfloat16
    absmax = w.float().abs().amax(1, keepdim=True)
    expect = (absmax.to(torch.bfloat16) / 448)
    assert torch.equal(s[[0, 1, 2, 4, 5, 6, 7]], expect[[0, 1, 2, 4, 5, 6, 7]])
    assert s[3].item() == torch.finfo(torch.bfloat16).eps and torch.all(q[3].float() == 0)  # no 0/0
    deq = dequantize_weight(q, s).float()
    # e4m3 has 3 mantissa bits: relative rounding error <= 2^-4 (half an ulp), plus subnormal floor
    err = (deq - w.float()).abs()
    assert torch.all(err <= w.float().abs() / 16 + s.float() * 2 ** -9 + 1e-6)
    assert (q.float().abs().amax(1) == 448)[[0, 1, 2, 4, 5, 6, 7]].all()  # each row's absmax maps to 448
    big = torch.tensor([[1e6, -1e6, 1.0]])
    qb, sb = quantize_weight(big)
    assert qb.float().abs().max() == 448


def test_fake_quant_tokens_by_hand():
    """Per-token scale = absmax / 448, then round to e4m3 (3 mantissa bits: steps of 8 in
    [64, 128), 16 in [128, 256), 32 in [256, 448]), then multiply back. Token 0: absmax 3,
    x / scale = 149.33, -298.67, 74.67, 448 -> 144, -288, 72, 448. Token 1: all zero stays
    zero (no 0/0). Token 2: absmax 0.25 -> -448, 224, 0, 0 (exact: back to the input)."""
    x = torch.tensor([[[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 0.0, 0.0], [-0.25, 0.125, 0.0, 0.0]]])
    expect = torch.tensor([[[144 * 3 / 448, -288 * 3 / 448, 72 * 3 / 448, 3.0], [0.0] * 4, [-0.25, 0.125, 0.0, 0.0]]])
    torch.testing.assert_close(fake_quantize_tokens(x), expect, atol=0, rtol=1e-6)
    assert torch.equal(fake_quantize_tokens(x)[0, 1:], expect[0, 1:])


@pytest.fixture(scope="module")
def model_dir(smoke_data, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("bf16"), smoke_data / "tokenizer", seed=4, hidden_size=64)


def test_transformers_loads_output_and_matches_emulation(model_dir, tmp_path):
    rep = convert(model_dir, tmp_path / "fp8")
    assert rep.quantized == 14 and rep.ratio < 0.7
    cfg = json.loads((tmp_path / "fp8" / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "compressed-tensors" and cfg["format"] == "float-quantized"
    g = cfg["config_groups"]["group_0"]
    assert g["weights"]["strategy"] == "channel" and not g["weights"]["dynamic"]
    assert g["input_activations"]["strategy"] == "token" and g["input_activations"]["dynamic"]
    assert cfg["ignore"] == ["lm_head"] and (tmp_path / "fp8" / "tokenizer.json").exists()
    ours = emulate(model_dir, tmp_path / "fp8")
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "fp8").eval()
    ids = torch.randint(0, 500, (2, 23))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=0, rtol=0)


def test_errors_are_one_line(model_dir, tmp_path):
    with pytest.raises(FP8Error, match="does not exist"):
        convert(tmp_path / "nope", tmp_path / "o")
    convert(model_dir, tmp_path / "fp8")
    with pytest.raises(FP8Error, match="already quantized"):
        convert(tmp_path / "fp8", tmp_path / "o2")
    with pytest.raises(FP8Error, match="exists"):
        convert(model_dir, tmp_path / "fp8")
    # NaN / Inf in a quantized Linear (caught through its row scales) and in a kept tensor
    for k, (param, value) in enumerate([("model.layers.1.mlp.up_proj.weight", float("nan")),
                                        ("model.layers.0.self_attn.o_proj.weight", -float("inf")),
                                        ("model.embed_tokens.weight", float("nan")),
                                        ("model.norm.weight", float("inf"))]):
        bad = tmp_path / f"bad{k}"
        m = AutoModelForCausalLM.from_pretrained(model_dir)
        with torch.no_grad():
            m.get_parameter(param)[-1] = value
        m.save_pretrained(bad)
        with pytest.raises(FP8Error, match=f"{param} contains NaN or Inf"):
            convert(bad, tmp_path / f"o{k}")
        assert not (tmp_path / f"o{k}").exists()  # nothing half-written left looking valid


# VmHWM, not ru_maxrss: Linux carries a parent's peak RSS into ru_maxrss across fork + exec, so
# under pytest (a big parent) ru_maxrss would hide the child's own growth.
STREAM = """
import re, sys
from hermes3.fp8 import convert
hwm = lambda: int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
before = hwm()
convert(sys.argv[1], sys.argv[2])
print(hwm() - before)
"""


def test_streaming_peak_memory_is_about_one_tensor(tmp_path):
    # ~100 MB of fp32 weights in one shard; peak growth must stay near the largest tensor (the
    # 16 MB embedding), far below the shard (safe_open + save_file would hold ~2 shards)
    model = tiny_llama(8000, hidden_size=512, num_layers=6, num_heads=8, intermediate_size=2048)
    model.save_pretrained(tmp_path / "big", max_shard_size="1GB")
    (shard,) = list((tmp_path / "big").glob("*.safetensors"))
    total, largest = shard.stat().st_size, max(p.numel() * 4 for p in model.parameters())
    # warm the imports so their memory is not counted
    code = "import hermes3.fp8, hermes3.plan, transformers, compressed_tensors, safetensors.torch\n" + STREAM
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    growth = int(r.stdout.strip().splitlines()[-1])
    assert growth < 2 * largest + 30e6 and growth < total * 0.5, (growth, largest, total)
