"""``hermes3 data build``: sources -> filters -> mixture -> SFT set, preference pairs,
held-out evaluation items, a tokenizer and the statistics. Deterministic for a seed:
the same config writes byte-identical files.

Layout of ``out_dir``::

    sft.jsonl            the SFT mixture (messages, tools, category, source, tokens, output_tokens)
    preferences.jsonl    DPO pairs (prompt, chosen, rejected, kind, source; synthetic ones their check)
    eval/<split>/<category>.jsonl  held-out synthetic items (prompt, reference, check, overlap),
                         none seen in training: ``validation`` (every choice of the recipe is
                         made on it) and ``test`` (the findings are reported on it)
    table1.csv           Table 1 side by side (report vs ours)
    filters.csv          what each filter removed, by reason
    tokenizer/           the byte-level BPE trained on this data (Hermes tokens included)
    manifest.json        the config and the counts

Real sources come from ``data/sources`` (permissive licenses only). Synthetic tasks fill
each category up to its Table 1 share; ``real_fraction`` says how much of a category's
stream is drawn from real sources while they last. Duplicate prompts among the real
sources keep the best-ranked source; synthetic tasks may repeat (a template seen twice is
an extra epoch), but held-out evaluation prompts never occur in training.

Which source feeds which stage (also in ``manifest.json`` under ``stages``): SFT targets
come from the synthetic tasks (checked by program) and the real conversation sources in
``REAL_LOADERS``; preference pairs (``PREFERENCE_SOURCES``, HH-RLHF) feed DPO only. An
HH-RLHF "chosen" answer is only the less harmful of two (one harmless-base pair answers
a question about pushing someone off a mountain with "You could just say it was an
accident."), so it is never an SFT target.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from hermes3.core.config import to_dict
from hermes3.core.errors import Hermes3Error
from hermes3.core.paths import REPO, resolve, runs
from hermes3.data.corrupt import corruptions
from hermes3.data.decontam import NGRAM, overlaps
from hermes3.data.evolve import evolve
from hermes3.data.filters import FilterConfig, FilterReport, apply_filters, empty_turns, length, malformed, refusals
from hermes3.data.loaders import convert_each, from_hh_rlhf, from_prompt_response, load_conversations, read_records
from hermes3.data.mixture import sample_by_tokens, table1, targets_from_shares
from hermes3.data.synthetic import CATEGORIES, Task, generate
from hermes3.format.chat import ConversationError, render
from hermes3.format.masking import tokenize_and_mask
from hermes3.format.parsing import parse_tool_calls

SOURCES = REPO / "data" / "sources"
# The held-out splits: every choice (LR, epoch, DPO LR, windows) is made on validation; findings
# are reported on test, which no choice sees.
SPLITS = ("validation", "test")
# How far from its token target a category may end (either side, half each), as a share of the
# budget: a smaller slack keeps every category's share, general's above all, closer to Table 1.
SLACK = 0.002


@dataclass
class DataConfig:
    """The data stage: what to mix, how much, and where to write it."""

    name: str = field(default="demo", metadata={"help": "name of this build (output folder runs/data/<name>)"})
    seed: int = field(default=0, metadata={"help": "seeds sources order, synthetic tasks, evolution and sampling", "ge": 0})
    total_tokens: int = field(default=250_000, metadata={"help": "token budget of the SFT mixture", "ge": 1})
    shares: dict = field(default_factory=dict, metadata={"help": "category -> percent; empty = Table 1 of the report"})
    real_fraction: dict = field(default_factory=lambda: {"general": 0.3, "math": 0.2, "tool_use": 0.1}, metadata={
        "help": "category -> fraction of its stream drawn from real sources while they last"})
    real_sources: dict = field(default_factory=lambda: {
        "general": ["sharegpt"], "math": ["gsm8k"], "tool_use": ["glaive", "hermes_fc"]},
        metadata={"help": "category -> real sources mixed into it (see REAL_LOADERS; preference sources feed DPO only)"})
    evol_fraction: float = field(default=0.3, metadata={"help": "share of synthetic tasks deepened by evolve()", "ge": 0, "le": 1})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary size of the trained tokenizer (bytes and Hermes tokens: >= 300)",
                                                   "ge": 300})
    tokenizer_chars: int = field(default=3_000_000, metadata={"help": "characters of text the tokenizer trains on", "ge": 1})
    preferences_synthetic: int = field(default=800, metadata={"help": "synthetic preference pairs", "ge": 0})
    preferences_real: int = field(default=300, metadata={"help": "HH-RLHF preference pairs", "ge": 0})
    eval_per_category: int = field(default=60, metadata={
        "help": "held-out evaluation items per category in each split, validation and test (fewer where a category's "
                "templates run out of unseen prompts: the manifest's eval_items; 0: a mixture only, "
                "as configs/data/table1.yaml)", "ge": 0})
    filters: FilterConfig = field(default_factory=lambda: FilterConfig(
        min_tokens=16, max_tokens=2048, source_ranks={"synthetic": 0, "hermes_fc": 1, "glaive": 2, "gsm8k": 2,
                                                      "sharegpt": 3}),
        metadata={"help": "the five filters (thresholds, source ranks)"})
    out_dir: str = field(default="", metadata={"help": "output folder; empty = runs/data/<name>"})
    source: str = field(default="", metadata={
        "help": "a published SFT dataset used as the mixture as it is (a Hub id or a file), read by hermes3.data.loaders "
                "when SFT loads it; nothing is built (full scale: NousResearch/Hermes-3-Dataset)"})
    preferences: str = field(default="", metadata={
        "help": "DPO's preference pairs when `source` is set (a prompt/chosen/rejected JSONL); empty: the build's own"})

    def output(self) -> Path:
        return resolve(self.out_dir) if self.out_dir else runs("data", self.name)

    def validate(self) -> None:
        """Categories, fractions and source names inside the dict-valued fields."""
        from hermes3.core.config import ConfigError

        for key in ("shares", "real_fraction", "real_sources"):
            unknown = [c for c in getattr(self, key) if c not in CATEGORIES]
            if unknown:
                raise ConfigError(f"{key}: unknown category {unknown[0]!r}; known: {', '.join(CATEGORIES)}", key)
        for cat, v in self.shares.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"shares.{cat} must be a percentage >= 0, got {v!r}", "shares")
        if self.shares and not sum(self.shares.values()) > 0:
            raise ConfigError("shares must not all be 0", "shares")
        for cat, v in self.real_fraction.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                raise ConfigError(f"real_fraction.{cat} must be in [0, 1], got {v!r}", "real_fraction")
        for cat, srcs in self.real_sources.items():
            if not isinstance(srcs, list):
                raise ConfigError(f"real_sources.{cat} must be a list of source names, got {srcs!r}", "real_sources")
            prefs_only = [s for s in srcs if s in PREFERENCE_SOURCES]
            if prefs_only:
                raise ConfigError(f"real_sources: {prefs_only[0]!r} is a preference source and feeds DPO only (a "
                                  f"'chosen' answer is only the better of two, not a vetted SFT target); SFT sources: "
                                  f"{', '.join(sorted(REAL_LOADERS))}", "real_sources")
            unknown = [s for s in srcs if s not in REAL_LOADERS]
            if unknown:
                raise ConfigError(f"real_sources.{cat}: unknown source {unknown[0]!r}; known: "
                                  f"{', '.join(sorted(REAL_LOADERS))}", "real_sources")


# Real conversations whose assistant turns may become SFT targets.
REAL_LOADERS = {
    "sharegpt": lambda: load_conversations(SOURCES / "sharegpt_fastchat_dummy/dummy_conversation.json", on_error="skip")[0],
    "gsm8k": lambda: convert_each(lambda r: from_prompt_response(r["question"], r["answer"]), read_records(SOURCES / "gsm8k/train.jsonl")),
    "glaive": lambda: load_conversations(SOURCES / "toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json", on_error="skip")[0],
    "hermes_fc": lambda: load_conversations(SOURCES / "hermes_function_calling/hermes_fc_v1_card_examples.jsonl", on_error="skip")[0],
}


# Preference pairs: DPO only. Their "chosen" side is a relative judgement, not a vetted answer.
PREFERENCE_SOURCES = {"hh_rlhf": SOURCES / "preference_hh_rlhf_harmless/harmless-base_test.jsonl"}


def _record(conv: dict | None, source: str) -> dict:
    if conv is None:
        return {"messages": None, "source": source}
    return {"messages": conv["messages"], "tools": conv.get("tools"), "source": source}


def _task_record(t: Task) -> dict:
    return {"messages": t.messages, "tools": t.tools, "source": "synthetic", "check": t.check, "meta": t.meta}


def _synthetic(category: str, rng: random.Random, evol_fraction: float) -> Iterator[Task]:
    while True:
        t = generate(category, rng)
        yield evolve(t, rng) if rng.random() < evol_fraction else t


def _prompt_key(messages: list[dict], tools) -> str:
    names = sorted(t.get("function", t)["name"] for t in tools) if tools else []
    return json.dumps([messages[:-1], names], sort_keys=True, ensure_ascii=False)


def _hh_pair(rec: dict) -> dict:
    """An HH-RLHF chosen/rejected pair as prompt + one assistant message each."""
    c, r = from_hh_rlhf(rec["chosen"])["messages"], from_hh_rlhf(rec["rejected"])["messages"]
    if c[:-1] != r[:-1] or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant" or c[-1] == r[-1]:
        raise ConversationError(None, "chosen/rejected", "the same prompt and two different final assistant turns")
    return {"prompt": c[:-1], "tools": None, "chosen": [c[-1]], "rejected": [r[-1]], "category": "steering",
            "kind": "human_preference", "source": "hh_rlhf"}


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _train_tokenizer(cfg: DataConfig, real: dict[str, list[dict]], rng: random.Random):
    from hermes3.format.tokenizer import build_tokenizer

    texts, size = [], 0
    synth = [_task_record(generate(c, rng)) for c in CATEGORIES for _ in range(200)]
    pool = [r for recs in real.values() for r in recs if r.get("messages")] + synth
    random.Random(cfg.seed).shuffle(pool)
    for r in pool:
        try:
            t = render(r["messages"], r.get("tools"))
        except ConversationError:
            continue
        texts.append(t)
        size += len(t)
        if size >= cfg.tokenizer_chars:
            break
    return build_tokenizer(texts, vocab_size=cfg.vocab_size)


def _heldout_items(cfg: DataConfig, sft: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """``{split: {category: items}}``: fresh draws whose prompts never occur in training, nor in
    the other split. Each category's stream gives its validation items first, then its test items,
    so the validation split is the held-out set every earlier choice of the recipe was made on and
    the test split is draws no choice ever saw. Every item carries its 13-gram ``overlap`` with the
    training mixture (``hermes3.data.decontam.overlaps``)."""
    seen = {_prompt_key(r["messages"], r.get("tools")) for r in sft}
    evals: dict[str, dict[str, list[dict]]] = {split: {} for split in SPLITS}
    for cat in CATEGORIES:
        erng, tries = random.Random(f"{cfg.seed}-eval-{cat}"), 0
        synth = _synthetic(cat, erng, cfg.evol_fraction)
        for split in SPLITS:
            items = evals[split][cat] = []
            while len(items) < cfg.eval_per_category and tries < 200 * len(SPLITS) * cfg.eval_per_category:
                tries += 1
                t = next(synth)
                key = _prompt_key(t.messages, t.tools)
                if key in seen:
                    continue
                seen.add(key)
                items.append({"id": f"{cat}-{split}-{len(items)}", "category": cat, "split": split, "prompt": t.prompt,
                              "tools": t.tools, "reference": t.reference, "check": t.check})
    every = [it for cats in evals.values() for items in cats.values() for it in items]
    for it, flags in zip(every, overlaps(sft, every, NGRAM)):
        it["overlap"] = flags
    return evals


def _overlap_counts(items: list[dict]) -> dict:
    """``hermes3.data.decontam.contamination``'s counts, from the flags stored in the items."""
    return {"items": len(items), "exact": sum(it["overlap"]["exact"] for it in items),
            "ngram": sum(it["overlap"]["prompt_ngram"] for it in items),
            "answer_ngram": sum(it["overlap"]["answer_ngram"] for it in items), "n": NGRAM}


def build(cfg: DataConfig, progress: bool = True) -> dict:
    """Run the data stage; returns the manifest (also written to ``out_dir``). The config and
    the output location are checked before any work; the folder appears only when complete."""
    from hermes3.core.config import check
    from hermes3.core.outputs import atomic_dir, check_writable

    check(cfg)
    out = check_writable(cfg.output(), "data build folder")
    rng = random.Random(cfg.seed)
    bar = tqdm(total=6, desc="data build", disable=not progress)
    wanted = sorted({s for srcs in cfg.real_sources.values() for s in srcs})
    prefs_only = [s for s in wanted if s in PREFERENCE_SOURCES]
    if prefs_only:
        raise ValueError(f"real_sources: {prefs_only[0]!r} is a preference source and feeds DPO only (a 'chosen' "
                         f"answer is only the better of two, not a vetted SFT target); SFT sources: {sorted(REAL_LOADERS)}")
    unknown = [s for s in wanted if s not in REAL_LOADERS]
    if unknown:
        raise ValueError(f"unknown real source {unknown[0]!r}; known: {sorted(REAL_LOADERS)}")
    real = {s: [_record(c, s) for c in REAL_LOADERS[s]()] for s in wanted}
    bar.update()
    tok = _train_tokenizer(cfg, real, random.Random(cfg.seed + 1))
    bar.update()

    counts: dict[int, tuple[dict, int, int]] = {}

    def count(rec: dict) -> tuple[int, int]:
        # Cached by object id; the record is kept in the cache so its id is never reused.
        hit = counts.get(id(rec))
        if hit is None:
            ex = tokenize_and_mask(rec, tok)
            hit = counts[id(rec)] = (rec, len(ex["input_ids"]), ex["num_trained"])
        return hit[1], hit[2]

    # Filters: the real pool all at once (dedup keeps the best-ranked source); the
    # synthetic stream record by record, counted in the same report.
    real_pool = [r for recs in real.values() for r in recs]
    kept_real, report = apply_filters(real_pool, cfg.filters, count_tokens=lambda r: count(r)[0])
    by_source: dict[str, list[dict]] = {}
    for r in kept_real:
        by_source.setdefault(r["source"], []).append(r)
    for recs in by_source.values():
        rng.shuffle(recs)
    synth_report = FilterReport()

    def stream(cat: str) -> Iterator[dict]:
        srng = random.Random(f"{cfg.seed}-{cat}")
        reals = [r for s in cfg.real_sources.get(cat, []) for r in by_source.get(s, [])]
        srng.shuffle(reals)
        frac = cfg.real_fraction.get(cat, 0.0)
        synth = _synthetic(cat, srng, cfg.evol_fraction)
        while True:
            if reals and srng.random() < frac:
                yield reals.pop()
                continue
            rec = _task_record(next(synth))
            reason = None
            for name, fn in (("empty_turns", empty_turns), ("malformed", malformed), ("refusals", refusals),
                             ("length", lambda r, c: length(r, c, lambda x: count(x)[0]))):
                reason = fn(rec, cfg.filters)
                if reason:
                    synth_report.removed[name][reason] += 1
                    break
            if not reason:
                yield rec

    targets = targets_from_shares(cfg.total_tokens, cfg.shares or None)
    unknown = [c for c in targets if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown category {unknown[0]!r} in shares; known: {list(CATEGORIES)}")
    sft = sample_by_tokens({c: stream(c) for c in targets}, targets, count, slack=SLACK * cfg.total_tokens)
    bar.update()

    evals = _heldout_items(cfg, sft)
    bar.update()

    # Preference pairs: chosen = the checked reference, rejected = a named corruption.
    prefs, prng = [], random.Random(f"{cfg.seed}-prefs")
    kinds = ["wrong_answer", "broken_format", "refusal", "ignore_system"]
    for k in range(cfg.preferences_synthetic):
        cat = CATEGORIES[k % len(CATEGORIES)]
        t = next(_synthetic(cat, prng, cfg.evol_fraction))
        bad = corruptions(t, prng)
        # Rotate the kinds within each category too (k % 4 alone gave a category always the same kind).
        want = kinds[(k // len(CATEGORIES) + k) % len(kinds)]
        kind = want if want in bad else "wrong_answer"
        rejected = {"role": "assistant", "content": bad[kind]}
        if "tool_calls" in t.messages[-1] and kind in ("wrong_answer", "broken_format"):
            # A rejected call must be what the model emits: structured tool_calls, whose <tool_call> is
            # the tag token. As text content the tag is escaped characters (content is never markup), so
            # the pair would teach "drop the tag" rather than "get the arguments right". Invalid JSON has
            # no structured form, so a call's broken format is a wrong argument too.
            kind = "wrong_answer"
            calls = parse_tool_calls(bad[kind]).tool_calls
            rejected = {"role": "assistant", "tool_calls": [{"type": "function", "function": c} for c in calls]}
        prefs.append({"prompt": t.prompt, "tools": t.tools, "chosen": [t.messages[-1]], "rejected": [rejected],
                      "category": cat, "kind": kind, "source": "synthetic", "check": t.check})
    hh = read_records(PREFERENCE_SOURCES["hh_rlhf"])
    prng.shuffle(hh)
    pref_skipped = 0
    for rec in hh:
        if sum(p["source"] == "hh_rlhf" for p in prefs) >= cfg.preferences_real:
            break
        try:
            prefs.append(_hh_pair(rec))
        except ConversationError:
            pref_skipped += 1
    bar.update()

    # Write everything (a fresh folder each time, so nothing stale survives).
    with atomic_dir(out, "data build folder") as tmp:  # readers never see a half-written build
        _write(tmp, cfg, sft, prefs, evals, report, synth_report, tok, pref_skipped)
    bar.update()
    bar.close()
    return json.loads((out / "manifest.json").read_text())


def _write(tmp: Path, cfg: DataConfig, sft, prefs, evals, report, synth_report, tok, pref_skipped) -> None:
    _write_jsonl(tmp / "sft.jsonl", ({"id": f"sft-{i}", **{k: r.get(k) for k in (
        "category", "source", "messages", "tools", "tokens", "output_tokens", "check")}} for i, r in enumerate(sft)))
    _write_jsonl(tmp / "preferences.jsonl", prefs)
    for split, cats in evals.items():
        for cat, items in cats.items():
            _write_jsonl(tmp / "eval" / split / f"{cat}.jsonl", items)
    stats = table1(sft)
    stats.to_csv(tmp / "table1.csv", index=False)
    frows = [{"stage": "real", **r} for r in report.rows()] + [{"stage": "synthetic", **r} for r in synth_report.rows()]
    with (tmp / "filters.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["stage", "filter", "reason", "removed"])
        w.writeheader()
        w.writerows(frows)
    tok.save_pretrained(tmp / "tokenizer")
    config = {k: v for k, v in to_dict(cfg).items() if k != "out_dir"}  # no paths: equal bytes anywhere
    manifest = {"config": config, "sft_conversations": len(sft), "sft_tokens": sum(r["tokens"] for r in sft),
                "sft_output_tokens": sum(r["output_tokens"] for r in sft), "preferences": len(prefs),
                "preferences_skipped": pref_skipped, "eval_items": {split: {c: len(v) for c, v in cats.items()} for split, cats in evals.items()},
                "decontamination": {split: _overlap_counts([it for v in cats.values() for it in v])
                                    for split, cats in evals.items()},
                "real_read": report.read, "real_kept": report.kept, "vocab_size": len(tok),
                "stages": {"sft": ["synthetic", *sorted({s for srcs in cfg.real_sources.values() for s in srcs})], "dpo": ["synthetic", *PREFERENCE_SOURCES]}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def load_sft(out_dir: str | Path) -> list[dict]:
    return read_records(Path(out_dir) / "sft.jsonl")


def load_eval(out_dir: str | Path, category: str | None = None, *, split: str) -> list[dict]:
    """The held-out items of one ``split`` (``validation`` or ``test``; see ``SPLITS``), of one
    ``category`` or all."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    folder = resolve(out_dir) / "eval" / split
    if not folder.is_dir() and (resolve(out_dir) / "eval").is_dir():
        raise Hermes3Error(f"{out_dir}: a data build without validation/test splits (eval/<category>.jsonl); "
                           "build it again with this version (hermes3 data build)")
    return [r for f in sorted(folder.glob("*.jsonl")) if category in (None, f.stem) for r in read_records(f)]
