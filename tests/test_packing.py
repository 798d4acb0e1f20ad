"""hermes3.packing: plan properties (hypothesis), Fig. 3 boundaries, the collator."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes3.masking import IGNORE_INDEX
from hermes3.packing import PackedDataset, PaddingFreeCollator, cu_seqlens_from_lengths, pack

lengths_st = st.lists(st.integers(1, 300), min_size=0, max_size=200)


@settings(max_examples=150, deadline=None)
@given(lengths=lengths_st, max_length=st.integers(1, 256), strategy=st.sampled_from(["bfd", "greedy"]))
def test_drop_policy_properties(lengths, max_length, strategy):
    plan = pack(lengths, max_length, strategy=strategy)
    kept = [s for row in plan.row_pieces for s, _, _ in row]
    # every kept sample exactly once, whole; the rest dropped and counted
    assert sorted(kept) == [i for i, n in enumerate(lengths) if n <= max_length]
    assert all((a, b) == (0, lengths[s]) for row in plan.row_pieces for s, a, b in row)
    assert plan.dropped == [i for i, n in enumerate(lengths) if n > max_length]
    assert plan.dropped_tokens == sum(lengths[i] for i in plan.dropped)
    assert all(0 < n <= max_length for n in plan.row_lengths())
    total = sum(lengths[s] for s in kept)
    assert plan.efficiency == (total / (plan.num_rows * max_length) if kept else 0.0)
    assert pack(lengths, max_length, strategy=strategy).row_pieces == plan.row_pieces  # deterministic


@settings(max_examples=100, deadline=None)
@given(lengths=lengths_st, max_length=st.integers(1, 256))
def test_truncate_and_split_account_for_every_token(lengths, max_length):
    t = pack(lengths, max_length, overlong="truncate")
    assert t.packed_tokens + t.truncated_tokens == sum(lengths)
    assert sorted(s for row in t.rows for s in row) == list(range(len(lengths)))
    s = pack(lengths, max_length, overlong="split")
    assert s.packed_tokens == sum(lengths) and all(n <= max_length for n in s.row_lengths())
    pieces = sorted(p for row in s.row_pieces for p in row)
    for i, n in enumerate(lengths):  # the chunks of each sample tile it exactly
        mine = [(a, b) for j, a, b in pieces if j == i]
        assert mine[0][0] == 0 and mine[-1][1] == n and all(b == a2 for (_, b), (a2, _) in zip(mine, mine[1:]))


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 64), min_size=1, max_size=120))
def test_bfd_never_uses_more_rows_than_greedy(lengths):
    assert pack(lengths, 64).num_rows <= pack(lengths, 64, strategy="greedy").num_rows


def test_figure3_cu_seqlens():
    lengths = [11, 6, 7, 4, 8, 5, 3, 4, 3, 4, 5, 4]  # samples A..L of the report's Fig. 3
    assert cu_seqlens_from_lengths(lengths) == [0, 11, 17, 24, 28, 36, 41, 44, 48, 51, 55, 60, 64]
    # As in the figure: the 12 samples, in order, as one 64-token varlen buffer.
    samples = [{"input_ids": [k] * n, "labels": [k] * n} for k, n in enumerate(lengths)]
    plan = pack(lengths, 64, strategy="greedy")
    batch = PaddingFreeCollator()([PackedDataset(samples, plan)[0]])
    assert plan.num_rows == 1 and plan.efficiency == 1.0
    assert batch["cu_seq_lens_q"].tolist() == [0, 11, 17, 24, 28, 36, 41, 44, 48, 51, 55, 60, 64]


def test_dataset_and_collator_layout():
    samples = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}, {"input_ids": [4, 5], "labels": [IGNORE_INDEX, 5]},
               {"input_ids": [6, 7, 8, 9], "labels": [6, 7, 8, 9]}]
    plan = pack([3, 2, 4], max_length=6)
    ds = PackedDataset(samples, plan)
    assert plan.rows == [[2, 1], [0]]
    row = ds[0]
    assert row == {"input_ids": [6, 7, 8, 9, 4, 5], "labels": [IGNORE_INDEX, 7, 8, 9, IGNORE_INDEX, 5],
                   "position_ids": [0, 1, 2, 3, 0, 1], "seq_lens": [4, 2]}
    batch = PaddingFreeCollator()([ds[0], ds[1]])
    assert batch["input_ids"].tolist() == [[6, 7, 8, 9, 4, 5, 1, 2, 3]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 0, 1, 2]]
    assert batch["cu_seq_lens_q"].tolist() == [0, 4, 6, 9] and batch["cu_seq_lens_q"].dtype == torch.int32
    assert batch["max_length_q"] == 4 and "attention_mask" not in batch
    # no label crosses a boundary: each sample's first label is ignored
    assert [batch["labels"][0, i].item() for i in (0, 4, 6)] == [IGNORE_INDEX] * 3


def test_bad_arguments():
    import pytest

    for kw, msg in [({"max_length": 0}, "max_length"), ({"strategy": "ffd"}, "strategy"), ({"overlong": "x"}, "overlong")]:
        with pytest.raises(ValueError, match=msg):
            pack([1], **kw)
    with pytest.raises(ValueError, match="sample 1"):
        pack([1, 0])


def test_plan_and_samples_must_agree():
    import pytest

    with pytest.raises(ValueError, match="sample 0: plan expects 3 tokens"):
        PackedDataset([{"input_ids": [1, 2], "labels": [1, 2]}], pack([3], 8))
    with pytest.raises(ValueError, match="must be an integer"):
        pack([2.5], 8)
