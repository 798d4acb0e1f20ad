"""DPO with a LoRA adapter (report §4.2), on packed, padding-free preference batches.

The report: a LoRA adapter (r 32, alpha 16, dropout 0.05, all linear layers) so the
reference and policy need not both sit in memory; RMSProp, peak LR 3e-6, 9 warmup steps
then linear decay; NEFTune alpha 5. Not stated, so TRL's defaults: beta 0.1, sigmoid loss.

Why not TRL's ``DPOTrainer`` (measured in DESIGN.md §3 / peers.md): it cannot pack
(``padding_free`` is disabled), its ``disable_dropout=True`` default silently zeroes the
LoRA dropout, and NEFTune noise also reaches its reference pass. Here:

* every chosen and rejected sequence of the step is concatenated into one padding-free row
  (``position_ids`` restart per sequence; our per-sample attention or flash-attn varlen keeps
  them apart) and per-sequence log-probabilities are summed per segment; equal to the padded
  computation (a test) and faster on real length distributions (a benchmark);
* the reference is the same weights with the adapter disabled (no second model object);
* NEFTune noise is added to the input embeddings of the *policy* pass only, scaled per
  sequence (alpha / sqrt(len x dim)), so packing does not change the noise a sample gets;
* LoRA dropout stays 0.05.

Logged like TRL: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
logps/chosen, logps/rejected (W&B and ``metrics.csv``). With a fresh adapter (B = 0) the
policy equals the reference: step-0 loss is ln 2 and every margin 0.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from hermes3.config import ConfigError
from hermes3.masking import IGNORE_INDEX
from hermes3.paths import resolve, resolve_if_local, runs

COMPLETE = "COMPLETE"


@dataclass
class DPOConfig:
    """The DPO stage (report §4.2; beta and loss are TRL's defaults, the report is silent)."""

    name: str = field(default="dpo", metadata={"help": "run name; output in runs/dpo/<name> unless output_dir is set"})
    model: str = field(default="runs/sft/tiny/final", metadata={"help": "the selected SFT checkpoint (a folder or Hub id)"})
    data: str = field(default="runs/data/demo", metadata={"help": "a data build (preferences.jsonl) or a preference JSONL"})
    output_dir: str = field(default="", metadata={"help": "adapter checkpoints, metrics.csv, merged/"})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank (report: 32)", "ge": 1})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (report: 16)", "ge": 1})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (report: 0.05); kept, not disabled",
                                                          "ge": 0, "lt": 1})
    target_modules: str = field(default="all-linear", metadata={"help": "LoRA targets (report: all linear layers)"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (not in the report: TRL default 0.1)", "gt": 0})
    lr: float = field(default=3e-6, metadata={"help": "peak learning rate (report: 3e-6)", "gt": 0})
    warmup_steps: int = field(default=9, metadata={"help": "warmup steps, then linear decay (report: 9)", "ge": 0})
    optimizer: str = field(default="rmsprop", metadata={"help": "report: RMSProp", "choices": ("rmsprop", "adamw_torch")})
    neftune_alpha: float = field(default=5.0, metadata={"help": "NEFTune noise alpha on the policy pass (report: 5; 0 = off)",
                                                            "ge": 0})
    pairs_per_step: int = field(default=16, metadata={"help": "preference pairs per optimizer step (not in the report)", "ge": 1})
    epochs: float = field(default=1, metadata={"help": "passes over the pairs (not in the report)", "ge": 0})
    max_steps: int = field(default=-1, metadata={"help": "stop after N steps (-1: all epochs)", "ge": -1})
    max_length: int = field(default=2048, metadata={"help": "drop pairs whose chosen or rejected sequence is longer", "ge": 1})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward (long sequences, large models)"})
    packed: bool = field(default=True, metadata={"help": "padding-free packed batches (False: padded, as TRL)"})
    heldout_fraction: float = field(default=0.1, metadata={"help": "pairs kept out for held-out reward accuracy", "ge": 0, "lt": 1})
    bf16: str = field(default="auto", metadata={"help": "auto | true | false", "choices": ("auto", "true", "false")})
    seed: int = field(default=0, metadata={"help": "adapter init, pair order, NEFTune noise", "ge": 0})
    logging_steps: int = field(default=1, metadata={"help": "log every N steps", "ge": 1})
    eval_steps: int = field(default=0, metadata={
        "help": "score the held-out pairs every N steps into heldout.csv (Fig. 5 on held-out pairs; 0: start and end only)",
        "ge": 0})
    wandb_mode: str = field(default="", metadata={"help": "offline | online | disabled; empty: $WANDB_MODE or offline",
                                                   "choices": ("", "offline", "online", "disabled")})

    def output(self) -> Path:
        return resolve(self.output_dir) if self.output_dir else runs("dpo", self.name)

    def validate(self) -> None:
        """Rules that tie fields together (per-field choices and ranges: ``config.check``)."""
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"set epochs > 0 or max_steps > 0 (got epochs={self.epochs:g}, "
                              f"max_steps={self.max_steps})", "epochs")


# ------------------------------------------------------------------------------- data


def load_pairs(data: str | Path) -> list[dict]:
    p = resolve(data)
    f = p / "preferences.jsonl" if p.is_dir() else p
    if not f.exists():
        raise ConfigError(f"{f} not found: point data at a `hermes3 data build` folder or a preference JSONL")
    from hermes3.errors import InputFileError
    from hermes3.loaders import read_records

    pairs = read_records(f)
    for i, r in enumerate(pairs):  # a conversations file given as pairs: one line, not a KeyError later
        bad = next((k for k in ("prompt", "chosen", "rejected") if not isinstance(r.get(k), list)), None)
        if bad:
            raise InputFileError(f, f"record {i}: field '{bad}': expected a list of messages (a preference pair "
                                    f"has prompt, chosen and rejected), got {str(r.get(bad))[:40]!r}")
    return pairs


def tokenize_pair(pair: dict, tokenizer) -> dict:
    """Chosen and rejected conversations tokenized; only the final assistant message (the
    completion) carries labels."""
    from hermes3.masking import tokenize_and_mask

    out = {}
    for side in ("chosen", "rejected"):
        ex = tokenize_and_mask({"messages": pair["prompt"] + pair[side], "tools": pair.get("tools")}, tokenizer,
                               train_on="last")
        out[side] = {"input_ids": ex["input_ids"], "labels": ex["labels"]}
    return out


def collate_packed(pairs: list[dict]) -> dict:
    """All sequences (chosen_0, rejected_0, chosen_1, ...) in one padding-free row.
    ``seq_index[t]`` says which sequence token ``t`` belongs to."""
    ids, labels, pos, seq, lens = [], [], [], [], []
    k = 0
    for p in pairs:
        for side in ("chosen", "rejected"):
            s = p[side]
            n = len(s["input_ids"])
            ids += s["input_ids"]
            labels += [IGNORE_INDEX] + s["labels"][1:]
            pos += range(n)
            seq += [k] * n
            lens.append(n)
            k += 1
    cu = torch.tensor([0] + lens).cumsum(0).to(torch.int32)
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([pos]),
            "seq_index": torch.tensor(seq), "num_sequences": k, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": max(lens), "max_length_k": max(lens)}


def collate_padded(pairs: list[dict], pad_id: int = 0) -> dict:
    """The same sequences right-padded into a [2 x pairs, longest] batch (TRL's layout)."""
    seqs = [p[side] for p in pairs for side in ("chosen", "rejected")]
    L = max(len(s["input_ids"]) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id)
    labels = torch.full((len(seqs), L), IGNORE_INDEX)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s["input_ids"])
        ids[i, :n] = torch.tensor(s["input_ids"])
        labels[i, 1:n] = torch.tensor(s["labels"][1:])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "num_sequences": len(seqs)}


# ---------------------------------------------------------------------- log-probs & loss


@contextlib.contextmanager
def neftune(model, alpha: float, position_ids: torch.Tensor | None, generator: torch.Generator | None = None):
    """NEFTune noise on the input embeddings inside this block only. Scale per sequence:
    alpha / sqrt(len x dim), the paper's formula with len the sample's own length."""
    if alpha <= 0:
        yield
        return
    emb = model.get_input_embeddings()

    def hook(module, inputs, output):
        if not module.training:
            return output
        d = output.shape[-1]
        if position_ids is not None:
            seg = (position_ids == 0).cumsum(-1)
            lengths = torch.zeros_like(position_ids).scatter_add_(-1, seg - 1, torch.ones_like(position_ids))
            n = lengths.gather(-1, seg - 1).to(output.dtype)
        else:
            n = torch.full(output.shape[:-1], output.shape[-2], dtype=output.dtype, device=output.device)
        scale = (alpha / torch.sqrt(n * d)).unsqueeze(-1)
        noise = torch.rand(output.shape, generator=generator, device=output.device, dtype=output.dtype) * 2 - 1
        return output + noise * scale

    handle = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Sum of log p(label) over each sequence's labelled tokens: one value per sequence."""
    if "attention_mask" in batch:  # padded
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        tgt = batch["labels"][:, 1:]
        tok = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (tgt != IGNORE_INDEX)
        return tok.sum(-1)
    kw = {k: batch[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                "max_length_k")}
    logits = model(**kw, use_cache=False).logits[0, :-1]
    lp = torch.log_softmax(logits.float(), -1)
    tgt = batch["labels"][0, 1:]
    tok = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (tgt != IGNORE_INDEX)
    return torch.zeros(batch["num_sequences"], dtype=tok.dtype, device=tok.device).index_add(
        0, batch["seq_index"][1:].to(tok.device), tok)


def dpo_loss(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict]:
    """Sigmoid DPO loss from per-sequence log-probs ordered (chosen, rejected, chosen, ...)."""
    pc, pr, rc, rr = policy[0::2], policy[1::2], reference[0::2], reference[1::2]
    chosen_r, rejected_r = beta * (pc - rc), beta * (pr - rr)
    loss = -F.logsigmoid(chosen_r - rejected_r).mean()
    metrics = {"rewards/chosen": chosen_r.mean().item(), "rewards/rejected": rejected_r.mean().item(),
               "rewards/margins": (chosen_r - rejected_r).mean().item(),
               "rewards/accuracies": (chosen_r > rejected_r).float().mean().item(),
               "logps/chosen": pc.mean().item(), "logps/rejected": pr.mean().item()}
    return loss, metrics


def dpo_step_loss(model, batch: dict, beta: float, neftune_alpha: float = 0.0, generator=None,
                  return_logps: bool = False):
    """Policy pass (adapter on, NEFTune) and reference pass (adapter off, no noise, no grad)."""
    with torch.no_grad(), model.disable_adapter():
        ref = sequence_logps(model, batch)
    with neftune(model, neftune_alpha, batch.get("position_ids"), generator):
        pol = sequence_logps(model, batch)
    loss, metrics = dpo_loss(pol, ref, beta)
    return (loss, metrics, pol, ref) if return_logps else (loss, metrics)


# ------------------------------------------------------------------------------ training


def check_config(cfg: DPOConfig) -> None:
    """One clear line for a bad config, before any model loads or folder is created."""
    from hermes3.config import check

    check(cfg)


def enable_checkpointing(model) -> None:
    """Activation checkpointing per decoder layer. Non-reentrant, so the frozen base needs no
    ``enable_input_require_grads`` hack for LoRA; torch restores the RNG state in the recompute,
    so LoRA dropout masks are the ones of the forward pass (equal gradients: tested)."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def _lora(model, cfg: DPOConfig):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                            target_modules=cfg.target_modules, task_type="CAUSAL_LM"))


def prepare(cfg: DPOConfig):
    """Model with a fresh adapter, tokenizer, and tokenized (train, held-out) pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hermes3.attention import choose_attention
    from hermes3.chat import ConversationError

    cuda = torch.cuda.is_available()
    path = resolve_if_local(cfg.model)
    from hermes3.modeling import check_model_folder

    check_model_folder(path)
    tok = AutoTokenizer.from_pretrained(path)
    pairs, dropped = [], 0
    for p in load_pairs(cfg.data):
        try:
            t = tokenize_pair(p, tok)
        except ConversationError:
            dropped += 1
            continue
        if max(len(t["chosen"]["input_ids"]), len(t["rejected"]["input_ids"])) > cfg.max_length:
            dropped += 1
            continue
        pairs.append(t)
    if not pairs:
        raise ConfigError(f"no usable preference pairs in {cfg.data} ({dropped} dropped)")
    random.Random(cfg.seed).shuffle(pairs)
    n_held = max(1, int(len(pairs) * cfg.heldout_fraction)) if cfg.heldout_fraction > 0 else 0
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=choose_attention("cuda" if cuda else "cpu"))
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return _lora(model, cfg), tok, pairs[n_held:], pairs[:n_held], dropped


@torch.no_grad()
def evaluate_pairs(model, pairs: list[dict], beta: float, batch_pairs: int = 16, per_pair: bool = False) -> dict:
    """Held-out reward metrics (no noise, no dropout); ``per_pair`` adds ``margins``, each
    pair's reward margin in order (for an interval on the accuracy)."""
    was = model.training
    model.eval()
    agg: dict[str, float] = {}
    n, margins = 0, []
    for k in range(0, len(pairs), batch_pairs):
        chunk = pairs[k:k + batch_pairs]
        loss, m, pol, ref = dpo_step_loss(model, collate_packed(chunk), beta, return_logps=True)
        margins += (beta * ((pol[0::2] - ref[0::2]) - (pol[1::2] - ref[1::2]))).tolist()
        for key, v in {**m, "loss": loss.item()}.items():
            agg[key] = agg.get(key, 0.0) + v * len(chunk)
        n += len(chunk)
    model.train(was)
    out = {k: v / n for k, v in agg.items()}
    return {**out, "margins": margins} if per_pair else out


def train(cfg: DPOConfig) -> Path:
    """Run DPO; returns the output folder (``adapter/``, ``merged/``, ``metrics.csv``,
    ``heldout.json`` with held-out reward metrics before and after)."""
    check_config(cfg)
    from transformers import get_linear_schedule_with_warmup

    from hermes3.outputs import check_writable

    out = check_writable(cfg.output(), "DPO output folder")
    model, tok, train_pairs, held, dropped = prepare(cfg)  # bad model or data: fails before the folder exists
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    steps_per_epoch = math.ceil(len(train_pairs) / cfg.pairs_per_step)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.RMSprop(params, lr=cfg.lr) if cfg.optimizer == "rmsprop"
           else torch.optim.AdamW(params, lr=cfg.lr))
    sched = get_linear_schedule_with_warmup(opt, cfg.warmup_steps, total)
    from hermes3.modeling import use_bf16

    bf16 = use_bf16(cfg.bf16)
    dev_type = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator().manual_seed(cfg.seed)
    run = _wandb(cfg)
    before = evaluate_pairs(model, held, cfg.beta) if held else {}
    held_csv = out / "heldout.csv"
    held_csv.unlink(missing_ok=True)
    if held and cfg.eval_steps:
        _append_csv(held_csv, {"step": 0, **before})
    rng = random.Random(cfg.seed)
    order: list[int] = []
    csv_path = out / "metrics.csv"
    csv_path.unlink(missing_ok=True)
    model.train()
    for step in range(1, total + 1):
        if len(order) < cfg.pairs_per_step:
            fresh = list(range(len(train_pairs)))
            rng.shuffle(fresh)
            order += fresh
        chunk = [train_pairs[i] for i in order[:cfg.pairs_per_step]]
        del order[:cfg.pairs_per_step]
        batch = collate_packed(chunk) if cfg.packed else collate_padded(chunk, tok.pad_token_id or 0)
        with torch.autocast(dev_type, dtype=torch.bfloat16, enabled=bf16):
            loss, m = dpo_step_loss(model, batch, cfg.beta, cfg.neftune_alpha, gen)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
        applied_lr = sched.get_last_lr()[0]  # the LR of this step (read before the scheduler moves on)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if held and cfg.eval_steps and (step % cfg.eval_steps == 0 or step == total):
            _append_csv(held_csv, {"step": step, **evaluate_pairs(model, held, cfg.beta)})
        if step % cfg.logging_steps == 0 or step == 1:
            row = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss.item(),
                   "learning_rate": applied_lr, "grad_norm": grad_norm, **m}
            _append_csv(csv_path, row)
            if run is not None:
                run.log({f"train/{k}": v for k, v in row.items() if k != "step"}, step=step)
    after = evaluate_pairs(model, held, cfg.beta, per_pair=True) if held else {}
    (out / "heldout.json").write_text(json.dumps({"before": before, "after": after, "pairs": len(held),
                                                  "train_pairs": len(train_pairs), "dropped": dropped}, indent=2))
    model.save_pretrained(out / "adapter")
    merge(out / "adapter", cfg.model, out / "merged", tok)
    (out / COMPLETE).write_text(json.dumps({"steps": total}))  # written last: the run is whole
    if run is not None:
        run.summary.update({f"heldout/{k}": v for k, v in after.items()})
        run.finish()
    return out


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def _wandb(cfg: DPOConfig):
    mode = cfg.wandb_mode or os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        return None
    from hermes3 import tracking

    return tracking.start("dpo", cfg.name, asdict(cfg), mode=mode)


def merge(adapter_dir: str | Path, base: str | Path, out_dir: str | Path, tokenizer=None) -> Path:
    """Merge a LoRA adapter into its base model: a standalone folder for eval and FP8."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve_if_local(str(base))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    (tokenizer or AutoTokenizer.from_pretrained(base)).save_pretrained(out_dir)
    return Path(out_dir)


def read_metrics(output_dir: str | Path):
    import pandas as pd

    return pd.read_csv(Path(output_dir) / "metrics.csv")
