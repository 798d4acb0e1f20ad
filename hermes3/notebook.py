"""What every notebook does first: pick the scale's recipe and keep library chatter out of cells.

``setup(scale)`` returns the ``Recipe`` of that scale and the figures folder. It sets the
loggers of transformers, datasets, lm-eval, wandb and peft to warnings only and silences
wandb's banners, so a cell shows results, not logs. Progress bars render as Jupyter widgets
when you run a notebook yourself (``ipywidgets`` is installed with the ``notebooks`` extra);
under ``hermes3 reproduce`` (which sets ``HERMES3_BATCH=1`` and ``TQDM_DISABLE=1`` for its
kernels) they are off, so the executed notebooks stay readable.

>>> import os
>>> os.environ["HERMES3_RUNS"] = "/tmp/h3-doctest-runs"
>>> recipe, figures = setup("smoke")
>>> recipe.root.name, recipe.scale
('smoke', 'smoke')
>>> del os.environ["HERMES3_RUNS"]
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

QUIET = ("transformers", "datasets", "lm-eval", "lm_eval", "peft", "accelerate", "wandb", "urllib3", "filelock",
         "httpx", "huggingface_hub", "torch.distributed")


def quiet() -> None:
    """Warnings and errors only, from every library the stages use (and in ``hermes3.parallel``
    workers started from here: they see ``HERMES3_QUIET``)."""
    os.environ["HERMES3_QUIET"] = "1"
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "warning")
    os.environ.setdefault("DATASETS_VERBOSITY", "warning")
    os.environ.setdefault("LMEVAL_LOG_LEVEL", "ERROR")  # lm-eval re-reads it whenever it sets up logging
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    # lm-eval logs its routine choices as warnings ("Overwriting default num_fewshot ..."): errors only.
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Deprecation notices from library internals are not for notebook readers (pytest still shows them).
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import_wandb_integration_quietly()
    try:
        import transformers

        transformers.logging.set_verbosity_warning()
        if os.environ.get("HERMES3_BATCH") == "1":
            transformers.logging.disable_progress_bar()
    except ImportError:
        pass


def import_wandb_integration_quietly() -> None:
    """transformers prints "[INFO] Running in WANDB offline mode" when its W&B integration is first
    imported with WANDB_MODE=offline: import it here, with stdout swallowed (this kernel and each
    ``hermes3.parallel`` worker would otherwise print it into the cell)."""
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            import transformers.integrations.integration_utils  # noqa: F401
        except ImportError:
            pass


def setup(scale: str = "demo"):
    """``(Recipe(scale), figures folder)`` with quiet logging; the figures folder exists."""
    from hermes3.paths import figures_dir
    from hermes3.recipe import Recipe

    quiet()
    figures = figures_dir()
    figures.mkdir(parents=True, exist_ok=True)
    return Recipe(scale), Path(figures)


def rounded(table, digits: int = 4):
    """``table`` rounded to ``digits`` for display, except p-value columns (named ``p (...)``),
    which keep two significant digits: ``round(4)`` shows a sign test over 160 items (p=1.4e-48)
    as 0.0, which reads as "impossible" rather than "very small".

    >>> import pandas as pd
    >>> rounded(pd.DataFrame({"diff": [1.23456], "p (sign test)": [1.4e-48]}))
         diff p (sign test)
    0  1.2346       1.4e-48
    """
    out = table.round(digits)
    for col in table.columns:
        if str(col).startswith("p ("):
            out[col] = table[col].map(lambda p: f"{p:.2g}")
    return out
