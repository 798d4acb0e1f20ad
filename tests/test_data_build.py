"""hermes3 data build: deterministic files, Table 1 proportions, disjoint eval, preferences."""

import hashlib
import json

import pandas as pd
import pytest

from hermes3.core.config import ConfigError, load_config
from hermes3.data.build import DataConfig, build, load_eval, load_sft
from hermes3.data.checkers import check
from hermes3.data.mixture import TABLE1, TABLE1_NAMES
from hermes3.data.synthetic import CATEGORIES

SMOKE = "configs/data/smoke.yaml"


def _build(tmp_path, name, *over):
    cfg = load_config(DataConfig, SMOKE, [f"out_dir={tmp_path / name}", *over])
    return cfg, build(cfg, progress=False)


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    cfg, manifest = _build(tmp, "a")
    return tmp, cfg, manifest


def test_same_seed_same_bytes_other_seed_other_data(smoke, tmp_path):
    tmp, cfg, _ = smoke
    _build(tmp_path, "b")
    a, b = _digest(cfg.output()), _digest(tmp_path / "b")
    assert a == b and "sft.jsonl" in a and "tokenizer/tokenizer.json" in a
    _build(tmp_path, "c", "seed=1")
    assert _digest(tmp_path / "c")["sft.jsonl"] != a["sft.jsonl"]


def test_proportions_within_one_point_and_stats_recomputed(smoke):
    _, cfg, manifest = smoke
    sft = load_sft(cfg.output())
    total = sum(r["tokens"] for r in sft)
    assert total == manifest["sft_tokens"] and abs(total - cfg.total_tokens) / cfg.total_tokens < 0.02
    stats = pd.read_csv(cfg.output() / "table1.csv")
    for cat, (pct, _) in TABLE1.items():
        mine = sum(r["tokens"] for r in sft if r["category"] == cat)
        row = stats[stats.category == TABLE1_NAMES[cat]].iloc[0]
        assert abs(100 * mine / total - pct) <= 1.0
        assert row["ours_tokens"] == mine and row["ours_%"] == round(100 * mine / total, 2)
    out = sum(r["output_tokens"] for r in sft)
    assert stats.iloc[-1]["ours_output_%"] == round(100 * out / total, 1)


def test_token_counts_are_exact(smoke):
    from transformers import AutoTokenizer

    from hermes3.format.masking import tokenize_and_mask

    _, cfg, _ = smoke
    tok = AutoTokenizer.from_pretrained(cfg.output() / "tokenizer")
    for r in load_sft(cfg.output())[:50]:
        ex = tokenize_and_mask(r, tok)
        assert (len(ex["input_ids"]), ex["num_trained"]) == (r["tokens"], r["output_tokens"])


def test_eval_items_are_held_out_and_checkable(smoke):
    """Two splits per category, disjoint from training and from each other, every item checkable,
    its overlap flags those of decontam.overlaps, and the manifest's counts theirs."""
    from hermes3.data.build import SPLITS
    from hermes3.data.decontam import contamination, overlaps

    _, cfg, manifest = smoke
    sft = load_sft(cfg.output())
    train = {json.dumps(r["messages"][:-1], sort_keys=True) for r in sft}
    prompts = {}
    for split in SPLITS:
        every = load_eval(cfg.output(), split=split)
        for cat in CATEGORIES:
            items = load_eval(cfg.output(), cat, split=split)
            assert len(items) == cfg.eval_per_category == manifest["eval_items"][split][cat]
            for it in items:
                assert it["split"] == split and it["id"].startswith(f"{cat}-{split}-")
                assert json.dumps(it["prompt"], sort_keys=True) not in train
                assert check(it["check"], it["reference"]) == (True, "ok")
        prompts[split] = {json.dumps([it["prompt"], it["tools"]], sort_keys=True) for it in every}
        assert [it["overlap"] for it in every] == overlaps(sft, every)
        assert manifest["decontamination"][split] == contamination(sft, every)
    assert not prompts["validation"] & prompts["test"]
    with pytest.raises(ValueError, match="split must be one of validation, test"):
        load_eval(cfg.output(), split="train")


def test_preference_pairs(smoke):
    _, cfg, manifest = smoke
    prefs = [json.loads(x) for x in (cfg.output() / "preferences.jsonl").read_text().splitlines()]
    synth = [p for p in prefs if p["source"] == "synthetic"]
    assert len(synth) == cfg.preferences_synthetic and sum(p["source"] == "hh_rlhf" for p in prefs) == cfg.preferences_real
    assert {p["kind"] for p in synth} >= {"wrong_answer", "broken_format", "refusal", "ignore_system"}
    from hermes3.format.chat import assistant_text

    for p in synth:
        assert p["chosen"] != p["rejected"] and p["prompt"][-1]["role"] in ("user", "tool")
        # the pair's own task checker: the chosen answer passes it, the corrupted one fails
        assert check(p["check"], assistant_text(p["chosen"][0]))[0] is True, p
        assert check(p["check"], assistant_text(p["rejected"][0]))[0] is False, p
    # every category gets more than one kind (the kinds rotate within a category)
    assert all(len({p["kind"] for p in synth if p["category"] == c}) > 1 for c in {p["category"] for p in synth})
    # A rejected tool call is a structured call (its <tool_call> is then the tag token, as the chosen
    # call's), with the same functions and one wrong argument: never the call as escaped text.
    calls = [p for p in synth if "tool_calls" in p["chosen"][0]]
    assert {p["kind"] for p in calls} <= {"wrong_answer", "refusal"} and calls  # a refusal stays text
    for p in (p for p in calls if p["kind"] == "wrong_answer"):
        good, bad = p["chosen"][0]["tool_calls"], p["rejected"][0].get("tool_calls")
        assert bad and not p["rejected"][0].get("content"), p
        assert [c["function"]["name"] for c in bad] == [c["function"]["name"] for c in good]
        assert [c["function"]["arguments"] for c in bad] != [c["function"]["arguments"] for c in good]


def test_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        load_config(DataConfig, SMOKE, ["bogus=1"])
    with pytest.raises(ConfigError, match="filters.min_tokens: expected int"):
        load_config(DataConfig, SMOKE, ["filters.min_tokens=abc"])
    cfg = load_config(DataConfig, SMOKE, ["filters.min_tokens=8"])
    assert cfg.filters.min_tokens == 8 and cfg.filters.source_ranks["synthetic"] == 0  # nested defaults kept


def test_dotted_override_of_a_dict_field_changes_one_key():
    """``shares.tool_use=75`` once replaced the YAML's whole ``shares`` (a 100% tool-use build)."""
    demo = "configs/data/demo.yaml"
    yaml_shares = load_config(DataConfig, demo).shares
    cfg = load_config(DataConfig, demo, ["shares.tool_use=75"])
    assert cfg.shares == {**yaml_shares, "tool_use": 75}
    assert len(yaml_shares) == 8
    assert load_config(DataConfig, demo, ["shares={general: 1}"]).shares == {"general": 1}  # a whole value replaces


def test_no_sft_target_comes_from_a_preference_pair(smoke):
    """HH-RLHF "chosen" answers are only the less harmful of two: DPO pairs, never SFT targets."""
    from hermes3.core.paths import REPO as ROOT

    _, cfg, manifest = smoke
    hh = ROOT / "data" / "sources" / "preference_hh_rlhf_harmless" / "harmless-base_test.jsonl"
    chosen = set()
    for line in hh.read_text().splitlines():
        for turn in json.loads(line)["chosen"].split("\n\nAssistant:")[1:]:  # the transcript format, by hand
            answer = turn.split("\n\nHuman:")[0].strip()
            if len(answer) >= 30:  # long enough not to coincide with another source by chance
                chosen.add(answer)
    assert "You could just say it was an accident." in chosen  # record 145 of the test split
    sft = load_sft(cfg.output())
    targets = {m["content"].strip() for r in sft for m in r["messages"] if m["role"] == "assistant" and m.get("content")}
    assert len(chosen) > 1000 and not chosen & targets
    assert "hh_rlhf" not in {r["source"] for r in sft}
    assert manifest["stages"] == {"sft": ["synthetic", "glaive", "gsm8k", "hermes_fc", "sharegpt"],
                                  "dpo": ["synthetic", "hh_rlhf"]}


def test_preference_sources_cannot_feed_sft(tmp_path):
    with pytest.raises(ValueError, match=r"real_sources: 'hh_rlhf' is a preference source and feeds DPO only"):
        _build(tmp_path, "x", "real_sources.general=[hh_rlhf, sharegpt]")
