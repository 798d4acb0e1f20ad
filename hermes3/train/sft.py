"""Supervised fine-tuning, the report's §4.1 recipe, on transformers' ``Trainer``.

What we add to the stock Trainer, and why:

* **Our data path**, not TRL's per-batch packing: role-aware labels (``hermes3.format.masking``),
  best-fit-decreasing packing over the whole dataset (``hermes3.train.packing``) and the
  padding-free collator (one ``[1, tokens]`` row, ``position_ids``, ``cu_seq_lens``).
* **Attention**: flash-attn varlen on CUDA when installed (as in the report), else our
  per-sample SDPA (exact, ~1.3-2x faster than the alternatives on CPU, see benchmarks).
* **Loss normalisation**: ``token`` (default) divides the summed cross-entropy by the number
  of target tokens in the whole optimizer step, across gradient accumulation and ranks
  (Trainer's ``num_items_in_batch``, so the 2024 accumulation bug cannot happen);
  ``sample`` gives every conversation equal weight (mean over its tokens, then over the
  conversations of the step), which no peer exposes for packed SFT.
* **Logging** of loss, LR, grad norm, tokens/s, packing efficiency and epoch to W&B
  (offline by default) and to ``metrics.csv`` for the notebooks.
* **Safe checkpoints**: one per epoch; a checkpoint counts only once its ``COMPLETE`` marker
  is written (last), so an interrupted save never becomes the resume point and the
  previous checkpoint stays intact. ``resume=True`` continues from the last complete one.

The same ``train`` runs the CPU demo and, under ``accelerate launch`` / ``torchrun`` with
an FSDP config, the full-scale recipes in ``configs/sft/``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch

from hermes3.core.config import ConfigError
from hermes3.core.paths import resolve, resolve_if_local
from hermes3.format.masking import IGNORE_INDEX
from hermes3.train import engine, stage
from hermes3.train.engine import COMPLETE, last_complete_checkpoint, read_metrics
from hermes3.train.logprobs import has_fused_head, label_logprobs
from hermes3.train.stage import StageConfig

__all__ = ["COMPLETE", "SFTConfig", "last_complete_checkpoint", "read_metrics", "train"]
# transformers.SchedulerType values that need no extra arguments (tests check they exist there)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "cosine_with_min_lr", "warmup_stable_decay")


@dataclass
class SFTConfig(StageConfig):
    """The SFT stage. Defaults are the report's recipe where it states one (§4.1, Table 3)."""

    stage: ClassVar[str] = "sft"

    name: str = field(default="sft", metadata={"help": "run name; output in runs/sft/<name> unless output_dir is set"})
    model: str = field(default="tiny-m", metadata={
        "help": "base model: a folder, a Hub id (meta-llama/Llama-3.1-8B), or tiny-s|tiny-m|tiny-l (built by `hermes3 base`)"})
    data: str = field(default="runs/data/demo", metadata={
        "help": "a `hermes3 data build` folder, or a conversations file / Hub dataset id"})
    output_dir: str = field(default="", metadata={"help": "where checkpoints, metrics.csv and final/ go"})
    lr: float = field(default=7e-6, metadata={"help": "peak learning rate (report: 7e-6 for 8B/70B, 3.5e-6 for 405B)", "gt": 0})
    warmup_steps: int = field(default=300, metadata={"help": "linear warmup steps (report: 300)", "ge": 0})
    epochs: float = field(default=4, metadata={"help": "training epochs (report: 4)", "ge": 0})
    max_length: int = field(default=8192, metadata={"help": "packed row length (report: 8192, Llama 3.1's context)", "ge": 64})
    overlong: str = field(default="drop", metadata={"help": "samples longer than max_length: drop | truncate | split",
                                                    "choices": ("drop", "truncate", "split")})
    rows_per_device: int = field(default=1, metadata={"help": "packed rows per device per micro-step (report: 1)", "ge": 1})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps (report: 1; batch = GPUs); "
                                                          "ignored when global_batch is set", "ge": 1})
    global_batch: int = field(default=0, metadata={
        "help": "packed rows per optimizer step over all processes (report: 48); gradient accumulation = "
                "global_batch / (rows_per_device x processes), so the recipe means the same on 8 or 48 GPUs. "
                "0: rows_per_device x grad_accum x processes", "ge": 0})
    scheduler: str = field(default="cosine", metadata={"help": "decay after warmup (report: cosine; min LR not stated: 0)",
                                                      "choices": SCHEDULERS})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (report: 0.01)", "ge": 0})
    loss_normalization: str = field(default="token", metadata={
        "help": "token: summed cross-entropy / target tokens of the whole optimizer step (all micro-batches and "
                "processes); sample: each conversation's mean over its tokens, averaged over the step's conversations",
                                                               "choices": ("token", "sample")})
    save_each_epoch: bool = field(default=True, metadata={"help": "checkpoint at each epoch end (Table 2 evaluates each)"})
    fsdp: str = field(default="", metadata={"help": "Trainer fsdp option, e.g. 'full_shard auto_wrap' (multi-GPU)"})
    fsdp_config: dict = field(default_factory=dict, metadata={"help": "Trainer fsdp_config (see configs/accelerate/)"})
    shuffle: bool = field(default=True, metadata={"help": "shuffle packed rows each epoch (off: fixed order, for parity tests)"})

    def validate(self) -> None:
        if self.max_length % 8:
            raise ConfigError(f"max_length must be a multiple of 8 and >= 64 (kernel-friendly shapes), "
                              f"got {self.max_length}", "max_length")
        super().validate()


# ------------------------------------------------------------------------------ data


def resolve_model(cfg: SFTConfig) -> str:
    """A tiny size name becomes the cached base model of the data build (trained if needed)."""
    if cfg.model in ("tiny-s", "tiny-m", "tiny-l"):
        from hermes3.train.base_model import BaseConfig, pretrain

        return str(pretrain(BaseConfig(size=cfg.model, data=cfg.data)))
    return resolve_if_local(cfg.model)


def load_conversations_for(cfg: SFTConfig) -> list[dict]:
    data = resolve(cfg.data)
    if (data / "sft.jsonl").exists():
        from hermes3.data.build import load_sft

        return load_sft(data)
    from hermes3.data.loaders import is_local_path, load_conversations

    if is_local_path(cfg.data) and not data.exists():  # else a Hub dataset id
        raise ConfigError(f"data {cfg.data} does not exist: point data at a `hermes3 data build` folder, a "
                          "conversations file (JSON/JSONL) or a Hub dataset id")
    convs, report = load_conversations(str(data) if data.exists() else cfg.data, on_error="skip")
    print(f"[hermes3 sft] {cfg.data}: {report}")
    return convs


def packed_dataset(convs: list[dict], tokenizer, cfg: SFTConfig):
    """Tokenize + mask every conversation, plan rows over the whole dataset, return
    ``(PackedDataset, PackingPlan)``. Raises if nothing is left to train on."""
    from hermes3.format.chat import ConversationError
    from hermes3.format.masking import tokenize_and_mask
    from hermes3.train.packing import PackedDataset, pack

    samples, bad = [], 0
    for c in convs:
        try:
            samples.append(tokenize_and_mask(c, tokenizer))
        except ConversationError:
            bad += 1
    if bad:
        print(f"[hermes3 sft] skipped {bad} conversations that failed validation")
    plan = pack([len(s["input_ids"]) for s in samples], cfg.max_length, overlong=cfg.overlong) if samples else None
    if plan is None or plan.num_rows == 0:
        raise ConfigError(f"dataset {cfg.data!r} is empty after filtering ({len(convs)} conversations, {bad} invalid, "
                          f"max_length {cfg.max_length})")
    return PackedDataset(samples, plan), plan


# ------------------------------------------------------------------------------ trainer


def sample_weights(labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """Per target token, 1 / (targets of its sample), on the shifted targets ``labels[:, 1:]``.
    Samples are found from ``position_ids`` resets."""
    targets = labels[:, 1:] != IGNORE_INDEX
    seg = (position_ids == 0).cumsum(-1)[:, 1:]  # sample index of each target position
    w = torch.zeros_like(targets, dtype=torch.float32)
    for b in range(labels.shape[0]):
        ids = seg[b][targets[b]]
        if ids.numel():
            counts = torch.bincount(ids)
            w[b][targets[b]] = 1.0 / counts[ids].float()
    return w


def num_samples_with_targets(labels: torch.Tensor, position_ids: torch.Tensor) -> int:
    targets = labels[:, 1:] != IGNORE_INDEX
    seg = (position_ids == 0).cumsum(-1)[:, 1:]
    return sum(int(seg[b][targets[b]].unique().numel()) for b in range(labels.shape[0]))


def _trainer_class():
    class HermesTrainer(engine.trainer_base()):
        """Trainer with per-token or per-sample loss normalisation over the optimizer step,
        token counting for throughput and completion markers on checkpoints."""

        tokens_seen = 0
        loss_is_scaled_for_ga = True  # our loss is already normalised over the whole step

        def __init__(self, *a, loss_normalization: str = "token", shuffle: bool = True, **kw):
            self.loss_normalization, self.shuffle = loss_normalization, shuffle
            super().__init__(*a, **kw)

        def _get_train_sampler(self, *args, **kwargs):
            if self.shuffle:
                return super()._get_train_sampler(*args, **kwargs)
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def _get_num_items_in_batch(self, batch_samples, device):
            if self.loss_normalization == "sample":
                # Count conversations instead of tokens; reuse Trainer's gather across ranks by
                # handing it labels with exactly that many targets.
                n = sum(num_samples_with_targets(b["labels"], b["position_ids"]) for b in batch_samples)
                fake = torch.full((1, n + 1), 1, dtype=torch.long)
                fake[0, 0] = IGNORE_INDEX
                batch_samples = [{"labels": fake}]
            return super()._get_num_items_in_batch(batch_samples, device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            self.tokens_seen += int(inputs["input_ids"].numel())
            lp = label_logprobs(model, inputs, labels, has_fused_head(model))
            mask = labels[:, 1:] != IGNORE_INDEX
            ce = -lp[mask]  # the labelled positions, row by row
            if self.loss_normalization == "sample":
                ce = ce * sample_weights(labels, inputs["position_ids"]).to(ce.device)[mask]
                denom = num_items_in_batch if num_items_in_batch is not None else num_samples_with_targets(
                    labels, inputs["position_ids"])
            else:
                denom = num_items_in_batch if num_items_in_batch is not None else mask.sum()
            loss = ce.sum() / denom
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # DDP averages gradients over ranks while `denom` already counts every rank's
                # items: undo the average (what Trainer.compute_loss does for its own loss).
                loss = loss * self.accelerator.num_processes
            return (loss, {"label_logprobs": lp}) if return_outputs else loss

    return HermesTrainer


def _metrics_callback(csv_path: Path, plan, trainer_ref: dict):
    """Adds tokens/s and packing efficiency to every log; mirrors the rows to ``metrics.csv``."""
    clock = {"t": time.perf_counter(), "tokens": 0}

    def row(state, logs):
        tr = trainer_ref["trainer"]
        now, toks = time.perf_counter(), tr.tokens_seen * tr.args.world_size
        logs["tokens_per_second"] = (toks - clock["tokens"]) / max(now - clock["t"], 1e-9)
        logs["packing_efficiency"] = plan.efficiency
        clock.update(t=now, tokens=toks)
        return {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4), "loss": logs.get("loss"),
                "learning_rate": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                "tokens_per_second": logs["tokens_per_second"], "packing_efficiency": plan.efficiency}

    return engine.csv_callback(csv_path, row)


def train(cfg: SFTConfig) -> Path:
    """Run SFT; returns the output folder (``final/`` holds the trained model + tokenizer).

    From the shell: ``hermes3 sft --config configs/sft/tiny.yaml max_steps=2``. Settings are
    checked before any model or data loads:

    >>> train(SFTConfig(lr=0))
    Traceback (most recent call last):
    ...
    hermes3.core.config.ConfigError: lr must be > 0, got 0
    """
    return stage.run(cfg, _prepare, _build, _finish)


def _prepare(cfg: SFTConfig) -> dict:
    """Packed data, tokenizer and model; the batch arithmetic is checked first."""
    accum = (engine.grad_accum_for(cfg.global_batch, cfg.rows_per_device, engine.world_size()) if cfg.global_batch
             else cfg.grad_accum)
    from hermes3.train.modeling import check_model_folder

    convs = load_conversations_for(cfg)
    model_path = resolve_model(cfg)
    check_model_folder(model_path)
    tok = stage.load_tokenizer_for(model_path)
    dataset, plan = packed_dataset(convs, tok, cfg)
    model = stage.load_model_for(cfg, model_path)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))
    model.config.eos_token_id = model.generation_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tok.pad_token_id
    return {"model": model, "tok": tok, "dataset": dataset, "plan": plan, "accum": accum}


def _build(cfg: SFTConfig, out: Path, p: dict, report_to: list[str], main: bool):
    from hermes3.train.modeling import use_bf16
    from hermes3.train.packing import PaddingFreeCollator

    cuda = torch.cuda.is_available()
    if main:
        (out / "packing.json").write_text(json.dumps(p["plan"].summary(), indent=2))
    if cfg.fsdp and not cuda:
        print("[hermes3 sft] fsdp is set, but transformers/accelerate apply FSDP on GPUs only: this CPU run "
              "shards nothing (DDP under torchrun). FSDP2 on CPU is checked in tests/test_sft_distributed.py.",
              file=sys.stderr)
    args = engine.training_arguments(
        out, cfg.name, cuda=cuda, wandb=report_to, save_steps=cfg.save_steps,
        save_strategy="steps" if cfg.save_steps else ("epoch" if cfg.save_each_epoch else "no"),
        per_device_train_batch_size=cfg.rows_per_device, gradient_accumulation_steps=p["accum"],
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, learning_rate=cfg.lr, warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.scheduler, weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        bf16=use_bf16(cfg.bf16), activation_checkpointing=cfg.gradient_checkpointing,
        logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed, average_tokens_across_devices=True,
        fsdp=cfg.fsdp or "", fsdp_config=cfg.fsdp_config or None)
    trainer_ref: dict = {}
    trainer = _trainer_class()(model=p["model"], args=args, train_dataset=p["dataset"],
                               data_collator=PaddingFreeCollator(), processing_class=p["tok"],
                               callbacks=[_metrics_callback(out / "metrics.csv", p["plan"], trainer_ref),
                                          engine.config_callback(asdict(cfg))],
                               loss_normalization=cfg.loss_normalization, shuffle=cfg.shuffle)
    trainer_ref["trainer"] = trainer
    return trainer


def _finish(cfg: SFTConfig, out: Path, trainer, p: dict, main: bool, report_to) -> tuple[Path, dict]:
    final = out / "final"
    trainer.save_model(str(final))  # every rank: FSDP gathers the full weights
    if main:
        p["tok"].save_pretrained(final)
    return final, {"step": trainer.state.global_step}


def epoch_checkpoints(output_dir: str | Path) -> list[tuple[float, Path]]:
    """``[(epoch, checkpoint folder)]`` of the complete checkpoints, in order."""
    out = []
    for p in sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        if (p / COMPLETE).exists():
            out.append((json.loads((p / COMPLETE).read_text())["epoch"], p))
    return out
