"""Keep library chatter out of notebook cells and worker logs: warnings and errors only.

Used by the notebooks (``hermes3.recipe.notebook.setup``) and by every executor worker, so a
job logs the same whether it runs in the kernel or beside it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator

QUIET = ("transformers", "datasets", "lm-eval", "lm_eval", "peft", "accelerate", "wandb", "urllib3", "filelock",
         "httpx", "huggingface_hub", "torch.distributed")


def quiet() -> None:
    """Warnings and errors only, from every library the stages use (and in ``hermes3.recipe.executor``
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
        if in_batch():
            transformers.logging.disable_progress_bar()
    except ImportError:
        pass


def in_batch() -> bool:
    """Whether this is a kernel of ``hermes3 reproduce`` (``HERMES3_BATCH=1``), whose cells are saved:
    a progress bar there would be saved as its first frame, frozen at 0%."""
    return os.environ.get("HERMES3_BATCH") == "1"


@contextlib.contextmanager
def no_loading_bars() -> Iterator[None]:
    """transformers' (and the Hub's) progress bars off inside the block, as they were after it: loading
    a model draws "Loading weights" in the middle of whatever the user is reading (a chat)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def import_wandb_integration_quietly() -> None:
    """transformers prints "[INFO] Running in WANDB offline mode" when its W&B integration is first
    imported with WANDB_MODE=offline: import it here, with stdout swallowed (this kernel and each
    ``hermes3.recipe.executor`` worker would otherwise print it into the cell)."""
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            import transformers.integrations.integration_utils  # noqa: F401
        except ImportError:
            pass
