"""CUDA-only checks (run by scripts/gpu_check.sh; skipped without a GPU): the CUDA attention
path keeps packed samples isolated in bf16, and FP8 `_scaled_mm` on a converted layer equals
our emulation of vLLM's FP8_DYNAMIC arithmetic."""

import pytest
import torch

from hermes3.convert.fp8 import FP8, dequantize_weight, fake_quantize_tokens, quantize_weight
from hermes3.train.attention import choose_attention
from hermes3.train.modeling import packed_forward, tiny_llama
from hermes3.train.packing import PaddingFreeCollator

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_packed_equals_unpacked_on_cuda_bf16():
    torch.manual_seed(0)
    model = tiny_llama(1000, hidden_size=256, num_layers=2, num_heads=4).to("cuda", torch.bfloat16).eval()
    model.set_attn_implementation(choose_attention("cuda"))  # flash-attn varlen if installed, else ours
    samples = [torch.randint(0, 1000, (n,)).tolist() for n in (37, 300, 5, 128)]
    batch = PaddingFreeCollator()([{"input_ids": s, "labels": s} for s in samples])
    batch = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
    with torch.no_grad():
        packed = packed_forward(model, batch).logits[0].float()
        start = 0
        for s in samples:
            alone = model(input_ids=torch.tensor([s], device="cuda"), use_cache=False).logits[0].float()
            torch.testing.assert_close(packed[start:start + len(s)], alone, atol=5e-2, rtol=5e-2)
            start += len(s)


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 9),
                    reason="FP8 matmul needs compute capability >= 8.9")
def test_scaled_mm_equals_fp8_emulation():
    torch.manual_seed(0)
    w = (torch.randn(512, 256) * 0.02).to("cuda", torch.bfloat16)
    x = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16)
    qw, sw = quantize_weight(w)
    absmax = x.abs().amax(dim=-1, keepdim=True).float()
    sx = (absmax / 448).clamp_min(torch.finfo(torch.float32).eps)
    qx = (x.float() / sx).clamp(-448, 448).to(FP8)
    out = torch._scaled_mm(qx, qw.t(), scale_a=sx, scale_b=sw.float().t(), out_dtype=torch.float32)
    ref = fake_quantize_tokens(x.float()) @ dequantize_weight(qw, sw).float().t()
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-2)
