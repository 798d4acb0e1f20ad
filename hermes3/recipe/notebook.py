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

from pathlib import Path

from hermes3.core.quiet import quiet


def setup(scale: str = "demo"):
    """``(Recipe(scale), figures folder)`` with quiet logging; the figures folder exists."""
    from hermes3.core.paths import figures_dir
    from hermes3.recipe.stages import Recipe

    quiet()
    figures = figures_dir()
    figures.mkdir(parents=True, exist_ok=True)
    return Recipe(scale), Path(figures)


def row_table(rows: dict):
    """A table with one row per key of ``rows`` (each a dict ``column -> value``) whose columns keep
    their types. Why not ``pd.DataFrame(rows).T``: it first makes each row a column of mixed values,
    a float column, so every count in it printed as a float (4963584.0 parameters).

    >>> row_table({"tiny-s": {"parameters": 1412224, "loss": 1.39}})
            parameters  loss
    tiny-s     1412224  1.39
    """
    import pandas as pd

    return pd.DataFrame.from_dict(rows, orient="index")


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
