"""Weights & Biases logging, offline by default.

Every stage logs into project ``hermes3`` with ``group`` = the report item it reproduces
(``data``, ``packing``, ``lr-search``, ``sft``, ``dpo``, ``fp8``, ``eval``), so a W&B report
can be built per table or figure. ``WANDB_MODE`` defaults to ``offline``: runs are written
under ``runs/wandb`` and uploaded later with ``wandb sync runs/wandb/wandb/offline-run-*``.
Set ``WANDB_MODE=online`` (and log in) to stream instead, or ``disabled`` to skip.

>>> run = start("data", "doctest", mode="disabled")
>>> run.log({"x": 1}); run.finish()
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "hermes3"


def start(group: str, name: str, config: dict | None = None, mode: str | None = None):
    """A W&B run (``wandb.init``) in ``group``; offline unless ``WANDB_MODE`` says otherwise."""
    import wandb

    mode = mode or os.environ.get("WANDB_MODE", "offline")
    folder = Path(os.environ.get("WANDB_DIR", ROOT / "runs" / "wandb"))
    folder.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=PROJECT, group=group, name=name, job_type=group, config=config or {}, mode=mode,
                      dir=str(folder), reinit="finish_previous")


def log_figure(run, key: str, fig) -> None:
    """A matplotlib figure as a W&B image."""
    import wandb

    run.log({key: wandb.Image(fig)})


def log_table(run, key: str, df) -> None:
    """A pandas DataFrame as a W&B table."""
    import wandb

    run.log({key: wandb.Table(dataframe=df.reset_index(drop=True))})
