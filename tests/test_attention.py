"""Packed rows are isolated: logits and per-token losses equal each sample run alone."""

import pytest
import torch
import torch.nn.functional as F

from hermes3.train.modeling import packed_forward, tiny_llama
from hermes3.train.packing import PackedDataset, PaddingFreeCollator, pack

V = 97
BACKENDS = ["eager", "sdpa", "hermes_varlen_sdpa"]


def _samples(seed=0, lengths=(7, 13, 5, 9, 21, 3)):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(0, V, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


def _batch(samples, max_length=40):
    plan = pack([len(s["input_ids"]) for s in samples], max_length)
    ds = PackedDataset(samples, plan)
    return PaddingFreeCollator()([ds[i] for i in range(len(ds))]), [p for row in plan.row_pieces for p in row]


def _model(attn):
    return tiny_llama(V, attn_implementation=attn, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2).eval()


@pytest.mark.parametrize("attn", BACKENDS)
def test_packed_logits_and_losses_equal_unpacked(attn):
    model, samples = _model(attn), _samples()
    batch, order = _batch(samples)
    with torch.no_grad():
        logits = packed_forward(model, batch).logits[0]
        off = 0
        for s, a, b in order:
            ids = torch.tensor([samples[s]["input_ids"]])
            alone = model(input_ids=ids, use_cache=False).logits[0]
            mine = logits[off:off + b - a]
            torch.testing.assert_close(mine, alone, atol=1e-5, rtol=0)
            # per-token loss of the sample's own next-token targets
            l_packed = F.cross_entropy(mine[:-1], ids[0, 1:], reduction="none")
            l_alone = F.cross_entropy(alone[:-1], ids[0, 1:], reduction="none")
            torch.testing.assert_close(l_packed, l_alone, atol=1e-5, rtol=0)
            off += b - a


@pytest.mark.parametrize("attn", BACKENDS)
def test_perturbing_one_sample_leaves_the_others(attn):
    model, samples = _model(attn), _samples()
    batch, order = _batch(samples)
    victim = order[0][0]
    changed = [dict(s) for s in samples]
    changed[victim] = {"input_ids": [(t + 1) % V for t in samples[victim]["input_ids"]],
                       "labels": samples[victim]["labels"]}
    batch2, _ = _batch(changed)
    with torch.no_grad():
        a, b = packed_forward(model, batch).logits[0], packed_forward(model, batch2).logits[0]
    n = order[0][2]
    assert (a[:n] - b[:n]).abs().max() > 1e-3  # the perturbed sample did change
    torch.testing.assert_close(a[n:], b[n:], atol=1e-6, rtol=0)


def test_use_cache_trap_is_closed():
    """Under sdpa with use_cache=True transformers ignores packing and leaks across samples;
    packed_forward and every model we build turn the cache off, and our kernel is immune."""
    samples = _samples()
    batch, order = _batch(samples)
    s, a, b = order[1]
    ids = torch.tensor([samples[s]["input_ids"]])
    sl = slice(order[0][2], order[0][2] + b - a)
    sdpa = _model("sdpa")
    assert sdpa.config.use_cache is False
    with torch.no_grad():
        alone = sdpa(input_ids=ids, use_cache=False).logits[0]
        leaked = sdpa(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits[0, sl]
        assert (leaked - alone).abs().max() > 1e-2  # the trap is real
        torch.testing.assert_close(sdpa(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0, sl],
                                   alone, atol=1e-5, rtol=0)  # our config default closes it
        ours = _model("hermes_varlen_sdpa")
        torch.testing.assert_close(
            ours(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=True).logits[0, sl],
            ours(input_ids=ids).logits[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="attention_mask"):
        packed_forward(sdpa, {**batch, "attention_mask": torch.ones_like(batch["input_ids"])})


def test_gradients_match_padded_batch():
    """A training step on a packed row gives the same gradients as the padded batch."""
    samples = _samples(lengths=(6, 11, 4))
    batch, order = _batch(samples)
    m1, m2 = _model("hermes_varlen_sdpa"), _model("sdpa")
    m2.load_state_dict(m1.state_dict())
    packed_forward(m1, batch).loss.backward()
    L = max(len(s["input_ids"]) for s in samples)
    ids = torch.zeros(len(samples), L, dtype=torch.long)
    labels = torch.full((len(samples), L), -100)
    mask = torch.zeros(len(samples), L, dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(s["input_ids"]), torch.tensor(s["labels"]), 1
    labels[:, 0] = -100
    m2(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_row_starting_mid_sample_and_decode_with_cache():
    from hermes3.train.attention import _segments

    pos = torch.tensor([[3, 4, 0, 1, 2, 0]])
    assert _segments({"position_ids": pos}, 1, 6, "cpu") == [[(0, 2), (2, 5), (5, 6)]]
    model = _model("hermes_varlen_sdpa")
    ids = torch.tensor([_samples()[0]["input_ids"]])
    with torch.no_grad():
        full = model(input_ids=ids).logits[0, -1]
        out = model(input_ids=ids[:, :-1], use_cache=True)
        step = model(input_ids=ids[:, -1:], cache=out.cache, use_cache=True).logits[0, -1]
    torch.testing.assert_close(step, full, atol=1e-5, rtol=0)


def test_bad_cu_seq_lens_raise():
    from hermes3.train.attention import _segments

    for cu, batch in (([0, 3, 2, 6], 1), ([1, 6], 1), ([0, 5], 1), ([0, 6], 2)):
        with pytest.raises(ValueError, match="cu_seq_lens_q"):
            _segments({"cu_seq_lens_q": torch.tensor(cu)}, batch, 6, "cpu")
