"""Weights & Biases logging, offline by default.

Every stage logs into project ``hermes3`` with ``group`` = the report item it reproduces
(``data``, ``packing``, ``lr-search``, ``sft``, ``dpo``, ``fp8``, ``eval``), so a W&B report
can be built per table or figure. ``WANDB_MODE`` defaults to ``offline``: runs are written
under ``runs/wandb`` (of ``hermes3.core.paths.runs_root()``) and uploaded later with ``wandb sync runs/wandb/wandb/offline-run-*``.
Set ``WANDB_MODE=online`` (and log in) to stream instead, or ``disabled`` to skip.

>>> import tempfile
>>> run = start("data", "doctest", {"lr": 7e-6}, mode="disabled", folder=tempfile.mkdtemp())
>>> run.log({"train/loss": 1.5})
>>> run.project, run.group, run.name, run.config["lr"], run.disabled
('hermes3', 'data', 'doctest', 7e-06, True)
>>> run.finish()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from hermes3.core.paths import env_overrides, runs

PROJECT = "hermes3"


def _where(mode: str | None, folder: str | Path | None = None) -> tuple[str, str, Path]:
    """The one place the settings are chosen: ``(mode, project, folder)``; the mode is ``mode``,
    else ``$WANDB_MODE``, else offline; the folder ``folder``, else ``$WANDB_DIR``, else
    ``runs/wandb`` (created)."""
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    folder = Path(folder or os.environ.get("WANDB_DIR") or runs("wandb"))
    folder.mkdir(parents=True, exist_ok=True)
    return mode, os.environ.get("WANDB_PROJECT", PROJECT), folder


def start(group: str, name: str, config: dict | None = None, mode: str | None = None,
          folder: str | Path | None = None):
    """A W&B run (``wandb.init``) in ``group``, for what a notebook logs itself."""
    import wandb

    mode, project, folder = _where(mode, folder)
    return wandb.init(project=project, group=group, name=name, job_type=group, config=config or {}, mode=mode,
                      dir=str(folder), reinit="finish_previous")


@contextlib.contextmanager
def for_trainer(mode: str, group: str) -> Iterator[list[str]]:
    """The Trainer's ``report_to`` for a stage, with W&B's project, group and folder set for
    the block only, and the stage's run finished at its end (a later stage in the same process,
    the next LR of a sweep or DPO after SFT, gets its own run and group).
    ``mode``: offline | online | disabled; empty: ``$WANDB_MODE`` or offline."""
    mode = mode or os.environ.get("WANDB_MODE", "offline")
    if mode == "disabled":
        yield []
        return
    import wandb

    mode, project, folder = _where(mode)
    wanted = {"WANDB_MODE": mode, "WANDB_PROJECT": project, "WANDB_RUN_GROUP": group, "WANDB_DIR": str(folder)}
    # wandb reads its environment once per process (wandb.setup) and the Trainer's WandbCallback
    # never finishes its run: without both lines below a second stage in the process would log
    # into the first one's run, folder and group (measured: SFT then DPO gave one run, group sft).
    live = wandb.setup().settings if os.environ.get("RANK", "0") == "0" else None  # the callback logs on rank 0
    stage = {"mode": mode, "project": wanted["WANDB_PROJECT"], "run_group": group, "root_dir": wanted["WANDB_DIR"]}
    keep = {k: getattr(live, k) for k in stage} if live else {}
    for k, v in stage.items() if live else ():
        setattr(live, k, v)
    before = wandb.run
    try:
        with env_overrides(wanted):
            yield ["wandb"]
    finally:
        if wandb.run is not None and wandb.run is not before:
            wandb.run.finish()
        for k, v in keep.items():
            setattr(live, k, v)


def log_figure(run, key: str, fig) -> None:
    """A matplotlib figure as a W&B image."""
    import wandb

    run.log({key: wandb.Image(fig)})


def log_table(run, key: str, df) -> None:
    """A pandas DataFrame as a W&B table."""
    import wandb

    run.log({key: wandb.Table(dataframe=df.reset_index(drop=True))})


def read_offline_run(folder: str | Path) -> dict:
    """What an offline run logged, read back from its ``run-*.wandb`` file:
    ``{"config": {...}, "history": [{...}, ...], "summary": {...}, "group": str, "name": str}``.

    The file is wandb's LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB blocks
    of chunks: crc32 (4), length (2, little endian), type (1: full, 2: first, 3: middle,
    4: last), payload) holding protobuf ``Record`` messages. wandb's Python package no
    longer ships a reader (its core moved to Go), so this is a small one for tests and
    notebooks that check what was logged before ``wandb sync``.
    """
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = list(Path(folder).glob("run-*.wandb"))
    data = path.read_bytes()
    block, pos, buf = 32768, 7, b""
    out: dict = {"config": {}, "history": [], "summary": {}}
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: too small for a chunk header
            pos += block - pos % block
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        buf = payload if kind in (1, 2) else buf + payload
        if kind not in (1, 4):
            continue
        rec = pb.Record()
        rec.ParseFromString(buf)
        which = rec.WhichOneof("record_type")
        if which == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif which == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
        elif which in ("config", "run"):  # the run record carries the initial config
            if which == "run":
                out["group"], out["name"] = rec.run.run_group, rec.run.display_name
            items = rec.config.update if which == "config" else rec.run.config.update
            out["config"].update({i.key: json.loads(i.value_json) for i in items})
    return out
