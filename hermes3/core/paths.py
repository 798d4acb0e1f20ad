"""Where things live: one rule for every relative path in configs, notebooks and commands.

* **Shipped files** (``configs/``, ``data/``, ``notebooks/``) sit in the checkout, ``REPO``.
* **Outputs** go under the runs root, ``$HERMES3_RUNS`` or ``<checkout>/runs``: data builds,
  base models, SFT/DPO runs, FP8 folders, evaluations and their cache, W&B offline runs.
  Figures go to ``$HERMES3_FIGURES`` or ``<checkout>/figures``. The test suite points both
  at a temporary folder, so tests never touch what is committed.

A relative path in a config is resolved by ``resolve``: ``runs/...`` under the runs root,
anything else against the working directory when it exists there, else against the
checkout (so ``configs/sft/tiny.yaml`` and ``data: runs/data/demo`` work from any folder,
and a file you name next to you wins over a shipped one of the same name).

>>> import os
>>> os.environ["HERMES3_RUNS"] = "/tmp/h3-runs"
>>> str(resolve("runs/data/demo"))
'/tmp/h3-runs/data/demo'
>>> str(resolve("/abs/model"))
'/abs/model'
>>> resolve("configs/sft/tiny.yaml") == REPO / "configs/sft/tiny.yaml"
True
>>> del os.environ["HERMES3_RUNS"]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def runs_root() -> Path:
    """The folder every stage writes under (``$HERMES3_RUNS``, default ``<checkout>/runs``)."""
    return Path(os.environ.get("HERMES3_RUNS") or REPO / "runs").resolve()


def figures_dir() -> Path:
    """Where notebooks write their PNGs (``$HERMES3_FIGURES``, default ``<checkout>/figures``)."""
    return Path(os.environ.get("HERMES3_FIGURES") or REPO / "figures").resolve()


def runs(*parts: str) -> Path:
    """A path under the runs root: ``runs("sft", "tiny")``."""
    return runs_root().joinpath(*parts)


def resolve(path: str | os.PathLike) -> Path:
    """The one rule for a relative path (see the module docstring)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.parts and p.parts[0] == "runs":
        return runs_root().joinpath(*p.parts[1:])
    here = Path.cwd() / p
    return here if here.exists() else REPO / p


def resolve_if_local(path: str) -> str:
    """``resolve`` for a string that may also be a Hugging Face Hub id (``meta-llama/Llama-3.1-8B``):
    kept as given unless it resolves to something on disk or names a ``runs/`` output."""
    p = resolve(path)
    if p.exists() or Path(path).is_absolute() or Path(path).parts[:1] == ("runs",):
        return str(p)
    return path


@contextlib.contextmanager
def env_overrides(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the ``with`` block only, then put back what was there
    (unset stays unset), also when the block raises. Child processes and libraries that read
    the environment see ``values`` inside the block (papermill kernels, W&B's Trainer callback).

    >>> os.environ["H3_KEPT"] = "old"
    >>> with env_overrides({"H3_NEW": "1", "H3_KEPT": "new"}):
    ...     os.environ["H3_NEW"], os.environ["H3_KEPT"]
    ('1', 'new')
    >>> "H3_NEW" in os.environ, os.environ.pop("H3_KEPT")
    (False, 'old')
    """
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
