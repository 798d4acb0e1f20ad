"""FP8_DYNAMIC conversion: exact arithmetic, transformers parity, safety, streaming memory."""

import json
import math
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from conftest import make_tiny_model
from hermes3.convert.fp8 import (
    FP8Error,
    convert,
    dequantize_weight,
    emulate,
    fake_quantize_tokens,
    quantize_weight,
    stored_dtypes,
    write_safetensors,
)
from hermes3.train.modeling import load_model, tiny_llama


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
    return make_tiny_model(tmp_path_factory.mktemp("fp32"), smoke_data / "tokenizer", seed=4, hidden_size=64)


def rep_vocab(model_dir) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def test_transformers_loads_output_and_matches_emulation(model_dir, tmp_path):
    rep = convert(model_dir, tmp_path / "fp8")
    # 14 linears of 2 layers quantized; lm_head (untied, as in Llama 3.1) is kept like the embedding
    assert rep.quantized == 14 and rep.ratio < 0.75
    kept_in, kept_out = rep.by_class["ignored linear"]
    assert kept_in == kept_out == 64 * rep_vocab(model_dir) * 4  # hidden x vocab, fp32 as saved
    cfg = json.loads((tmp_path / "fp8" / "config.json").read_text())["quantization_config"]
    assert cfg["quant_method"] == "compressed-tensors" and cfg["format"] == "float-quantized"
    g = cfg["config_groups"]["group_0"]
    assert g["weights"]["strategy"] == "channel" and not g["weights"]["dynamic"]
    assert g["input_activations"]["strategy"] == "token" and g["input_activations"]["dynamic"]
    assert cfg["ignore"] == ["lm_head"] and (tmp_path / "fp8" / "tokenizer.json").exists()
    assert stored_dtypes(model_dir) == "float32 (100%)" and "float8_e4m3fn (" in stored_dtypes(tmp_path / "fp8")
    ours = emulate(model_dir, tmp_path / "fp8")
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "fp8").eval()
    ids = torch.randint(0, 500, (2, 23))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=0, rtol=0)


def test_stored_dtypes_reads_the_headers(tmp_path):
    """A label from the bytes on disk: 16 bytes of F32 and 48 of F8_E4M3 -> 75% / 25%, largest first."""
    specs = [("a", "F32", [2, 2]), ("b", "F8_E4M3", [4, 12])]
    tensors = [torch.zeros(2, 2), torch.zeros(4, 12).to(torch.float8_e4m3fn)]
    write_safetensors(tmp_path / "model.safetensors", specs, tensors, {"format": "pt"})
    assert stored_dtypes(tmp_path) == "float8_e4m3fn (75%), float32 (25%)"


def test_load_model_prints_no_compressed_tensors_bars(model_dir, tmp_path, capfd):
    import compressed_tensors.offload.dispatch as dispatch
    import compressed_tensors.quantization.lifecycle.apply as apply

    convert(model_dir, tmp_path / "fp8")
    before = (apply.tqdm, dispatch.tqdm)
    AutoModelForCausalLM.from_pretrained(tmp_path / "fp8")
    assert "Applying quantization config" in capfd.readouterr().err  # the bars this hides
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path / "fp8").eval()
    capfd.readouterr()
    ids = torch.randint(0, 500, (2, 23))
    with torch.no_grad():
        want = theirs(ids).logits  # the first forward decompresses, with its own bars
    assert "Dispatching model" in capfd.readouterr().err
    ours = load_model(tmp_path / "fp8").eval()
    with torch.no_grad():
        got = ours(ids).logits
    err = capfd.readouterr().err
    assert "Applying quantization config" not in err and "Dispatching model" not in err, err
    assert (apply.tqdm, dispatch.tqdm) == before  # swapped during the call only
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert type(load_model(model_dir)).__name__ == "LlamaForCausalLM"  # not FP8: plain from_pretrained


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
from hermes3.convert.fp8 import convert
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
    code = "import hermes3.convert.fp8, hermes3.train.plan, transformers, compressed_tensors, safetensors.torch\n" + STREAM
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "big"), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    growth = int(r.stdout.strip().splitlines()[-1])
    assert growth < 2 * largest + 30e6 and growth < total * 0.5, (growth, largest, total)


def test_weight_bytes_by_hand():
    """hidden 64, MLP 128, 2 layers, 4 heads of 16 (2 KV heads), vocab 1000, untied.
    Linear weights per layer: q 64x64 + k 32x64 + v 32x64 + o 64x64 + gate, up, down 3 x 64x128
    = 36,864, with 64+32+32+64+128+128+64 = 512 output channels; two layers: 73,728 and 1,024.
    Kept in bf16: embeddings 64,000, lm_head 64,000 (ignored), norms 2 x 2 x 64 + 64 = 320.
    bf16: (73,728 + 128,320) x 2 = 404,096 bytes; FP8: 73,728 x 1 + 1,024 scales x 2 + 128,320 x 2
    = 332,416 bytes."""
    from hermes3.convert.fp8 import weight_bytes

    arch = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": False}
    assert weight_bytes(arch) == {"bf16_GB": 404_096 / 1e9, "fp8_GB": 332_416 / 1e9, "ratio": 332_416 / 404_096}
    # tied: lm_head is the embedding, counted once: bf16 (73,728 + 64,320) x 2, FP8 73,728 + 2,048 + 128,640
    tied = weight_bytes({**arch, "tie_word_embeddings": True})
    assert (tied["bf16_GB"], tied["fp8_GB"]) == (276_096 / 1e9, 204_416 / 1e9)
    # quantizing lm_head too: its 64,000 weights at 1 byte plus 1,000 scales
    assert weight_bytes(arch, ignore=())["fp8_GB"] == (332_416 - 64_000 * 2 + 64_000 + 1_000 * 2) / 1e9


def test_weight_bytes_llama31_8b():
    """Llama 3.1 8B: 8,030,261,248 parameters (Meta's model card: 8.03B) -> 16.06 GB in bf16.
    FP8: the 6,979,321,856 weights of the 224 Linear layers at 1 byte + 32 x 43,008 channel
    scales at 2 bytes + embeddings, lm_head (2 x 128,256 x 4,096) and norms (266,240) in bf16
    = 9,083,953,152 bytes (RedHatAI's FP8 checkpoint is 9.08 GB)."""
    import yaml

    from hermes3.convert.fp8 import weight_bytes

    arch = yaml.safe_load(open("configs/sft/llama3.1-8b.yaml"))["model_config"]
    wb = weight_bytes(arch)
    assert wb["bf16_GB"] == 8_030_261_248 * 2 / 1e9 and wb["fp8_GB"] == 9_083_953_152 / 1e9


def test_overwrite_replaces_the_folder_whole(model_dir, tmp_path):
    first = convert(model_dir, tmp_path / "fp8")
    (tmp_path / "fp8" / "stale.txt").write_text("from an older conversion")
    again = convert(model_dir, tmp_path / "fp8", overwrite=True)
    assert not (tmp_path / "fp8" / "stale.txt").exists() and not (tmp_path / "fp8.tmp").exists()
    assert (again.bytes_in, again.bytes_out, again.quantized, again.kept) == (
        first.bytes_in, first.bytes_out, first.quantized, first.kept)
    convert(model_dir, tmp_path / "fresh")
    names = sorted(p.name for p in (tmp_path / "fresh").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "fp8").iterdir())
    for n in names:  # same bytes as a conversion into a new folder
        assert (tmp_path / "fp8" / n).read_bytes() == (tmp_path / "fresh" / n).read_bytes(), n


def _quality_by_hand(a, b, tok, texts, max_tokens):
    """Perplexities and mean per-token KL(a || b), float64, one text at a time."""
    nll_a = nll_b = kl = n = 0.0
    for t in texts:
        ids = tok(t, add_special_tokens=False, return_tensors="pt").input_ids[:, :max_tokens]
        if ids.shape[1] < 2:
            continue
        with torch.no_grad():
            la = torch.log_softmax(a(ids).logits[0, :-1].double(), -1)
            lb = torch.log_softmax(b(ids).logits[0, :-1].double(), -1)
        tgt = ids[0, 1:]
        nll_a -= la[torch.arange(len(tgt)), tgt].sum().item()
        nll_b -= lb[torch.arange(len(tgt)), tgt].sum().item()
        kl += (la.exp() * (la - lb)).sum().item()
        n += len(tgt)
    return math.exp(nll_a / n), math.exp(nll_b / n), kl / n, int(n)


def test_quality(model_dir, tmp_path):
    from transformers import AutoTokenizer

    from hermes3.convert.fp8 import quality

    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = ["The capital of France is Paris, and the capital of Japan is Tokyo.", "a",
             "def add(a, b):\n    return a + b\n" * 8]
    lengths = [len(tok(t, add_special_tokens=False).input_ids) for t in texts]
    assert lengths[1] == 1 and lengths[0] < 40 < lengths[2]  # one text too short to score, one cut at max_tokens
    expected_tokens = (lengths[0] - 1) + (40 - 1)
    # 1. A model whose lm_head is zero predicts uniformly: perplexity = vocabulary size exactly,
    # and lm_head stays bf16 in FP8, so both models agree (KL 0).
    m = AutoModelForCausalLM.from_pretrained(model_dir)
    with torch.no_grad():
        m.lm_head.weight.zero_()
    m.save_pretrained(tmp_path / "uniform")
    tok.save_pretrained(tmp_path / "uniform")
    convert(tmp_path / "uniform", tmp_path / "uniform-fp8")
    q = quality(tmp_path / "uniform", tmp_path / "uniform-fp8", texts, max_tokens=40)
    V = m.config.vocab_size
    assert q["tokens"] == expected_tokens and q["kl_per_token"] == 0.0
    assert q["ppl_unquantized"] == pytest.approx(V, rel=1e-5) and q["ppl_fp8"] == pytest.approx(V, rel=1e-5)
    # 2. The real conversion against a float64 recomputation from the two models' logits.
    convert(model_dir, tmp_path / "fp8")
    q = quality(model_dir, tmp_path / "fp8", texts, max_tokens=40)
    a = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "fp8", attn_implementation="sdpa").eval()
    ppl_a, ppl_b, kl, n = _quality_by_hand(a, b, tok, texts, 40)
    assert q["tokens"] == n == expected_tokens
    assert q["ppl_unquantized"] == pytest.approx(ppl_a, rel=1e-5) and q["ppl_fp8"] == pytest.approx(ppl_b, rel=1e-5)
    assert q["kl_per_token"] == pytest.approx(kl, rel=2e-2) and kl > 1e-6  # float32 vs float64 on a tiny KL
    # 3. A model against itself: KL exactly 0, equal perplexities.
    same = quality(model_dir, model_dir, texts, max_tokens=40)
    assert same["kl_per_token"] == 0.0 and same["ppl_unquantized"] == same["ppl_fp8"] == pytest.approx(ppl_a, rel=1e-5)
