"""The fused LM head (TRL's) against the plain head, on packed rows of several conversations."""

import json

import pytest
import torch

import hermes3.train.attention  # noqa: F401  (registers hermes_varlen_sdpa)
from hermes3.format.masking import IGNORE_INDEX
from hermes3.train import logprobs
from hermes3.train.dpo import DPOConfig, _lora
from hermes3.train.dpo_loss import collate_packed, collate_padded, dpo_step, sequence_logps
from hermes3.train.logprobs import TILE_TOKENS, TILE_VOCAB, add_fused_head, has_fused_head, label_logprobs
from hermes3.train.modeling import tiny_llama
from hermes3.train.plan import head_scores_bytes

VOCAB = TILE_VOCAB + 7232  # two vocabulary tiles, the second partial


def _model(fused: bool, vocab: int = VOCAB):
    m = tiny_llama(vocab, attn_implementation="hermes_varlen_sdpa", hidden_size=32, num_layers=1, num_heads=2,
                   num_kv_heads=1, seed=3)
    return (add_fused_head(m) if fused else m).train()


def _row(lengths, vocab=VOCAB, seed=0):
    """A packed row: one conversation per length, the second half of each labelled."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, sum(lengths)), generator=g)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    labels = ids.clone()
    labels[0, torch.cat([torch.arange(n) < n // 2 for n in lengths])] = IGNORE_INDEX
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    inputs = {"input_ids": ids, "position_ids": pos, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
              "max_length_q": max(lengths), "max_length_k": max(lengths)}
    return inputs, labels


def _reference(model, inputs, labels):
    """Per-conversation cross-entropy from the full logits (the peers' SFT loss), per position."""
    logits = model(**inputs, use_cache=False).logits[0, :-1].float()
    target = labels[0, 1:]
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    return -ce


def test_the_fused_head_is_on_for_large_vocabularies_only():
    assert has_fused_head(_model(True)) and not has_fused_head(_model(False))
    assert not has_fused_head(add_fused_head(_model(False, vocab=4096)))
    peft = _lora(_model(True), DPOConfig())
    assert has_fused_head(peft)  # seen through PEFT's wrappers


def test_sft_scores_and_gradients_equal_the_plain_head_and_per_conversation_cross_entropy():
    inputs, labels = _row([37, 90, 5, 60])
    mask = labels[:, 1:] != IGNORE_INDEX
    out = {}
    for fused in (False, True):
        m = _model(fused)
        lp = label_logprobs(m, inputs, labels, fused)
        loss = -lp[mask].sum() / mask.sum()
        loss.backward()
        out[fused] = (lp.detach(), loss.item(), {n: p.grad.clone() for n, p in m.named_parameters()})
    ref = _reference(_model(False), inputs, labels)
    assert (out[True][0][~mask] == 0).all() and (out[False][0][~mask] == 0).all()
    torch.testing.assert_close(out[True][0], out[False][0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[False][0][0], ref, rtol=0, atol=1e-5)
    assert out[True][1] == pytest.approx(out[False][1], abs=1e-5)
    for name, g in out[False][2].items():
        torch.testing.assert_close(out[True][2][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_dpo_sequence_logps_and_lora_gradients_equal_the_plain_head():
    g = torch.Generator().manual_seed(1)

    def seq(n):
        ids = torch.randint(0, VOCAB, (n,), generator=g).tolist()
        return {"input_ids": ids, "labels": [IGNORE_INDEX] * (n // 3) + ids[n // 3:]}

    pairs = [{"chosen": seq(a), "rejected": seq(b)} for a, b in ((20, 31), (44, 9))]
    batch = collate_packed(pairs)
    out = {}
    for fused in (False, True):
        torch.manual_seed(0)
        m = _lora(_model(fused), DPOConfig(lora_dropout=0.0))
        losses, _, pol, ref = dpo_step(m, batch, 0.1)
        losses.mean().backward()
        out[fused] = (pol.detach(), ref, {n: p.grad.clone() for n, p in m.named_parameters() if p.requires_grad})
    # per-sequence sums of ~300 nats, where one fp32 ulp is 3e-5: 1e-5 per token, summed
    close = {"rtol": 0, "atol": 1e-5 * max(len(p[k]["input_ids"]) for p in pairs for k in p)}
    torch.testing.assert_close(out[True][0], out[False][0], **close)
    torch.testing.assert_close(out[True][1], out[False][1], **close)
    assert len(out[False][2]) > 0
    for name, gr in out[False][2].items():
        torch.testing.assert_close(out[True][2][name], gr, rtol=1e-4, atol=1e-7, msg=name)
    # and the padded layout scores the same sequences the same way
    m = _lora(_model(True), DPOConfig(lora_dropout=0.0))
    with torch.no_grad():
        torch.testing.assert_close(sequence_logps(m, collate_padded(pairs)), out[True][1], **close)


def _largest_allocation(fn, tmp_path) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    return max(e["args"]["Bytes"] for e in events if e.get("name") == "[memory]")


@pytest.mark.parametrize("fused", [True, False])
def test_no_tokens_by_vocabulary_tensor_larger_than_one_tile(fused, tmp_path, monkeypatch):
    """An SFT step (forward and backward) on a row with more labelled tokens x vocabulary than one
    fp32 tile holds: the fused head never allocates more than a tile; the plain head must (so this
    check can fail)."""
    inputs, labels = _row([3400, 3400])  # 3,400 labelled tokens x 40,000 columns > 4,096 x 32,768
    m = _model(fused)
    mask = labels[:, 1:] != IGNORE_INDEX
    tile = TILE_TOKENS * TILE_VOCAB * 4
    biggest = _largest_allocation(lambda: (-label_logprobs(m, inputs, labels, fused)[mask].mean()).backward(), tmp_path)
    assert (biggest <= tile) if fused else (biggest > tile), (biggest, tile)


def test_plan_counts_the_tile_by_hand():
    # Llama 3.1 8B DPO, one pair of 8,192-token sequences per GPU: a bf16 tile of 4,096 x 32,768
    # (256 MiB) and the fp32 gradient of 16,384 hidden states of 4,096 (256 MiB); the head is frozen.
    assert head_scores_bytes(16384, 4096, 128256, head_trains=False, plain_bytes=10) == 2 * 256 * 2**20
    # SFT 8B: the same tile, dL/dhidden of 8,192 tokens, and the fp32 head gradient 128,256 x 4,096 x 4
    assert head_scores_bytes(8192, 4096, 128256, head_trains=True, plain_bytes=6) == (
        4096 * 32768 * 2 + 8192 * 4096 * 4 + 128256 * 4096 * 4)
    # below FUSED_MIN_VOCAB the plain head's bytes
    v = logprobs.FUSED_MIN_VOCAB - 1
    assert head_scores_bytes(8192, 4096, v, head_trains=True, plain_bytes=6) == 8192 * v * 6 + v * 4096 * 2
