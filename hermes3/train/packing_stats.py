"""Packing efficiency on real length distributions, hermes3 vs peers (report Fig. 3: 96%).

Used by ``notebooks/02_packing_efficiency.ipynb`` and ``benchmarks/packing.py``, so the
notebook's table and the benchmark's are the same computation.

Real sets (``REAL_SETS``) are read from ``data/sources`` (embedded, permissive licenses)
or ``../shared/data`` (also Chatbot Arena chats, which are not redistributed here);
missing ones are skipped and reported, not silently left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hermes3.core.paths import REPO
from hermes3.data.loaders import (
    convert_each,
    from_hh_rlhf,
    from_openai,
    from_prompt_response,
    load_conversations,
    read_records,
)
from hermes3.format.masking import tokenize_and_mask
from hermes3.train.packing import pack

SEARCH_DIRS = (REPO / "data" / "sources", REPO.parent / "shared" / "data")
REPORT_EFFICIENCY = 0.96  # report §4.1: "only 4% of tokens are the padding token"


def _find(rel: str) -> Path | None:
    return next((d / rel for d in SEARCH_DIRS if (d / rel).exists()), None)


def _arena(p: Path) -> list[dict]:
    # Both sides of each battle; keep role and content (the records carry token counts too).
    records = [{"messages": [{"role": m["role"], "content": m["content"]} for m in r[side]]}
               for r in read_records(p) for side in ("conversation_a", "conversation_b")]
    return convert_each(from_openai, records)


REAL_SETS: dict[str, tuple[str, Callable[[Path], list[dict]]]] = {
    "arena_chats": ("arena_real_chats/arena_refusal_labeled_100.jsonl", _arena),
    "glaive_toolcalls": ("toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json",
                         lambda p: load_conversations(p)[0]),
    "hh_rlhf_chosen": ("preference_hh_rlhf_harmless/harmless-base_test.jsonl",
                       lambda p: convert_each(from_hh_rlhf, [r["chosen"] for r in read_records(p)])),
    "gsm8k_train": ("gsm8k/train.jsonl", lambda p: convert_each(lambda r: from_prompt_response(r["question"], r["answer"]), read_records(p))),
    "sharegpt_dummy": ("sharegpt_fastchat_dummy/dummy_conversation.json", lambda p: load_conversations(p)[0]),
}


def packing_tokenizer(llama3: bool = True):
    """``(tokenizer, name)``: the Llama 3 tokenizer (the report's) when its ``tokenizer.model`` is
    found and ``llama3``, else a byte-level BPE trained on the embedded glaive tool calls."""
    from hermes3.format.chat import render
    from hermes3.format.tokenizer import build_tokenizer, load_tokenizer

    path = _find("tokenizer_llama3/tokenizer.model")
    if llama3 and path is not None:
        return load_tokenizer(path), "Llama 3"
    glaive = load_conversations(_find("toolcall_glaive_llamafactory/glaive_toolcall_en_demo.json"))[0]
    size = 4096 if llama3 else 2048
    return build_tokenizer([render(c["messages"], c["tools"]) for c in glaive], vocab_size=size), f"BPE-{size} (trained on glaive)"


def real_lengths(tokenizer, names: list[str] | None = None, limit: int | None = None) -> tuple[dict, dict]:
    """Token lengths of the rendered conversations of each real set.

    Returns ``({name: [lengths]}, {name: note})`` where the notes say which sets are
    missing and how many records failed validation (skipped, e.g. empty turns).
    """
    out, notes = {}, {}
    for name in names or list(REAL_SETS):
        if name not in REAL_SETS:
            raise ValueError(f"unknown length set {name!r}: expected one of {', '.join(REAL_SETS)}")
        rel, convert = REAL_SETS[name]
        path = _find(rel)
        if path is None:
            notes[name] = f"missing ({rel} not found)"
            continue
        convs = convert(path)[:limit]
        ok = [c for c in convs if c is not None]
        if len(ok) < len(convs):
            notes[name] = f"{len(convs) - len(ok)} of {len(convs)} records skipped (invalid conversation)"
        out[name] = [len(tokenize_and_mask(c, tokenizer)["input_ids"]) for c in ok]
    return out, notes


def trl_bfd(lengths: list[int], max_length: int, whole_table: bool = False) -> dict:
    """TRL's ``pack_dataset(strategy="bfd")`` on the same lengths (dummy int8 token ids).

    ``whole_table=False`` runs it as users do (``datasets.map``, 1000-row batches);
    ``True`` calls its packer once on the whole table (its best case, for timing).
    TRL truncates over-long samples; its efficiency counts the kept (truncated) tokens.
    """
    import numpy as np
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    col = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(int(offsets[-1]), dtype=np.int8)))
    t0 = time.perf_counter()
    if whole_table:
        from trl.data_utils import _pack_bfd

        seq_lengths = _pack_bfd(pa.table({"input_ids": col}), max_length).column("seq_lengths").to_pylist()
    else:
        import datasets
        from trl import pack_dataset

        ds = datasets.Dataset(pa.table({"input_ids": col}))
        seq_lengths = pack_dataset(ds, max_length, strategy="bfd")["seq_lengths"]
    seconds = time.perf_counter() - t0
    tokens = sum(sum(r) for r in seq_lengths)
    return {"rows": len(seq_lengths), "efficiency": tokens / (len(seq_lengths) * max_length), "seconds": seconds}


def compare_packers(lengths: list[int], max_length: int = 8192, with_trl: bool = True) -> list[dict]:
    """One row per packer: hermes3 bfd (whole dataset), naive greedy in order, TRL bfd."""
    total = sum(n for n in lengths if n <= max_length)
    best = total / (-(-total // max_length) * max_length) if total else 0.0  # ceil(total/L) rows
    rows = []
    for name, strategy in (("hermes3 bfd", "bfd"), ("greedy (in order)", "greedy")):
        t0 = time.perf_counter()
        plan = pack(lengths, max_length, strategy=strategy)
        rows.append({"packer": name, "rows": plan.num_rows, "efficiency": plan.efficiency,
                     "seconds": time.perf_counter() - t0, "dropped": len(plan.dropped), "bound": best})
    if with_trl:
        over = sum(n > max_length for n in lengths)
        rows.append({"packer": "TRL bfd (datasets.map)", **trl_bfd(lengths, max_length), "dropped": 0,
                     "truncated": over, "bound": best})
    return rows
