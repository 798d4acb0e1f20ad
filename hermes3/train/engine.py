"""What SFT and DPO share on transformers' ``Trainer``: one engine for both stages, as in
open-instruct and alignment-handbook (device placement, DDP/FSDP under ``torchrun`` or
``accelerate launch``, gradient accumulation, clipping, checkpoints, resume, W&B).

The pieces the stock ``Trainer`` lacks, and why each is here:

* **Global batch -> accumulation.** A recipe states the batch per optimizer step (rows for
  SFT, pairs for DPO); the accumulation steps follow from the world size, so the same YAML
  gives the same optimisation on 1 or 8 processes (open-instruct #148/#464,
  alignment-handbook #50 are users tripping over per-device batch x accumulation x GPUs).
* **Complete checkpoints.** A checkpoint counts only once its ``COMPLETE`` marker is written
  (last), so a save killed midway never becomes the resume point.
* **One overwrite policy.** A folder that already holds a run is refused unless ``resume``.
* **One metrics file.** ``metrics.csv`` mirrors the Trainer's log rows (the notebooks read it);
  resume drops the rows after the checkpoint (they are re-run).
* **W&B** through the Trainer's own ``WandbCallback``, set up by ``hermes3.core.tracking.for_trainer``
  (project ``hermes3``, the stage as group, offline by default), the setup notebooks use too.

>>> grad_accum_for(64, per_device=2, world_size=8)
4
>>> grad_accum_for(50, per_device=2, world_size=8, field="pairs_per_step")
Traceback (most recent call last):
...
hermes3.core.config.ConfigError: pairs_per_step=50 is not a multiple of 2 per device x 8 processes = 16
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from hermes3.core.config import ConfigError

COMPLETE = "COMPLETE"


def world_size() -> int:
    """Processes in this launch (``torchrun`` / ``accelerate launch`` set ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def grad_accum_for(global_batch: int, per_device: int, world_size: int, field: str = "global_batch") -> int:
    """Micro-steps per optimizer step so that ``per_device x world_size x steps == global_batch``.
    Refuses a global batch that does not split evenly (silently changing it would change the
    optimisation the recipe states)."""
    per_step = per_device * world_size
    if global_batch % per_step:
        raise ConfigError(f"{field}={global_batch} is not a multiple of {per_device} per device x {world_size} "
                          f"processes = {per_step}", field)
    return global_batch // per_step


def mark_complete(folder: Path, **info) -> None:
    """Written last into a finished folder: its presence means the folder is whole."""
    (Path(folder) / COMPLETE).write_text(json.dumps(info))


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` whose save finished; half-written ones are ignored."""
    done = [p for p in Path(output_dir).glob("checkpoint-*")
            if (p / COMPLETE).exists() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def check_fresh_or_resume(out: Path, resume: bool, stage: str) -> Path | None:
    """The overwrite policy of both stages: a folder holding checkpoints or a finished run is
    refused unless ``resume``; with ``resume``, the checkpoint to continue from (None: start
    fresh, said in one line)."""
    done = (out / COMPLETE).exists() or (out / "final" / COMPLETE).exists()
    if not resume:
        if out.exists() and (done or any(out.glob("checkpoint-*"))):
            raise ConfigError(f"{out} already holds a {stage} run: pass resume=true to continue or choose another "
                              "name / output_dir")
        return None
    ckpt = last_complete_checkpoint(out)
    if ckpt is None:
        print(f"[hermes3 {stage}] no complete checkpoint in {out}: starting fresh", file=sys.stderr)
    return ckpt


def append_csv(path: Path, row: dict) -> None:
    """One row; the header is written with the first."""
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def truncate_csv(path: Path, step: int) -> None:
    """Drop logged rows after ``step`` (resume re-runs them)."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.DictReader(f))
    with path.open("w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(r for r in rows if int(r["step"]) <= step)


def checkpoint_step(ckpt: Path) -> int:
    return int(ckpt.name.split("-")[1])


def training_arguments(out: Path, name: str, *, cuda: bool, wandb: list[str], save_steps: int,
                       save_strategy: str | None = None, **kw):
    """``TrainingArguments`` with the settings both stages share: CPU or CUDA, gloo for
    multi-process CPU runs, no column pruning (our collators read every field), progress bars
    off in batch notebooks."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out), run_name=name, report_to=wandb, remove_unused_columns=False,
        save_strategy=save_strategy or ("steps" if save_steps else "no"), save_steps=save_steps or 500,
        save_only_model=False, dataloader_num_workers=0, use_cpu=not cuda,
        ddp_backend="gloo" if not cuda and world_size() > 1 else None,
        disable_tqdm=os.environ.get("TQDM_DISABLE") == "1", **kw)


def trainer_base():
    """A ``Trainer`` subclass with completion markers on checkpoints (imported lazily: the CLI
    stays fast for commands that do not train)."""
    from transformers import PrinterCallback, Trainer

    class MarkedTrainer(Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            if self.args.disable_tqdm:
                # Without progress bars the Trainer prints every log dict instead: a line per step in
                # a batch notebook. metrics.csv and W&B keep the numbers.
                self.remove_callback(PrinterCallback)

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            if self.args.should_save:
                folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
                mark_complete(folder, step=self.state.global_step, epoch=self.state.epoch)

    return MarkedTrainer


def csv_callback(path: Path, row: Callable[[object, dict], dict | None]):
    """A callback that appends ``row(state, logs)`` to ``path`` on the main process for every
    training log (the Trainer logs each ``logging_steps``)."""
    from transformers import TrainerCallback

    class CSVCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs is None or "loss" not in logs or not state.is_world_process_zero:
                return
            r = row(state, logs)
            if r is not None:
                append_csv(path, r)

    return CSVCallback()


def config_callback(config: dict):
    """Adds the stage's own config (``SFTConfig`` / ``DPOConfig`` as a dict) to the W&B run the
    Trainer started, next to the TrainingArguments it logs itself."""
    from transformers import TrainerCallback

    class ConfigCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if "wandb" in args.report_to and state.is_world_process_zero:
                import wandb

                if wandb.run is not None:
                    wandb.run.config.update({"hermes3": config}, allow_val_change=True)

    return ConfigCallback()


def read_metrics(output_dir: str | Path):
    """``metrics.csv`` of an SFT or DPO run as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(output_dir) / "metrics.csv")
