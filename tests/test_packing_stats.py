"""hermes3.train.packing_stats: the packer comparison table, TRL's row counts, real length sets."""

import pytest

from hermes3.train import packing_stats
from hermes3.train.packing_stats import compare_packers, real_lengths, trl_bfd


def test_compare_packers_by_hand():
    """[3, 2, 5, 6, 9] in rows of 8. 9 is over-long: we drop it (16 tokens left, bound 2 rows,
    100%); TRL truncates it to 8. hermes3: 6+2 | 5+3. Greedy in order: 3+2 | 5 | 6 (16/24).
    TRL BFD on [3, 2, 5, 6, 8]: 8 | 6+2 | 5+3 (24/24)."""
    rows = compare_packers([3, 2, 5, 6, 9], 8)
    assert all(r.pop("seconds") >= 0 for r in rows)
    assert rows == [
        {"packer": "hermes3 bfd", "rows": 2, "efficiency": 1.0, "dropped": 1, "bound": 1.0},
        {"packer": "greedy (in order)", "rows": 3, "efficiency": 16 / 24, "dropped": 1, "bound": 1.0},
        {"packer": "TRL bfd (datasets.map)", "rows": 3, "efficiency": 1.0, "dropped": 0, "truncated": 1, "bound": 1.0},
    ]
    assert [r["packer"] for r in compare_packers([3, 2], 8, with_trl=False)] == ["hermes3 bfd", "greedy (in order)"]


def test_trl_bfd_whole_table_and_per_batch():
    whole = trl_bfd([3, 2, 5, 6, 8], 8, whole_table=True)
    assert (whole["rows"], whole["efficiency"]) == (3, 1.0)
    # 1001 samples of 5 in rows of 8: one per row either way (no two fit), 5/8 full
    assert {k: v for k, v in trl_bfd([5] * 1001, 8).items() if k != "seconds"} == {"rows": 1001, "efficiency": 5 / 8}


def test_real_lengths_are_rendered_token_counts(tiny_tok):
    from hermes3.data.loaders import load_conversations
    from hermes3.format.chat import render

    sets, notes = real_lengths(tiny_tok, ["glaive_toolcalls", "sharegpt_dummy"], limit=3)
    assert notes == {} and list(sets) == ["glaive_toolcalls", "sharegpt_dummy"]
    for name, rel in (("glaive_toolcalls", "toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json"),
                      ("sharegpt_dummy", "sharegpt_fastchat_dummy/dummy_conversation.json")):
        convs = load_conversations(packing_stats.REPO / "data" / "sources" / rel)[0][:3]
        expect = [len(tiny_tok(render(c["messages"], c["tools"], bos_token=tiny_tok.bos_token or ""),
                               add_special_tokens=False)["input_ids"]) for c in convs]
        assert sets[name] == expect


def test_real_lengths_notes(tiny_tok, monkeypatch):
    # HH-RLHF's harmless test split: 2,312 transcripts, 4 with an empty turn and 8 whose roles
    # do not alternate (counted independently in test_data_filters.py). An empty turn renders (as
    # the official template renders it) and so is measured; only the 8 cannot be rendered.
    sets, notes = real_lengths(tiny_tok, ["hh_rlhf_chosen"])
    assert len(sets["hh_rlhf_chosen"]) == 2304 and notes == {
        "hh_rlhf_chosen": "8 of 2312 records skipped (invalid conversation)"}
    monkeypatch.setattr(packing_stats, "SEARCH_DIRS", ())
    sets, notes = real_lengths(tiny_tok, ["arena_chats"])
    assert sets == {} and notes == {"arena_chats": "missing (arena_real_chats/arena_refusal_labeled_100.jsonl not found)"}


def test_unknown_set_name():
    with pytest.raises(ValueError, match="unknown length set 'nope': expected one of arena_chats, glaive_toolcalls"):
        real_lengths(None, ["nope"])
