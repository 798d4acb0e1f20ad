"""Benchmarks through lm-evaluation-harness, the tool the report used (§4.1, §5).

Suites:

* Hub suites, for real checkpoints on GPUs (they download their datasets): ``gpt4all``
  (7 tasks, 0-shot), ``agieval`` (lm-eval's ``agieval_nous``), ``leaderboard`` (Open LLM
  Leaderboard v2), ``table5`` (every lm-eval benchmark of Table 5 with its shot count).
* ``offline``: local lm-eval tasks over files in ``data/`` and a data build, which run here
  with no network. These are **stand-ins at demo scale**, not the report's benchmarks:

      gpt4all_standin  <- hermes_general, hermes_domain_expert        (knowledge questions)
      agieval_standin  <- hermes_math, hermes_coding, gsm8k_local, agieval_local  (exams)
      ifeval_standin   <- hermes_steering, hermes_content_generation, ifeval_local
      mtbench_standin  <- hermes_roleplay, hermes_tool_use             (assistant skills)

  ``hermes_*`` are the held-out synthetic items of ``hermes3 data build``, scored by their
  program checkers (tool calls exact, JSON schema, citations, unit tests in the sandbox);
  ``ifeval_local`` is IFEval's 541 prompts with lm-eval's own IFEval scorer;
  ``gsm8k_local`` is the GSM8K test split (final number); ``agieval_local`` is AGIEval's
  English multiple-choice exams (logiqa-en left out for its license) scored like
  ``agieval_nous`` (log-likelihood of "(A)".."(E)", acc_norm) with AGIEval's zero-shot prompt;
  ``bbh_local`` is BIG-Bench Hard's 27 tasks, 3-shot chain-of-thought with the official
  prompts (Table 5's "BBH 3-shot"), exact match on "the answer is ...". It is in no group.

``evaluate`` returns a tidy DataFrame (task, metric, value, stderr, n) plus group means,
lm-eval's raw results and its per-sample logs. Group averages follow Nous: ``acc_norm``
where a task has it, else ``acc``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hermes3.core.paths import resolve, resolve_if_local
from hermes3.eval.cache import _cache_dir, _store, cache_key
from hermes3.eval.lmeval_tasks import CONTENT_SPANS, offline_nltk, write_offline_tasks
from hermes3.eval.tasks import (
    GPT4ALL,
    HUB_SUITES,
    OFFLINE_TASKS,
    STANDIN_GROUPS,
    EvalError,
    primary_metric,
    resolve_tasks,
)
from hermes3.train.modeling import model_digest


@dataclass
class EvalResult:
    """``table``: tidy scores; ``raw``: lm-eval's results dict; ``samples``: per-sample logs."""

    table: object
    raw: dict
    samples: dict

    def score(self, task: str, metric: str | None = None) -> float:
        t = self.table
        rows = t[(t.task == task) & ((t.metric == metric) if metric else t.primary)]
        if rows.empty:
            raise KeyError(f"no score for {task} {metric or ''}")
        return float(rows.value.iloc[0])

def _check_model(model) -> None:
    if isinstance(model, (str, Path)):
        from hermes3.train.modeling import ModelFolderError, check_model_folder

        try:
            check_model_folder(model)  # a missing or broken local folder; Hub ids pass
        except ModelFolderError as e:
            raise EvalError(str(e)) from None
        if not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise EvalError(f"model {model} is not a local folder and HF_HUB_OFFLINE=1 is set")

def tidy(raw: dict):
    """lm-eval's ``results`` as rows (task, metric, value, stderr, n, primary)."""
    import pandas as pd

    rows = []
    for task, res in raw["results"].items():
        n = raw.get("n-samples", {}).get(task, {}).get("effective")
        metrics = [k.split(",")[0] for k in res if "," in k and "_stderr" not in k]
        prim = primary_metric(task, metrics)
        for key, value in res.items():
            if "," not in key or "_stderr" in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            err = res.get(f"{metric}_stderr,{filt}")
            rows.append({"task": task, "metric": metric, "value": float(value),
                         "stderr": float(err) if isinstance(err, (int, float)) else math.nan, "n": n,
                         "primary": metric == prim})
    return pd.DataFrame(rows, columns=["task", "metric", "value", "stderr", "n", "primary"])

def group_means(table) -> list[dict]:
    out = []
    prim = table[table.primary]
    for group, tasks in STANDIN_GROUPS.items():
        have = prim[prim.task.isin(tasks)]
        if len(have) == len(tasks):
            out.append({"task": group, "metric": "mean", "value": float(have.value.mean()), "stderr": math.nan,
                        "n": int(have.n.sum()), "primary": True})
    if set(GPT4ALL) <= set(prim.task):
        g = prim[prim.task.isin(GPT4ALL)]
        out.append({"task": "gpt4all", "metric": "mean", "value": float(g.value.mean()), "stderr": math.nan,
                    "n": int(g.n.sum()), "primary": True})
    return out

def evaluate(model, suite: str | list[str] = "offline", tokenizer=None, data_dir: str | Path | None = None,
             limit: int | None = None, batch_size: int = 16, max_gen_toks: int = 192, add_bos_token: bool = False,
             apply_chat_template: bool = False, out_dir: str | Path | None = None, wandb_run=None,
             backend: str = "hf", cache: bool = True, cache_only: bool = False, split: str = "test") -> EvalResult | None:
    """Run ``suite`` on ``model`` (a folder, Hub id or in-memory model) with lm-eval.

    Offline tasks carry prompts already rendered in the Hermes format, so
    ``apply_chat_template`` stays False for them; for Hub suites pass True (with
    ``fewshot_as_multiturn``) as the Open LLM Leaderboard does for chat models, and
    ``add_bos_token=True`` for Llama models. ``out_dir`` receives ``results.json``,
    ``samples_<task>.jsonl`` and ``scores.csv``. ``backend="vllm"`` uses lm-eval's vLLM
    model (needs vllm installed and a model folder or Hub id).

    Each task runs in its own lm-eval call (its own batches), so a task's scores do not depend on
    which other tasks share the call. With ``cache=True`` and a model folder, each task's lm-eval
    results are stored under ``runs/eval/cache/<key>`` ($HERMES3_EVAL_CACHE), keyed by the bytes of
    the model folder, the task's items and every setting here, so a pipeline re-run (or a second
    notebook scoring the same checkpoint, or a suite that shares tasks) reuses them instead of
    generating again, and one suite can be evaluated in parts by parallel workers
    (``hermes3.recipe.stages``). ``cache_only=True`` returns the cached result or None, never evaluating.
    ``split``: which held-out split the offline tasks draw from (``validation`` for choices, ``test``,
    the default, for findings; ``hermes3.eval.lmeval_tasks.write_offline_tasks``).
    """

    if isinstance(model, (str, Path)):  # `hermes3 eval runs/sft/tiny/final`: under $HERMES3_RUNS, as configs are
        model = resolve_if_local(str(model))
    if data_dir is not None:
        data_dir = resolve(data_dir)
    _check_model(model)
    tasks, needs_hub = resolve_tasks(suite)
    offline = [t for t in tasks if t in OFFLINE_TASKS]
    if any(t.startswith("hermes_") for t in offline) and data_dir is None:
        raise EvalError("the hermes_* tasks need data_dir (a `hermes3 data build` folder)")
    with tempfile.TemporaryDirectory(prefix="hermes3-tasks-") as tmp:
        if offline:
            write_offline_tasks(Path(tmp), data_dir if any(t.startswith("hermes_") for t in offline) else None,
                                limit, max_gen_toks, split=split)
        keys, units = {}, {}
        if cache and isinstance(model, (str, Path)) and Path(model).is_dir():
            digest = model_digest(Path(model))
            for task, shots in tasks.items():
                keys[task] = cache_key(digest, Path(tmp), task, shots, limit=limit, batch_size=batch_size,
                                       max_gen_toks=max_gen_toks, add_bos_token=add_bos_token,
                                       apply_chat_template=apply_chat_template, backend=backend)
                hit = _cache_dir() / keys[task] / "raw.json"
                if hit.exists():
                    units[task] = json.loads(hit.read_text())
        todo = {t: s for t, s in tasks.items() if t not in units}
        if todo and cache_only:
            return None
        if todo:
            fresh = _run_lm_eval(model, tokenizer, suite, todo, needs_hub, Path(tmp), batch_size,
                                 add_bos_token, apply_chat_template, backend, limit)
            for task, unit in fresh.items():
                # json round-trip, so a cache hit returns exactly what a miss returns
                units[task] = unit = json.loads(json.dumps(unit, default=str))
                if task in keys:
                    _store(keys[task], unit)
    raw, samples = {}, {}
    for task in tasks:  # the suite's order, whichever tasks came from the cache
        for k, v in units[task]["raw"].items():
            raw.setdefault(k, {}).update(v)
        samples.update(units[task]["samples"])
    return _finish(raw, samples, out_dir, wandb_run)

def _run_lm_eval(model, tokenizer, suite, tasks, needs_hub, task_dir: Path, batch_size, add_bos_token,
                 apply_chat_template, backend, limit):
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    offline = [t for t in tasks if t in OFFLINE_TASKS]
    if needs_hub:  # names first (lm-eval's local task index), then whether the Hub is reachable
        # A built-in suite's names are lm-eval's (tests/test_evaluate.py checks them): only a list of the
        # user's own needs lm-eval's task index, built once (~12 s on 2 cores, minutes on a busy machine).
        own = [] if isinstance(suite, str) and suite in HUB_SUITES else [t for t in tasks if t not in offline]
        index = TaskManager() if own else None
        unknown = [t for t in own if not index.match_tasks([t])]
        if unknown:
            raise EvalError(f"unknown task {unknown[0]!r} (not an lm-eval task nor one of {', '.join(OFFLINE_TASKS)})")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise EvalError(f"suite {suite!r} downloads its datasets from the Hugging Face Hub, but HF_HUB_OFFLINE=1 "
                            "is set; use suite='offline' here")

    offline_nltk()
    if backend == "vllm":
        try:
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError as e:
            raise EvalError(f"backend 'vllm' needs vllm installed ({e})") from None
        if not isinstance(model, (str, Path)):
            raise EvalError("backend 'vllm' takes a model folder or Hub id, not an in-memory model")
        lm = VLLM(pretrained=str(model), batch_size="auto", add_bos_token=add_bos_token)
    elif backend == "hf":
        spans_file = task_dir / CONTENT_SPANS
        spans = json.loads(spans_file.read_text()) if offline and spans_file.exists() else {}
        cls = _content_as_text(HFLM, spans) if spans else HFLM
        lm = _lm(model, tokenizer, batch_size, add_bos_token, _quiet(cls) if os.environ.get("TQDM_DISABLE") == "1" else cls)
    else:
        raise EvalError(f"backend must be 'hf' or 'vllm', got {backend!r}")
    # lm-eval's own task index (thousands of YAML files, ~12 s on 2 cores) only when a Hub task needs it
    tm = TaskManager(include_path=str(task_dir) if offline else None, include_defaults=len(offline) < len(tasks))
    units = {}
    for task, shots in tasks.items():  # one call per task: its batches hold its own requests only
        r = lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=shots, limit=None if offline else limit,
                                    task_manager=tm, log_samples=True, apply_chat_template=apply_chat_template,
                                    fewshot_as_multiturn=apply_chat_template, bootstrap_iters=1000,
                                    confirm_run_unsafe_code=False)
        units[task] = {"raw": {k: r.get(k, {}) for k in ("results", "n-samples", "configs", "versions")},
                       "samples": r.get("samples", {})}
    return units

def _finish(raw: dict, samples: dict, out_dir, wandb_run) -> EvalResult:
    """Tidy table (+ group means), files in ``out_dir``, W&B table."""
    import pandas as pd

    table = tidy(raw)
    table = pd.concat([table, pd.DataFrame(group_means(table))], ignore_index=True) if len(table) else table
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({k: raw[k] for k in ("results", "n-samples")}, indent=2,
                                                     default=str))
        for task, rows in samples.items():
            with (out / f"samples_{task}.jsonl").open("w") as f:
                for s in rows:
                    f.write(json.dumps({k: s.get(k) for k in ("doc_id", "target", "resps", "filtered_resps")} |
                                       {m: s.get(m) for m in s if m in ("acc", "exact_match", "prompt_level_strict_acc")},
                                       default=str) + "\n")
        table.to_csv(out / "scores.csv", index=False)
    if wandb_run is not None:
        from hermes3.core import tracking

        tracking.log_table(wandb_run, "scores", table)
    return EvalResult(table, raw, samples)

def _quiet(HFLM):
    """lm-eval's HF model without its progress bars: lm-eval passes ``disable=`` to tqdm itself,
    so ``TQDM_DISABLE`` (batch notebooks, ``hermes3.recipe.notebook``) does not reach them."""

    class QuietLM(HFLM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(requests, disable_tqdm=True)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood_rolling(requests, disable_tqdm=True)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(requests, disable_tqdm=True)

    return QuietLM

def _content_as_text(HFLM, spans: dict[str, list]):
    """lm-eval's HF model, tokenizing the prompts listed in ``spans`` with their data as
    text (``hermes3.format.encoding.encode``); every other string as lm-eval does."""
    import torch

    from hermes3.format.encoding import encode

    class ContentAsTextLM(HFLM):
        def _affixes(self, add_special_tokens):
            # what the tokenizer adds around a text (e.g. Llama's BOS) under this setting
            tok = self.tokenizer
            bare = tok.encode("a", add_special_tokens=False)
            full = tok.encode("a") if add_special_tokens is None else tok.encode("a", add_special_tokens=add_special_tokens)
            k = next(i for i in range(len(full)) if full[i:i + len(bare)] == bare)
            return full[:k], full[k + len(bare):]

        def _encode(self, string, add_special_tokens):
            pre, post = self._affixes(add_special_tokens)
            return pre + encode(string, self.tokenizer, [tuple(x) for x in spans[string]])[0] + post

        def tok_encode(self, string, add_special_tokens=None, left_truncate_len=None, **kwargs):
            if string not in spans:
                return super().tok_encode(string, add_special_tokens=add_special_tokens,
                                          left_truncate_len=left_truncate_len, **kwargs)
            flag = add_special_tokens if add_special_tokens is not None else self.add_bos_token
            ids = self._encode(string, flag)
            return ids[-left_truncate_len:] if left_truncate_len else ids

        def tok_batch_encode(self, strings, padding_side="left", left_truncate_len=None, truncation=False):
            if not any(s in spans for s in strings):
                return super().tok_batch_encode(strings, padding_side, left_truncate_len, truncation)
            from lm_eval.models.utils import has_bos_prefix

            flag = self.add_bos_token  # as lm-eval decides for a causal model
            if has_bos_prefix(strings[0], getattr(self.tokenizer, "bos_token", None)):
                flag = False
            rows = [self._encode(s, flag) if s in spans else
                    (self.tokenizer.encode(s) if flag is None else self.tokenizer.encode(s, add_special_tokens=flag))
                    for s in strings]
            if left_truncate_len:
                rows = [r[-left_truncate_len:] for r in rows]
            n, pad = max(map(len, rows)), self.tokenizer.pad_token_id
            fill = [[pad] * (n - len(r)) for r in rows]
            ids = [f + r if padding_side == "left" else r + f for f, r in zip(fill, rows)]
            mask = [[0] * len(f) + [1] * len(r) if padding_side == "left" else [1] * len(r) + [0] * len(f)
                    for f, r in zip(fill, rows)]
            return torch.tensor(ids), torch.tensor(mask)

    return ContentAsTextLM

def _lm(model, tokenizer, batch_size, add_bos_token, HFLM):
    """An lm-eval HF model. Generation stops at <|im_end|> (the turn end), so the model's
    generation config gets the tokenizer's eos; sdpa attention, since lm-eval pads left."""
    from transformers import AutoTokenizer

    from hermes3.train.modeling import load_model

    if isinstance(model, (str, Path)):
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
        model = load_model(model, attn_implementation="sdpa", use_cache=None)
    elif tokenizer is None:
        raise EvalError("an in-memory model needs its tokenizer")
    else:
        model.set_attn_implementation("sdpa")
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos_token,
                max_length=model.config.max_position_embeddings)
