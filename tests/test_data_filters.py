"""The five filters on real records and on hand-made malformed ones."""

import json
import re

import pytest

from conftest import SHARED, need
from hermes3.data.filters import FilterConfig, apply_filters, is_refusal


def _arena():
    """Both sides of each battle as a record, with (question_id, side, is_refusal label)."""
    recs, meta = [], []
    for line in need(SHARED / "arena_real_chats" / "arena_refusal_labeled_100.jsonl").read_text().splitlines():
        r = json.loads(line)
        for side, model in (("conversation_a", r["model_a"]), ("conversation_b", r["model_b"])):
            recs.append({"messages": [{"role": m["role"], "content": m["content"]} for m in r[side]], "source": model})
            meta.append((r["question_id"], side, r["is_refusal"]))
    return recs, meta


# Read by hand: the four sides of the file whose assistant turn opens with a refusal.
ARENA_REFUSALS = {
    ("f3c70c9a559543619b074303d99b2a4d", "conversation_b"),  # phi-3-mini: "I'm sorry, but I can't fulfill this request."
    ("3604356dad76483ab37d401392f11383", "conversation_a"),  # claude-3-haiku: "I apologize, but I am unable to engage ..."
    ("ec5ae96a238b454cb7eb5f40d7c438d8", "conversation_b"),  # phi-3-small: "I'm sorry, but I can't assist with that."
    ("3e60771a5dd94694b9c9f4126844c0c8", "conversation_a"),  # yi-1.5-34b: "I'm sorry, but I can't provide real-time ..."
}


def test_real_refusals_removed_and_apologies_kept():
    recs, meta = _arena()
    kept, report = apply_filters(recs, FilterConfig(min_tokens=1, max_tokens=100_000, dedup=False))
    removed = [meta[i][:2] for i, r in enumerate(recs) if r not in kept]
    assert set(removed) == ARENA_REFUSALS and len(removed) == 4
    assert report.removed["refusals"] == {"refusal": 4} and report.kept == len(recs) - 4
    # The file's own labels (is_refusal, per battle): no side of the 89 battles labelled
    # False is removed. (Recall is partial: some labelled battles refuse late or obliquely.)
    labelled = {qid for qid, _, lab in meta if lab}
    assert len(labelled) == 11 and all(qid in labelled for qid, _ in removed)
    # apologies that are not refusals stay
    assert not is_refusal("I apologize, but I'm not sure what you are asking for with just the number \"2\".")
    assert not is_refusal("I apologize, but I don't have any specific document to reference. However, I can offer")


def _raw_hh(text):
    """HH-RLHF transcript split into turns as written, empty turns kept (not our loader)."""
    parts = re.split(r"\n\n(Human|Assistant):", text)
    assert parts[0] == ""
    return {"messages": [{"role": {"Human": "user", "Assistant": "assistant"}[who], "content": body}
                         for who, body in zip(parts[1::2], parts[2::2])]}


def test_hh_rlhf_refusal_empty_turn_and_role_order():
    rows = [json.loads(x) for x in need(SHARED / "preference_hh_rlhf_harmless" / "harmless-base_test.jsonl").read_text().splitlines()]
    assert is_refusal("Oh, I'm sorry I can't do that. It would be against our Terms of Service.")
    assert is_refusal("I\u2019m sorry, I can\u2019t comment on that.")
    recs = [_raw_hh(r["chosen"]) for r in rows]
    # Expected counts, by rules written here: a turn that is blank; else roles that do not
    # alternate user, assistant, user, ...
    empty = [r for r in recs if any(not m["content"].strip() for m in r["messages"])]
    rest = [r for r in recs if r not in empty]
    out_of_order = [r for r in rest if any(m["role"] != ("user", "assistant")[i % 2] for i, m in enumerate(r["messages"]))]
    assert (len(recs), len(empty), len(out_of_order)) == (2312, 4, 8)
    kept, report = apply_filters(recs, FilterConfig(min_tokens=1, dedup=False))
    assert report.removed["empty_turns"] == {"empty turn": len(empty)}
    assert report.removed["malformed"] == {"broken turn structure (role)": len(out_of_order)}
    assert report.removed["refusals"]["refusal"] >= 30 and not report.removed["length"]


U = {"role": "user", "content": "Question?"}
A = {"role": "assistant", "content": "A fine and complete answer."}
BAD = [
    ({"messages": None}, "empty_turns", "missing messages"),
    ({"messages": []}, "empty_turns", "missing messages"),
    ({}, "empty_turns", "missing messages"),
    ({"messages": [U, {"role": "assistant", "content": ""}]}, "empty_turns", "empty turn"),
    ({"messages": [U, {"role": "assistant", "content": "   "}]}, "empty_turns", "empty turn"),
    ({"messages": [U, {"role": "assistant"}]}, "empty_turns", "empty turn"),
    ({"messages": [{"role": "user", "content": ""}, A]}, "empty_turns", "empty turn"),
    ({"messages": [U]}, "empty_turns", "no assistant turn"),
    ({"messages": [U, "oops"]}, "empty_turns", "missing turn"),
    ({"messages": [U, A, A]}, "malformed", "broken turn structure (role)"),
    ({"messages": [U, {"role": "wizard", "content": "x"}, A]}, "malformed", "broken turn structure (role)"),
    ({"messages": [A, {"role": "system", "content": "late"}, U, A]}, "malformed", "broken turn structure (role)"),
    ({"messages": [U, {"role": "tool", "content": "result"}, A]}, "malformed", "broken turn structure (role)"),
    ({"messages": [U, {"role": "assistant", "content": "<SCRATCHPAD>thinking"}]}, "malformed", "unbalanced tags"),
    ({"messages": [U, {"role": "assistant", "content": "</PLAN> done"}]}, "malformed", "unbalanced tags"),
    ({"messages": [U, {"role": "assistant", "content": "<tool_call>{'name': </tool_call>"}]}, "malformed",
     "invalid tool-call JSON"),
    ({"messages": [U, {"role": "assistant", "content": "<tool_call>not json at all</tool_call>"}]}, "malformed",
     "invalid tool-call JSON"),
    ({"messages": [U, A], "tools": "bad"}, "malformed", "broken turn structure (tools)"),
    ({"messages": [U, {"role": "assistant", "content": "I'm sorry, but I can't help with that."}]}, "refusals", "refusal"),
    ({"messages": [U, {"role": "assistant", "content": "As an AI language model, I cannot do that."}]}, "refusals",
     "refusal"),
    ({"messages": [U, {"role": "assistant", "content": "I must respectfully decline."}]}, "refusals", "refusal"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}, "length",
     "shorter than 20 tokens"),
    ({"messages": [U, {"role": "assistant", "content": "word " * 20000}]}, "length", "longer than 8192 tokens"),
    ("not a dict", "empty_turns", "not a record"),
]


def test_hand_made_bad_records_are_counted_by_reason():
    assert len(BAD) >= 20
    recs = [r for r, _, _ in BAD] + [{"messages": [U, A]}]
    kept, report = apply_filters(recs, FilterConfig(min_tokens=20))
    assert kept == [{"messages": [U, A]}] and report.kept == 1 and report.read == len(BAD) + 1
    expected = {}
    for _, f, reason in BAD:
        expected.setdefault(f, {}).setdefault(reason, 0)
        expected[f][reason] += 1
    assert {f: dict(c) for f, c in report.removed.items() if c} == expected


@pytest.mark.parametrize("ranks,winner", [({"strong": 0, "weak": 1}, "strong"), ({"strong": 1, "weak": 0}, "weak")])
def test_source_preference_keeps_the_best_ranked_duplicate(ranks, winner):
    a = {"messages": [U, A], "source": "weak"}
    b = {"messages": [{"role": "user", "content": "  question? "}, A], "source": "strong"}
    kept, report = apply_filters([a, b], FilterConfig(min_tokens=1, source_ranks=ranks))
    assert [r["source"] for r in kept] == [winner]
    assert report.removed["source_dedup"]["duplicate of a higher-ranked source"] == 1
