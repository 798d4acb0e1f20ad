"""DPO with a LoRA adapter (report §4.2), on packed, padding-free preference batches.

The report: a LoRA adapter (r 32, alpha 16, dropout 0.05, all linear layers) so the
reference and policy need not both sit in memory; RMSProp, peak LR 3e-6, 9 warmup steps
then linear decay; NEFTune alpha 5. Not stated, so TRL's defaults: beta 0.1, sigmoid loss.

Why not TRL's ``DPOTrainer`` (TRL 1.16): it cannot pack
(``padding_free`` is disabled), its ``disable_dropout=True`` default silently zeroes the
LoRA dropout, and its reference pass draws NEFTune noise of its own. Here:

* every chosen and rejected sequence of the step is concatenated into one padding-free row
  (``position_ids`` restart per sequence; our per-sample attention or flash-attn varlen keeps
  them apart) and per-sequence log-probabilities are summed per segment; equal to the padded
  computation (a test) and faster on real length distributions (a benchmark);
* the reference is the same weights with the adapter disabled (no second model object);
* NEFTune noise is added to the input embeddings, scaled per sequence (alpha / sqrt(len x
  dim)), so packing does not change the noise a sample gets; the reference and policy passes
  get the *same* draw, so the rewards compare the two on the same inputs (a fresh adapter logs
  margin 0, not a noise penalty: ``hermes3.train.dpo_loss.dpo_step``);
* LoRA dropout stays 0.05.

Training runs on transformers' ``Trainer``, the engine SFT uses (``hermes3.train.dpo_trainer``,
``hermes3.train.engine``): device placement, DDP/FSDP, accumulation from the global batch
``pairs_per_step``, clipping, checkpoints and resume. Against TRL 1.16 ``DPOTrainer`` + peft on
identical token ids (a test): loss ln 2 at step 0 and the same losses, margins and LoRA weights
after 3 steps. The one definitional difference: from a conversation TRL trains the "\n" the
template writes after ``<|im_end|>``; we do not, consistent with our SFT mask.

Logged like TRL: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
logps/chosen, logps/rejected (W&B and ``metrics.csv``); accuracy counts a tie (margin 0) as
half a pair. With a fresh adapter (B = 0) the policy equals the reference, NEFTune on or off:
step-1 loss is ln 2, every margin 0 and accuracy 0.5.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

from hermes3.core.config import ConfigError
from hermes3.core.paths import resolve, resolve_if_local
from hermes3.train import engine, stage
from hermes3.train.dpo_loss import evaluate_pairs
from hermes3.train.engine import COMPLETE, read_metrics
from hermes3.train.stage import StageConfig

__all__ = ["COMPLETE", "DPOConfig", "read_metrics", "train"]

# What says a preference pair's type (``hermes3.data.build``): kept beside each tokenized pair, so
# ``heldout.json`` can break held-out accuracy down by type (``hermes3.eval.compare.accuracy_by_type``)
PAIR_TYPE = ("source", "kind", "category")


@dataclass
class DPOConfig(StageConfig):
    """The DPO stage (report §4.2; beta and loss are TRL's defaults, the report is silent)."""

    stage: ClassVar[str] = "dpo"

    name: str = field(default="dpo", metadata={"help": "run name; output in runs/dpo/<name> unless output_dir is set"})
    model: str = field(default="runs/sft/tiny/final", metadata={"help": "the selected SFT checkpoint (a folder or Hub id)"})
    data: str = field(default="runs/data/demo", metadata={"help": "a data build (preferences.jsonl) or a preference JSONL"})
    output_dir: str = field(default="", metadata={"help": "adapter checkpoints, metrics.csv, merged/"})
    lr: float = field(default=3e-6, metadata={"help": "peak learning rate (report: 3e-6)", "gt": 0})
    warmup_steps: int = field(default=9, metadata={"help": "warmup steps, then linear decay (report: 9)", "ge": 0})
    epochs: float = field(default=1, metadata={"help": "passes over the pairs (not in the report)", "ge": 0})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank (report: 32)", "ge": 1})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (report: 16)", "ge": 1})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (report: 0.05); kept, not disabled",
                                                          "ge": 0, "lt": 1})
    target_modules: str = field(default="all-linear", metadata={"help": "LoRA targets (report: all linear layers)"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta (not in the report: TRL default 0.1)", "gt": 0})
    optimizer: str = field(default="rmsprop", metadata={"help": "report: RMSProp", "choices": ("rmsprop", "adamw_torch")})
    neftune_alpha: float = field(default=5.0, metadata={
        "help": "NEFTune noise alpha, one draw for the reference and policy passes (report: 5; 0 = off)", "ge": 0})
    pairs_per_step: int = field(default=16, metadata={
        "help": "preference pairs per optimizer step over all processes (the global batch; not in the report). "
                "The loss is the mean over these pairs of -log sigmoid(beta x margin); a sequence's log-prob is the "
                "sum over its completion tokens (not averaged), as in TRL's sigmoid loss", "ge": 1})
    pairs_per_device: int = field(default=0, metadata={
        "help": "pairs per process per forward pass; gradient accumulation = pairs_per_step / (pairs_per_device x "
                "processes), so the global batch is the same on 1 or 64 GPUs. 0: pairs_per_step / processes "
                "(no accumulation)", "ge": 0})
    max_length: int = field(default=2048, metadata={"help": "drop pairs whose chosen or rejected sequence is longer", "ge": 1})
    packed: bool = field(default=True, metadata={"help": "padding-free packed batches (False: padded, as TRL)"})
    heldout_fraction: float = field(default=0.1, metadata={"help": "pairs kept out for held-out reward accuracy", "ge": 0, "lt": 1})
    eval_steps: int = field(default=0, metadata={
        "help": "score the held-out pairs every N steps into heldout.csv (Fig. 5 on held-out pairs; 0: start and end only)",
        "ge": 0})


# ------------------------------------------------------------------------------- data


def load_pairs(data: str | Path) -> list[dict]:
    p = resolve(data)
    f = p / "preferences.jsonl" if p.is_dir() else p
    if not f.exists():
        raise ConfigError(f"{f} not found: point data at a `hermes3 data build` folder or a preference JSONL")
    from hermes3.core.errors import InputFileError
    from hermes3.data.loaders import read_records

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
    from hermes3.format.masking import tokenize_and_mask

    out = {}
    for side in ("chosen", "rejected"):
        ex = tokenize_and_mask({"messages": pair["prompt"] + pair[side], "tools": pair.get("tools")}, tokenizer,
                               train_on="last")
        out[side] = {"input_ids": ex["input_ids"], "labels": ex["labels"]}
    return out


# ------------------------------------------------------------------------------ training


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
    """Model with a fresh adapter, tokenizer, and tokenized (train, held-out) pairs, each with
    its ``type`` (``PAIR_TYPE`` fields; None where a preference JSONL lacks them). The model
    stays where it loads (CPU); the engine moves it to its device. On CUDA with bf16 the frozen
    base loads in bf16 (the adapter stays fp32, peft's default), as SFT does."""
    from hermes3.format.chat import ConversationError
    from hermes3.train.modeling import check_model_folder

    path = resolve_if_local(cfg.model)
    check_model_folder(path)
    tok = stage.load_tokenizer_for(path)
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
        pairs.append({**t, "type": {k: p.get(k) for k in PAIR_TYPE}})
    if not pairs:
        raise ConfigError(f"no usable preference pairs in {cfg.data} ({dropped} dropped)")
    random.Random(cfg.seed).shuffle(pairs)
    n_held = max(1, int(len(pairs) * cfg.heldout_fraction)) if cfg.heldout_fraction > 0 else 0
    model = stage.load_model_for(cfg, path)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    return _lora(model, cfg), tok, pairs[n_held:], pairs[:n_held], dropped


def train(cfg: DPOConfig, callbacks: tuple = ()) -> Path:
    """Run DPO on the transformers ``Trainer`` (``hermes3.train.dpo_trainer``); returns the output
    folder: ``adapter/``, ``merged/``, ``metrics.csv``, ``heldout.json`` (held-out reward
    metrics before and after; ``per_pair``: each held-out pair's type and margin after),
    ``heldout.csv`` (with ``eval_steps``), ``checkpoint-N/`` (with
    ``save_steps``) and ``COMPLETE`` last. ``callbacks``: extra ``TrainerCallback`` objects.

    One process, or many under ``torchrun`` / ``accelerate launch`` (DDP, FSDP); the global
    batch is ``pairs_per_step`` whatever the number of processes. Settings are checked before
    any model or data loads:

    >>> train(DPOConfig(beta=0))
    Traceback (most recent call last):
    ...
    hermes3.core.config.ConfigError: beta must be > 0, got 0
    """
    return stage.run(cfg, _prepare, partial(_build, callbacks=callbacks), _finish,
                     metrics_files=("metrics.csv", "heldout.csv"))


def _prepare(cfg: DPOConfig) -> dict:
    """The batch arithmetic (checked first), then ``prepare``."""
    world = engine.world_size()
    per_device = cfg.pairs_per_device or cfg.pairs_per_step // world
    accum = engine.grad_accum_for(cfg.pairs_per_step, max(per_device, 1), world, "pairs_per_step")
    model, tok, train_pairs, held, dropped = prepare(cfg)
    return {"model": model, "tok": tok, "train": train_pairs, "held": held, "dropped": dropped,
            "per_device": per_device, "accum": accum}


def _build(cfg: DPOConfig, out: Path, p: dict, report_to: list[str], main: bool, callbacks=()):
    from hermes3.train.dpo_trainer import build_trainer

    return build_trainer(cfg, out, p["model"], p["tok"], p["train"], p["held"], p["per_device"], p["accum"],
                         report_to, callbacks)


def _finish(cfg: DPOConfig, out: Path, trainer, p: dict, main: bool, report_to: list[str]) -> tuple[Path, dict]:
    """Held-out reward metrics before and after, the adapter, and on the main process
    ``heldout.json`` and the merged model."""
    from hermes3.train.dpo_trainer import unwrapped

    held = p["held"]
    with trainer.accelerator.autocast():
        before = evaluate_pairs(trainer.model_wrapped, held, cfg.beta, peft=unwrapped(trainer),
                                reference_only=True, ref_cache=trainer.heldout_ref_cache) if held else {}
        after = evaluate_pairs(trainer.model_wrapped, held, cfg.beta, per_pair=True, peft=unwrapped(trainer),
                               ref_cache=trainer.heldout_ref_cache) if held else {}
    if trainer.is_fsdp_enabled:  # one adapter file, not shards (peft's format for merge)
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out / "adapter"))
    if main:
        per_pair = [{**pair["type"], "margin": m} for pair, m in zip(held, after.get("margins", []), strict=True)]
        (out / "heldout.json").write_text(json.dumps({"before": before, "after": after, "pairs": len(held),
                                                      "train_pairs": len(p["train"]), "dropped": p["dropped"],
                                                      "per_pair": per_pair}, indent=2))
        merge(out / "adapter", cfg.model, out / "merged", p["tok"])
        if "wandb" in report_to:
            import wandb

            if wandb.run is not None:
                wandb.run.summary.update({f"heldout/{k}": v for k, v in after.items() if k != "margins"})
                wandb.run.finish()
    return out, {"steps": trainer.state.global_step}


def merge(adapter_dir: str | Path, base: str | Path, out_dir: str | Path, tokenizer=None) -> Path:
    """Merge a LoRA adapter into its base model: a standalone folder for eval and FP8."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hermes3.train.modeling import check_model_folder

    base = resolve_if_local(str(base))
    check_model_folder(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter_dir))
    merged = model.merge_and_unload()
    merged.save_pretrained(out_dir)
    (tokenizer or AutoTokenizer.from_pretrained(base)).save_pretrained(out_dir)
    return Path(out_dir)

