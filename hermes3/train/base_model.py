"""A tiny base model to fine-tune, standing in for Llama 3.1 (which we cannot download).

``hermes3 base --size tiny-m`` pre-trains a Llama-architecture model (RMSNorm, SwiGLU,
RoPE, GQA) on the *plain text* of the demo corpora (message contents without any chat
markup, documents separated by ``<|endoftext|>``), so the SFT stage teaches the Hermes
format to a model that knows some language but not the format, as Hermes 3 did to Llama.

Three sizes stand in for 8B / 70B / 405B where a notebook needs three (Fig. 4 pre-trains all
three with the same token budget, so size is the only difference):

    tiny-s   hidden 128, 2 layers   ~1.4M parameters (vocab 4k, untied embeddings)
    tiny-m   hidden 256, 4 layers   ~5.0M
    tiny-l   hidden 320, 4 layers   ~7.1M (4 heads of 80)

tiny-l is wider, not deeper: at 300 pre-training steps a 6-layer, 320-wide model (~8M parameters,
embeddings tied then) ended no better than tiny-m on the tool-heavy demo mixture (held-out loss
0.927 vs 0.914), while 384 wide at 4 layers reached 0.854. 320 wide at 4 layers, not 384: tiny-l's
pre-training was a third of ``make demo``'s CPU time (660 s of ~1200 for the three bases on a
slow host), and 320 cuts its matrix work by ~30% while staying the largest of the three.

Steps and batch for ``make demo`` are set in ``hermes3.recipe.presets`` (why: updates, not only tokens,
decide whether a tiny base learns to copy a value from its context, which tool calls need).

Deterministic for a seed on one machine. The result is cached in ``runs/base/<size>-<key>``
(key = hash of the config and the data manifest; ``hermes3.core.paths`` gives the runs root) and reused; nothing large is committed.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hermes3.core.paths import resolve, runs

SIZES = {"tiny-s": dict(hidden_size=128, num_layers=2, num_heads=2), "tiny-m": dict(hidden_size=256, num_layers=4, num_heads=4),
         "tiny-l": dict(hidden_size=320, num_layers=4, num_heads=4)}


@dataclass
class BaseConfig:
    """Pre-training of the tiny base model."""

    size: str = field(default="tiny-m", metadata={"help": "tiny-s | tiny-m | tiny-l (stand-ins for 8B / 70B / 405B)",
                                                  "choices": tuple(SIZES)})
    data: str = field(default="runs/data/demo", metadata={"help": "a `hermes3 data build` folder (texts + tokenizer)"})
    seq_len: int = field(default=256, metadata={"help": "tokens per training row", "ge": 2})
    batch_size: int = field(default=16, metadata={"help": "rows per step", "ge": 1})
    steps: int = field(default=400, metadata={"help": "optimizer steps", "ge": 1})
    # 1e-3, not 3e-3: with untied embeddings 3e-3 ordered the sizes backwards (600 x 8 on the demo
    # data, held-out loss tiny-s 1.45 < tiny-m 1.59 < tiny-l 1.70); at 1e-3 they are 1.58 > 1.54 > 1.43.
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW, warmup then cosine)", "gt": 0})
    warmup: int = field(default=20, metadata={"help": "linear warmup steps (1: none)", "ge": 1})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay", "ge": 0})
    heldout: float = field(default=0.05, metadata={"help": "fraction of documents held out for the loss report",
                                                      "gt": 0, "lt": 1})
    seed: int = field(default=0, metadata={"help": "initialisation and data order", "ge": 0})
    bf16: str = field(default="auto", metadata={
        "help": "bf16 autocast: auto (a bf16 GPU, or a CPU with native bf16; fp32 on an AVX2-only CPU, where "
                "emulated bf16 is ~15x slower) | true | false", "choices": ("auto", "true", "false")})
    tie_embeddings: bool = field(default=False, metadata={
        "help": "one matrix for input and output embeddings (Llama 3.1 unties them; see hermes3.train.modeling)"})
    out_dir: str = field(default="", metadata={"help": "output folder; empty = runs/base/<size>-<key>"})


def plain_texts(data_dir: Path) -> list[str]:
    """Message contents of the SFT set (and tool results), no chat markup: one document
    per conversation."""
    docs = []
    for line in (data_dir / "sft.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        docs.append("\n\n".join(m["content"] for m in rec["messages"] if m.get("content")))
    return docs


def _key(cfg: BaseConfig) -> str:
    data = resolve(cfg.data)
    manifest = (data / "manifest.json").read_text()
    # The data folder's manifest identifies the data; its path (relative or absolute) does not.
    blob = json.dumps({k: v for k, v in asdict(cfg).items() if k not in ("out_dir", "data")}, sort_keys=True) + manifest
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _rows(ids: list[int], seq_len: int) -> torch.Tensor:
    n = len(ids) // (seq_len + 1)
    return torch.tensor(ids[: n * (seq_len + 1)]).view(n, seq_len + 1)


@torch.no_grad()
def corpus_loss(model, rows: torch.Tensor, batch_size: int = 16) -> float:
    """Next-token loss (nats per token) over held-out pre-training rows: every token is a target."""
    model.eval()
    total, count = 0.0, 0
    for k in range(0, len(rows), batch_size):
        b = rows[k:k + batch_size]
        logits = model(input_ids=b[:, :-1], use_cache=False).logits.float()
        total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1),
                                                   reduction="sum").item()
        count += b[:, 1:].numel()
    model.train()
    return total / count


def pretrain(cfg: BaseConfig, progress: bool = True) -> Path:
    """Train (or reuse) the base model; returns its folder (HF format + metrics.json)."""
    from transformers import AutoTokenizer

    from hermes3.core.config import ConfigError, check
    from hermes3.core.outputs import check_writable
    from hermes3.train.modeling import tiny_llama, use_bf16

    check(cfg)
    data = resolve(cfg.data)
    if not (data / "sft.jsonl").exists() or not (data / "manifest.json").exists():
        raise ConfigError(f"data {data}: no data build here (sft.jsonl, manifest.json); run `hermes3 data build` first",
                          "data")
    out = Path(cfg.out_dir) if cfg.out_dir else runs("base", f"{cfg.size}-{_key(cfg)}")
    if (out / "metrics.json").exists():
        return out
    check_writable(out, "base model folder")
    tok = AutoTokenizer.from_pretrained(data / "tokenizer")
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    docs = plain_texts(data)
    random.Random(cfg.seed).shuffle(docs)
    n_held = max(1, int(len(docs) * cfg.heldout))
    enc = lambda ds: [t for d in ds for t in tok(d, add_special_tokens=False)["input_ids"] + [eot]]  # noqa: E731
    train, held = _rows(enc(docs[n_held:]), cfg.seq_len), _rows(enc(docs[:n_held]), cfg.seq_len)
    model = tiny_llama(len(tok), seed=cfg.seed, tie_word_embeddings=cfg.tie_embeddings, **SIZES[cfg.size])
    model.config.bos_token_id, model.config.eos_token_id = None, eot
    model.config.pad_token_id = tok.pad_token_id
    before = corpus_loss(model, held)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    g = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(train), generator=g)
    t0, pos, losses = time.perf_counter(), 0, []
    dev_type = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = use_bf16(cfg.bf16)
    for _ in tqdm(range(cfg.steps), desc=f"pretrain {cfg.size}", disable=not progress):
        if pos + cfg.batch_size > len(order):
            order, pos = torch.randperm(len(train), generator=g), 0
        b = train[order[pos:pos + cfg.batch_size]]
        pos += cfg.batch_size
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=b[:, :-1], labels=b[:, :-1], use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    after = corpus_loss(model, held)
    metrics = {"size": cfg.size, "parameters": sum(p.numel() for p in model.parameters()),
               "heldout_loss_untrained": before, "heldout_loss_trained": after, "train_loss_last": losses[-1],
               "train_tokens": cfg.steps * cfg.batch_size * cfg.seq_len, "seconds": time.perf_counter() - t0, "bf16": bf16,
               "config": {k: v for k, v in asdict(cfg).items() if k != "out_dir"}}
    from hermes3.core.outputs import atomic_dir

    with atomic_dir(out, "base model folder") as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "train_loss.json").write_text(json.dumps(losses))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")  # written last: marks a complete model
    return out
