"""The jobs the recipe hands to the executor: module-level functions of one picklable argument,
so any backend can run them in another process."""

from __future__ import annotations

from hermes3.recipe import pipeline


def evaluate_job(args: tuple, cache_only: bool = False):
    """``evaluate`` of ``(model, suite, data_dir, limit, max_gen_toks, split)``: a job for ``hermes3.recipe.executor``."""
    from hermes3.eval.evaluate import evaluate

    model, suite, data_dir, limit, max_gen_toks, split = args
    return evaluate(model, suite, data_dir=data_dir, limit=limit, max_gen_toks=max_gen_toks, cache_only=cache_only,
                    split=split)


def heldout():
    """``hermes3.eval.heldout``, imported when needed (it imports torch; the recipe's import does not)."""
    from hermes3.eval import heldout

    return heldout


def heldout_job(args: tuple):
    """``heldout_cached(model, data, split, limit, cache)``: the model's held-out scores (cached)."""
    return heldout().heldout_cached(*args)


def fp8_job(args: tuple):
    """FP8_DYNAMIC of ``(source folder, output folder)`` (``hermes3.convert.fp8.convert``)."""
    from hermes3.convert.fp8 import convert

    src, out = args
    return convert(src, out, overwrite=True)


def final_heldout_scores(args: tuple) -> dict:
    """``{split: heldout_scores}`` of a finished SFT run's final model, ``(config, data, categories,
    limit, splits)``: the LR search chooses on validation and reports the choice on test too."""
    from hermes3.eval.heldout import heldout_scores

    cfg, data, categories, limit, splits = args
    final = pipeline.sft(cfg) / "final"
    return {split: heldout_scores(final, data, categories, limit=limit, split=split) for split in splits}


def sft_then_heldout(args: tuple) -> None:
    """An SFT run and its final model's held-out scores, in one ``hermes3.recipe.executor`` job:
    ``(config, data, split, limit, cache)``."""
    cfg, *settings = args
    heldout().heldout_cached(pipeline.sft(cfg) / "final", *settings)
