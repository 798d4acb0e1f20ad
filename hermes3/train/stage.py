"""One training stage, the same for SFT and DPO: the fields both configs share and the steps
both runs take.

    check the config -> output folder (fresh, or resume from its last complete checkpoint)
    -> load data and model -> config.json, metrics files -> W&B -> Trainer -> train
    -> save -> COMPLETE, written last

``StageConfig`` holds the shared fields; ``SFTConfig`` and ``DPOConfig`` add their own and restate
the defaults the report gives them. ``run`` is the sequence above; each stage hands it three
functions: ``prepare`` (data and model; a bad model or file fails here, before any folder
exists), ``build`` (the Trainer) and ``finish`` (what it saves).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from hermes3.core import tracking
from hermes3.core.config import ConfigError, check
from hermes3.core.outputs import check_writable
from hermes3.core.paths import resolve, runs
from hermes3.train import engine
from hermes3.train.cluster import ClusterConfig

ATTENTION = ("auto", "flash_attention_2", "hermes_varlen_sdpa", "sdpa", "eager")


@dataclass
class StageConfig:
    """Fields every training stage has (``SFTConfig`` and ``DPOConfig`` restate some defaults)."""

    stage: ClassVar[str] = "stage"  # the runs/<stage>/<name> folder and the W&B group

    name: str = field(default="run", metadata={"help": "run name; output in runs/<stage>/<name> unless output_dir is set"})
    model: str = field(default="", metadata={"help": "the model to train (a folder or Hub id)"})
    data: str = field(default="runs/data/demo", metadata={"help": "a `hermes3 data build` folder or a data file"})
    output_dir: str = field(default="", metadata={"help": "checkpoints, metrics.csv and the trained model"})
    lr: float = field(default=1e-5, metadata={"help": "peak learning rate", "gt": 0})
    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps", "ge": 0})
    epochs: float = field(default=1, metadata={"help": "passes over the data", "ge": 0})
    max_steps: int = field(default=-1, metadata={"help": "stop after N optimizer steps (-1: all epochs)", "ge": -1})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (not stated in the report; 0: off)",
                                                         "ge": 0})
    save_steps: int = field(default=0, metadata={
        "help": "checkpoint model, optimizer, scheduler and RNG every N steps, for resume (0: off)", "ge": 0})
    resume: bool = field(default=False, metadata={"help": "continue from the last complete checkpoint in the output folder"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward (large models)"})
    attn: str = field(default="auto", metadata={"help": "auto | flash_attention_2 | hermes_varlen_sdpa | sdpa | eager",
                                                 "choices": ATTENTION})
    bf16: str = field(default="auto", metadata={"help": "auto (when the hardware has it) | true | false",
                                                 "choices": ("auto", "true", "false")})
    seed: int = field(default=0, metadata={"help": "model init, data order, dropout and noise", "ge": 0})
    logging_steps: int = field(default=1, metadata={"help": "log every N optimizer steps", "ge": 1})
    wandb_mode: str = field(default="", metadata={"help": "offline | online | disabled; empty: $WANDB_MODE or offline",
                                                   "choices": ("", "offline", "online", "disabled")})
    model_config: dict = field(default_factory=dict, metadata={
        "help": "architecture (AutoConfig.for_model kwargs) for `hermes3 plan` when the model is not on disk"})
    cluster: ClusterConfig = field(default_factory=ClusterConfig, metadata={"help": "hardware, for `hermes3 plan`"})

    def output(self) -> Path:
        return resolve(self.output_dir) if self.output_dir else runs(self.stage, self.name)

    def validate(self) -> None:
        """Rules that tie fields together (per-field choices and ranges: ``config.check``)."""
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError(f"set epochs > 0 or max_steps > 0 (got epochs={self.epochs:g}, "
                              f"max_steps={self.max_steps})", "epochs")


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` / ``accelerate launch`` / SLURM launch (or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def load_tokenizer_for(path: str):
    """The model folder's tokenizer; one without the Hermes turn tokens gets them added
    (``hermes3.format.tokenizer.load_tokenizer``), as for a Llama 3.1 base model."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if "<|im_start|>" not in tok.get_vocab():
        from hermes3.format.tokenizer import load_tokenizer

        tok = load_tokenizer(path)
    return tok


def load_model_for(cfg: StageConfig, path: str):
    """The stage's model (``hermes3.train.modeling.load_model``): the configured attention, bf16
    weights on CUDA when bf16 is on (fp32 on CPU, where autocast does the bf16 work), no cache.
    Seeded first, so whatever the load initialises (new embedding rows, an adapter) is the seed's."""
    import torch

    from hermes3.train.attention import choose_attention
    from hermes3.train.logprobs import add_fused_head
    from hermes3.train.modeling import load_model, use_bf16

    cuda = torch.cuda.is_available()
    attn = choose_attention("cuda" if cuda else "cpu") if cfg.attn == "auto" else cfg.attn
    torch.manual_seed(cfg.seed)
    model = load_model(path, attn_implementation=attn,
                       dtype=torch.bfloat16 if cuda and use_bf16(cfg.bf16) else torch.float32)
    return add_fused_head(model)  # before PEFT wraps it


def run(cfg: StageConfig, prepare: Callable, build: Callable, finish: Callable,
        metrics_files: tuple[str, ...] = ("metrics.csv",)) -> Path:
    """Train one stage; returns its output folder.

    ``prepare(cfg)`` loads data and model (anything it returns is handed on);
    ``build(cfg, out, prepared, report_to, main)`` returns the Trainer; ``finish(cfg, out, trainer,
    prepared, main, report_to)`` saves and returns ``(folder, info)``: the folder whose ``COMPLETE``
    marker (with ``info``) is written last, on the main process. ``metrics_files`` start empty on a
    fresh run and lose the rows after the checkpoint on resume (those steps run again)."""
    check(cfg)  # one clear line for a bad config, before any model loads or folder is created
    out = check_writable(cfg.output(), f"{cfg.stage.upper()} output folder")
    resume_from = engine.check_fresh_or_resume(out, cfg.resume, cfg.stage)
    prepared = prepare(cfg)
    main = is_main_process()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        for f in metrics_files:
            if resume_from is None:
                (out / f).unlink(missing_ok=True)
            else:
                engine.truncate_csv(out / f, engine.checkpoint_step(resume_from))
    with tracking.for_trainer(cfg.wandb_mode, cfg.stage) as report_to:
        trainer = build(cfg, out, prepared, report_to, main)
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        folder, info = finish(cfg, out, trainer, prepared, main, report_to)
        if main:
            engine.mark_complete(folder, **info)  # written last: the run is whole
    return out
