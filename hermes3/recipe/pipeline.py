"""The reproduction pipeline: stages keyed by their config, and the notebook runner.

``hermes3 reproduce --scale demo`` (``make demo``) executes the notebooks (``notebooks/NN_*.py`` sources) in order,
each in a fresh kernel; the notebooks build what they need through the stage functions here:

* ``data(cfg)``, ``sft(cfg)``, ``dpo(cfg)`` return the stage's output folder. An output built
  from the same config (saved beside it) is reused; one built from another config is moved
  aside to ``<name>.stale-<time>`` (nothing is deleted) and rebuilt; an SFT or DPO run that was
  interrupted, or whose final model was damaged since, resumes from its last complete checkpoint
  (``save_steps``; with none it starts over in the same folder). The base model (``base_model``) is
  keyed by a config hash in its folder name and evaluations by model bytes (``evaluate``).
* A failing notebook stops the run with one line naming the stage and the error; the executed
  notebook keeps the traceback, and the next run resumes: finished stages are reused.

>>> same_config({"lr": 1e-3, "resume": True}, {"lr": 1e-3, "resume": False})
True
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from hermes3.core.config import to_dict
from hermes3.core.paths import REPO, env_overrides, resolve, runs, runs_root
from hermes3.recipe.cluster import barrier
from hermes3.train.modeling import model_digest

# Settings that do not change what a stage builds.
NOT_KEYS = {"resume", "wandb_mode", "logging_steps", "out_dir", "output_dir"}


class StageError(RuntimeError):
    """A pipeline stage (notebook) failed; the message is one line."""


def same_config(saved: dict, wanted: dict, defaults: dict | None = None) -> bool:
    """Whether a saved config equals the wanted one (``NOT_KEYS`` aside). A field missing from
    ``saved`` was added to the config class after that run, which therefore ran with the
    field's default: it is taken from ``defaults`` (``to_dict`` of the class's defaults).

    >>> same_config({"lr": 1.0}, {"lr": 1.0, "global_batch": 0}, defaults={"global_batch": 0})
    True
    >>> same_config({"lr": 1.0}, {"lr": 1.0, "global_batch": 8}, defaults={"global_batch": 0})
    False
    """
    saved = {**{k: v for k, v in (defaults or {}).items() if k not in saved}, **saved}
    norm = lambda d: json.loads(json.dumps({k: v for k, v in d.items() if k not in NOT_KEYS}, default=str))  # noqa: E731
    return norm(saved) == norm(wanted)


def _defaults(cfg) -> dict:
    return to_dict(type(cfg)())


def _set_aside(out: Path, why: str) -> None:
    stamp = time.strftime('%Y%m%d-%H%M%S')
    stale, k = out.with_name(f"{out.name}.stale-{stamp}"), 1
    while stale.exists():  # set aside twice within a second: never rename onto the first
        stale, k = out.with_name(f"{out.name}.stale-{stamp}-{k}"), k + 1
    out.rename(stale)
    print(f"[hermes3] {out} {why}: moved to {stale.name}, rebuilding", file=sys.stderr)


def _saved(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _intact(model_dir: Path) -> bool:
    """A finished model folder whose files were damaged since (a truncated copy, a bad disk) is
    rebuilt rather than handed to the next stage; the damage is named in one line."""
    from hermes3.train.modeling import ModelFolderError, check_model_folder

    try:
        check_model_folder(model_dir)
        return True
    except ModelFolderError as e:
        print(f"[hermes3] {e}: rebuilding it", file=sys.stderr)
        shutil.rmtree(model_dir)
        return False


def data(cfg) -> Path:
    """The data build of ``cfg`` (a ``DataConfig``), built unless an equal one exists."""
    from hermes3.data.build import build

    out = cfg.output()
    manifest = _saved(out / "manifest.json")
    if manifest is not None and same_config(manifest.get("config", {}), to_dict(cfg), _defaults(cfg)):
        return out
    if out.exists():
        _set_aside(out, "was built from another data config" if manifest else "is incomplete")
    build(cfg, progress=False)
    return out


# A run records the digest of the model it started from: a base re-built in the same folder
# (another pre-training config) must not hand its old fine-tune to the next stage.
_MODEL_DIGEST = "model_digest.txt"


def _same_model(out: Path, digest: str | None) -> bool:
    try:
        return (out / _MODEL_DIGEST).read_text().strip() == (digest or "")
    except OSError:
        return True  # a run from before digests were recorded: its config is all we have


def _state(cfg, done: str, model_dir: str, digest: str | None) -> tuple[str, str]:
    """``(state, why)``: ``complete`` (reuse), ``resume`` (same config and model, not finished) or
    ``fresh``, with why an existing folder cannot be continued. ``digest``: ``model_digest(cfg.model)``
    (the caller's: hashing a large model's weights is not free)."""
    out = cfg.output()
    saved = _saved(out / "config.json")
    if saved is None:
        return "fresh", "holds no config.json"
    if not same_config(saved, to_dict(cfg), _defaults(cfg)):
        return "fresh", "was trained with another config"
    if not _same_model(out, digest):
        return "fresh", "started from another model"
    return ("complete" if (out / done).exists() and _intact(out / model_dir) else "resume"), ""


def _run_stage(cfg, train, done: str, model_dir: str) -> Path:
    """What SFT and DPO share: reuse a complete run (``done`` marker and an intact ``model_dir``)
    built from the same config and model, resume one that is not complete, else set the old
    folder aside and train fresh; the run then records the digest of the model it started from.
    In a job of several processes every one decides first, then the main one alone changes the
    folder, then all train together."""
    from hermes3.train.stage import is_main_process

    out, digest = cfg.output(), model_digest(resolve(cfg.model))
    state, why = _state(cfg, done, model_dir, digest)
    barrier()
    if state == "complete":
        return out
    if is_main_process():
        if state == "resume":
            (out / done).unlink(missing_ok=True)  # its model was damaged: not whole until retrained
        elif out.exists() and any(out.iterdir()):
            _set_aside(out, why)
    barrier()
    out = train(replace(cfg, resume=state == "resume"))  # resume: from the last complete checkpoint, if any
    if is_main_process():
        (out / _MODEL_DIGEST).write_text(digest or "")
    return out


def sft(cfg) -> Path:
    """The SFT run of ``cfg``: reused when complete, resumed when interrupted, else trained."""
    from hermes3.train.sft import COMPLETE, train

    return _run_stage(cfg, train, f"final/{COMPLETE}", "final")


def sft_complete(cfg) -> bool:
    """Whether ``sft(cfg)`` would only read a finished run (nothing to train)."""
    from hermes3.train.sft import COMPLETE

    return _state(cfg, f"final/{COMPLETE}", "final", model_digest(resolve(cfg.model)))[0] == "complete"


def dpo(cfg) -> Path:
    """The DPO run of ``cfg``: reused when complete, resumed when interrupted (from its last
    complete ``checkpoint-N``, as SFT), else trained from a fresh adapter."""
    from hermes3.train.dpo import COMPLETE, train

    return _run_stage(cfg, train, COMPLETE, "merged")


def dpo_complete(cfg) -> bool:
    """Whether ``dpo(cfg)`` would only read a finished run (nothing to train)."""
    from hermes3.train.dpo import COMPLETE

    return _state(cfg, COMPLETE, "merged", model_digest(resolve(cfg.model)))[0] == "complete"


def pretrained(cfg) -> bool:
    """Whether ``cfg.out_dir`` holds this config's base, pre-trained on this data."""
    out = Path(cfg.out_dir)
    saved = out / "metrics.json"
    if not saved.exists():
        return False
    want = {k: v for k, v in to_dict(cfg).items() if k != "out_dir"}
    have = json.loads(saved.read_text()).get("config", {})
    return same_config(have, want) and _same_data(out, cfg.data)


def base(cfg) -> Path:
    """``pretrain(cfg)`` into ``cfg.out_dir``, unless it already holds that base; a folder that
    holds another config's or data's model is set aside first."""
    from hermes3.train.base_model import pretrain

    out = Path(cfg.out_dir)
    if pretrained(cfg):
        return out
    if (out / "metrics.json").exists():
        _set_aside(out, "was pre-trained with another config or data")
    folder = pretrain(cfg, progress=False)
    (folder / "data_manifest.json").write_text((Path(cfg.data) / "manifest.json").read_text())
    return folder


def _same_data(out: Path, data: str) -> bool:
    mine = out / "data_manifest.json"
    return mine.exists() and mine.read_text() == (Path(data) / "manifest.json").read_text()


def notebooks(names: list[str] | None = None, folder: Path = REPO / "notebooks") -> list[Path]:
    """The notebooks' sources, ``NN_name.py`` in jupytext's percent format (reviewed as code;
    each is paired with the executed ``NN_name.ipynb`` that ``make demo`` writes beside it)."""
    nbs = sorted(Path(folder).glob("[0-9][0-9]_*.py"))
    if names:
        nbs = [p for p in nbs if p.stem in names or p.name in names or p.name[:2] in names]
    return nbs


# tqdm's frame: "desc:  42%|####      | 5/12 [00:03<00:04, 1.9it/s]"
_BAR = re.compile(r"\d+%\|")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def _is_bar(line: str) -> bool:
    """Whether ``line`` holds progress-bar frames (``\\r``-separated) and nothing else."""
    frames = [f for f in re.split(r"[\r\n]+", line) if f.strip()]
    return bool(frames) and all(_BAR.search(f) for f in frames)


def _without_bars(out: dict) -> dict | None:
    """An output less its progress-bar text; None when that was all it held (a bar's first frame,
    saved frozen: a stream, or a tqdm widget's display whose plain text is the frame)."""
    if out.get("output_type") == "stream":
        # at newlines only: str.splitlines would also cut a bar between its frames (carriage returns)
        lines = re.findall(r"[^\n]*\n|[^\n]+$", out["text"])
        out["text"] = "".join(line for line in lines if not _is_bar(line))
        return out if out["text"] else None
    data = out.get("data", {})
    widget_only = out.get("output_type") == "display_data" and set(data) <= {"text/plain", _WIDGET}
    return None if widget_only and _is_bar(data.get("text/plain", "")) else out


def _make_stable(executed: Path, source: Path) -> None:
    """Cell ids by position and papermill's paths by name, where jupytext and papermill put random
    ids and temporary folders, paths in outputs relative (``runs/...`` under the runs root, the rest
    to the checkout: a reader's folder is not ours), and no progress-bar text (a bar is saved as its
    first frame, which tells the reader nothing): two runs of a notebook then differ only where their
    outputs do."""
    import nbformat

    def relative(x):
        return x.replace(f"{runs_root()}/", "runs/").replace(f"{REPO}/", "") if isinstance(x, str) else x

    book = nbformat.read(executed, as_version=4)
    for i, cell in enumerate(book.cells):
        cell.id = f"cell-{i:03d}"
        if "outputs" in cell:
            cell.outputs = [o for o in map(_without_bars, cell.outputs) if o is not None]
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = relative(out["text"])
            for kind, value in out.get("data", {}).items():
                out["data"][kind] = relative(value)
    if not any(_WIDGET in o.get("data", {}) for c in book.cells for o in c.get("outputs", [])):
        book.metadata.pop("widgets", None)  # the state of widgets no output shows any more
    meta = book.metadata.get("papermill", {})
    if "input_path" in meta:
        meta["input_path"], meta["output_path"] = source.name, executed.name
    nbformat.write(book, executed)


# How often the terminal hears of a running notebook's jobs (the latest state only; a job takes minutes).
RELAY_SECONDS = 2.0


def time_left(elapsed: float, previous: float | None, done: int = 0, total: int = 0,
              seconds: float = 0.0) -> float | None:
    """Seconds a notebook has left: its previous run's duration less ``elapsed``; without one, or
    once past it, the pace of its running ``run_all`` call (``done`` of ``total`` jobs in
    ``seconds``); None when neither says.

    >>> time_left(120, previous=600), time_left(700, previous=600, done=3, total=4, seconds=300)
    (480, 100.0)
    >>> time_left(10, previous=None) is None
    True
    """
    if previous is not None and elapsed < previous:
        return previous - elapsed
    return seconds * (total - done) / done if done else None


def _minutes(seconds: float) -> str:
    return "<1 min" if seconds < 60 else f"~{round(seconds / 60)} min"


class _Status:
    """The terminal's lines for notebook ``k`` of ``names``; ``previous``: seconds each took last time."""

    def __init__(self, k: int, names: list[str], previous: dict):
        self.k, self.names, self.previous, self.start = k, names, previous, time.time()
        self.head = f"[hermes3] ({k}/{len(names)}) {names[k - 1]}"

    def left(self, done: int = 0, total: int = 0, seconds: float = 0.0) -> str:
        """``", ~6 min left (~20 min in all)"``, as far as the times known say."""
        here = time_left(time.time() - self.start, self.previous.get(self.names[self.k - 1]), done, total, seconds)
        if here is None:
            return ""
        later = [self.previous.get(name) for name in self.names[self.k:]]
        everything = f" ({_minutes(here + sum(later))} in all)" if later and None not in later else ""
        return f", {_minutes(here)} left{everything}"

    def progress(self, state: dict) -> str:
        """One line from a kernel's ``executor.Progress`` state."""
        running = f" ({', '.join(state['running'])} running)" if state["running"] else ""
        return (f"{self.head}: {state['desc']}: {state['done']}/{state['total']} jobs done{running}"
                f"{self.left(state['done'], state['total'], state['seconds'])}")

    def show(self, state: dict) -> None:
        """Print a state with jobs running; a finished call says nothing that the next line or the
        notebook's "done in" does not (and a stage reused from disk finishes at once, every time)."""
        if state["running"]:
            print(self.progress(state), file=sys.stderr, flush=True)


def _new_lines(path: Path, pos: int) -> tuple[list[str], int]:
    """The complete lines appended to ``path`` after byte ``pos``, and where the next look starts."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:  # no run_all has reported yet
        return [], pos
    end = data.rfind(b"\n") + 1
    return data[:end].decode().splitlines(), pos + end


def _relay(path: Path, show, stop: threading.Event) -> None:
    """Until ``stop`` is set, every ``RELAY_SECONDS``: the latest state a kernel appended to ``path``
    (JSON lines, ``executor.Progress``) to ``show``; states written between two looks are summed up
    by the last."""
    pos = 0
    while not stop.wait(RELAY_SECONDS):
        lines, pos = _new_lines(path, pos)
        if lines:
            show(json.loads(lines[-1]))


@contextlib.contextmanager
def relaying(path: Path, show):
    """A kernel started inside the block reports its jobs to ``path`` (``$HERMES3_PROGRESS``), and
    ``show`` hears of them here: the kernel's own output goes into the saved notebook."""
    from hermes3.recipe.executor import PROGRESS

    stop = threading.Event()
    thread = threading.Thread(target=_relay, args=(path, show, stop), daemon=True)
    with env_overrides({PROGRESS: str(path)}):
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _kernel_config():
    """Kernels with CurveZMQ keys from the kernel manager (the python3 kernelspec declares support):
    their local TCP traffic is encrypted, and ipykernel no longer warns "Kernel is running over TCP
    without encryption" on the terminal once per notebook. ``auto``: a kernel without support still
    starts (and warns)."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto"}})


def run_notebooks(scale: str, out_dir: Path | None = None, names: list[str] | None = None,
                  folder: Path = REPO / "notebooks") -> list[tuple[str, float]]:
    """Execute the notebooks in order with papermill at ``scale``, each in a fresh kernel, from
    their jupytext sources; returns ``[(name, seconds)]``. Raises ``StageError`` (one line) at the first that fails.

    Only the demo scale writes the committed copies (``notebooks/`` and ``figures/``); any other
    scale writes its executed notebooks to ``<runs>/<scale>/notebooks`` (or ``out_dir``) and
    their figures to ``figures/`` inside it,
    so a smoke run never touches a tracked file.

    The terminal shows each notebook's jobs as they finish and the time left, estimated from the
    seconds each notebook took last time (``<runs>/<scale>/notebook_times.json``).
    """
    import os
    import tempfile

    import jupytext
    import papermill as pm

    if out_dir is None and scale != "demo":
        out_dir = runs(scale, "notebooks")
    # Quiet kernels (hermes3.recipe.notebook): no progress bars in saved notebooks. tqdm reads TQDM_DISABLE
    # when it is imported, so it must be in the kernel's environment from the start.
    env = {"HERMES3_BATCH": "1", "TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    if out_dir is not None and "HERMES3_FIGURES" not in os.environ:
        env["HERMES3_FIGURES"] = str(Path(out_dir) / "figures")
    times_file = runs(scale, "notebook_times.json")
    previous = _saved(times_file) or {}
    done = []
    with env_overrides(env):  # papermill kernels inherit our environment
        total = notebooks(names, folder)
        for k, nb in enumerate(total, 1):
            status = _Status(k, [p.stem for p in total], previous)
            dest = Path(out_dir or nb.parent) / f"{nb.stem}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            print(f"{status.head} at scale={scale} ...{status.left()}", file=sys.stderr, flush=True)
            try:
                with tempfile.TemporaryDirectory(prefix="hermes3-nb-") as tmp:
                    source = Path(tmp) / dest.name
                    jupytext.write(jupytext.read(nb), source)
                    with relaying(Path(tmp) / "progress.jsonl", status.show):
                        pm.execute_notebook(str(source), str(dest), parameters={"scale": scale}, cwd=str(nb.parent),
                                            kernel_name="python3", progress_bar=False, config=_kernel_config())
                _make_stable(dest, nb)
            except pm.PapermillExecutionError as e:
                last = (e.evalue or "").strip().splitlines()
                raise StageError(f"stage {nb.stem} failed: {e.ename}: {last[-1] if last else ''} "
                                 f"(traceback in {dest}; re-run to resume: finished stages are reused)") from None
            done.append((nb.stem, time.time() - status.start))
            _write_json(times_file, {**previous, **dict(done)})
            print(f"{status.head} done in {done[-1][1]:.0f}s", file=sys.stderr, flush=True)
    return done


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
