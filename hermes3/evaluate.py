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
where a task has it, else ``acc`` (spec §5.1).
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hermes3.chat import render
from hermes3.errors import Hermes3Error
from hermes3.loaders import read_records
from hermes3.paths import REPO, resolve, resolve_if_local, runs

SOURCES = REPO / "data" / "sources"

GPT4ALL = ("arc_challenge", "arc_easy", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande")
# Table 5 rows that lm-eval covers, with the report's shot counts (MT-Bench is separate).
TABLE5_TASKS = {"agieval_nous": 0, "arc_challenge": 0, "arc_easy": 0, "boolq": 0, "leaderboard_bbh": 3,
                "leaderboard_gpqa": 0, "hellaswag": 10, "leaderboard_ifeval": 0, "leaderboard_math_hard": 4,
                "mmlu": 5, "leaderboard_mmlu_pro": 5, "leaderboard_musr": 0, "openbookqa": 0, "piqa": 0,
                "truthfulqa_mc2": 0, "winogrande": 5}
HUB_SUITES = {
    "gpt4all": {t: 0 for t in GPT4ALL},
    "agieval": {"agieval_nous": 0},
    "leaderboard": {"leaderboard_bbh": 3, "leaderboard_gpqa": 0, "leaderboard_ifeval": 0,
                    "leaderboard_math_hard": 4, "leaderboard_mmlu_pro": 5, "leaderboard_musr": 0},
    "table5": TABLE5_TASKS,
}
CATEGORY_TASKS = ("general", "domain_expert", "math", "roleplay", "coding", "tool_use", "content_generation",
                  "steering")
OFFLINE_TASKS = tuple(f"hermes_{c}" for c in CATEGORY_TASKS) + ("ifeval_local", "gsm8k_local", "agieval_local", "bbh_local")
AGIEVAL_EN = ("aqua-rat", "lsat-ar", "lsat-lr", "lsat-rc", "sat-en", "sat-en-without-passage", "sat-math")
# Seconds per task for the demo's SFT model on one thread of the slow 2-core demo host (measured
# 2026-12-03, each task alone, max_gen_toks 128): how hermes3.recipe splits one evaluation into
# parts of equal time for parallel workers. Only the split depends on it, never a score.
TASK_SECONDS = {"hermes_general": 5.0, "hermes_domain_expert": 3.8, "hermes_math": 5.5, "hermes_roleplay": 9.2,
                "hermes_coding": 16.7, "hermes_tool_use": 17.1, "hermes_content_generation": 4.0,
                "hermes_steering": 8.2, "ifeval_local": 9.8, "gsm8k_local": 10.2, "agieval_local": 55.3}
STANDIN_GROUPS = {
    "gpt4all_standin": ("hermes_general", "hermes_domain_expert"),
    "agieval_standin": ("hermes_math", "hermes_coding", "gsm8k_local", "agieval_local"),
    "ifeval_standin": ("hermes_steering", "hermes_content_generation", "ifeval_local"),
    "mtbench_standin": ("hermes_roleplay", "hermes_tool_use"),
}
# The tasks of the four groups (every offline task but BBH): what Tables 2, 4 and 5 use at demo
# scale, so an epoch checkpoint scored for Table 2 is a cache hit when scored again as final/.
STANDIN_TASKS = tuple(t for t in OFFLINE_TASKS if any(t in g for g in STANDIN_GROUPS.values()))


def standin_categories(groups=tuple(STANDIN_GROUPS)) -> dict[str, list[str]]:
    """Each stand-in group's synthetic data categories (its ``hermes_*`` tasks): the held-out
    items whose reference log-likelihood scores the group where generation sits at the floor.

    >>> standin_categories(["gpt4all_standin", "mtbench_standin"])
    {'gpt4all_standin': ['general', 'domain_expert'], 'mtbench_standin': ['roleplay', 'tool_use']}
    """
    return {g: [t.removeprefix("hermes_") for t in STANDIN_GROUPS[g] if t.startswith("hermes_")] for g in groups}


PRIMARY_METRIC = {"ifeval_local": "prompt_level_strict_acc", "leaderboard_ifeval": "prompt_level_strict_acc"}


class EvalError(Hermes3Error):
    """A bad model path, task or suite, reported in one line."""


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


def primary_metric(task: str, metrics: list[str]) -> str:
    """Nous' rule: acc_norm where the task has it, else acc (else the first metric)."""
    if task in PRIMARY_METRIC:
        return PRIMARY_METRIC[task]
    for m in ("acc_norm", "acc", "exact_match", "prompt_level_strict_acc"):
        if m in metrics:
            return m
    return sorted(metrics)[0]


def gpt4all_average(scores: dict[str, dict[str, float]]) -> float:
    """Mean over the seven GPT4All tasks of acc_norm (where present) else acc.

    >>> round(gpt4all_average({t: {"acc": v} for t, v in zip(GPT4ALL, [65.10, 84.39, 88.29, 85.82, 49.20, 84.87, 79.24])}), 2)
    76.7
    """
    missing = [t for t in GPT4ALL if t not in scores]
    if missing:
        raise EvalError(f"GPT4All average needs all seven tasks; missing {missing}")
    return sum(scores[t][primary_metric(t, list(scores[t]))] for t in GPT4ALL) / len(GPT4ALL)


# ------------------------------------------------------------------------ offline tasks

# A local JSON task: the header every offline task YAML starts with.
_LOCAL = """task: {task}
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
"""
_YAML = _LOCAL + """output_type: generate_until
doc_to_text: {text_field}
doc_to_target: target
generation_kwargs:
  until: ["<|im_end|>"]
  do_sample: false
  max_gen_toks: {max_gen_toks}
process_results: !function hermes_utils.{scorer}
metric_list:
{metrics}
metadata:
  version: 1.0
"""
_UTILS = '''"""Scorers of the hermes3 offline lm-eval tasks (written by hermes3.evaluate)."""
import json

from hermes3.data.checkers import check


def process_check(doc, results):
    ok, _ = check(json.loads(doc["check"]), results[0])
    return {"acc": float(ok)}


def process_ifeval(doc, results):
    from lm_eval.tasks.ifeval.utils import process_results

    return process_results(doc, results)


def agg_inst_level_acc(items):
    flat = [x for sub in items for x in sub]
    return sum(flat) / len(flat)
'''
_MC_YAML = _LOCAL + """output_type: multiple_choice
doc_to_text: prompt
doc_to_target: gold
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
_ACC = "  - metric: acc\n    aggregation: mean\n    higher_is_better: true"
_IFEVAL = "\n".join(
    f"  - metric: {m}\n    aggregation: {'!function hermes_utils.agg_inst_level_acc' if m.startswith('inst') else 'mean'}\n"
    "    higher_is_better: true" for m in ("prompt_level_strict_acc", "inst_level_strict_acc",
                                          "prompt_level_loose_acc", "inst_level_loose_acc"))


def offline_nltk() -> None:
    """IFEval's scorer needs NLTK ``punkt_tab``, which it downloads. Offline, empty model
    files make NLTK's sentence splitter work without abbreviation knowledge (a known,
    small deviation from online IFEval scoring)."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english")
        return
    except LookupError:
        pass
    folder = runs("nltk_data")
    eng = folder / "tokenizers" / "punkt_tab" / "english"
    eng.mkdir(parents=True, exist_ok=True)
    for f in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        (eng / f).touch()
    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))
    os.environ["NLTK_DATA"] = str(folder)


CONTENT_SPANS = "content_spans.json"


def _content_spans(rows: list[dict], field: str, chats: dict, plain_text: bool = False) -> dict[str, list]:
    """``{prompt: content spans}`` for the prompts whose data holds a control-token string.

    lm-eval tokenizes a prompt string whole, so a ``<|im_end|>`` quoted in a question would
    become a real turn boundary. The spans let ``_content_as_text`` tokenize that data as
    text (``hermes3.encoding``). A chat prompt's spans come from rendering its messages
    (``chats``: prompt -> (messages, tools)); a ``plain_text`` prompt is data throughout.
    """
    from hermes3.chat import render_with_spans
    from hermes3.encoding import special_tokens_in

    out = {}
    for r in rows:
        text = r[field]
        if not special_tokens_in(text):
            continue
        if plain_text:
            out[text] = [(0, len(text))]
            continue
        messages, tools = chats[text]
        spans = render_with_spans(messages, tools, add_generation_prompt=True, content=True)[2]
        if any(special_tokens_in(text[a:b]) for a, b in spans):
            out[text] = spans
    return out


def write_offline_tasks(folder: Path, data_dir: Path | None, limit: int | None = None,
                        max_gen_toks: int = 192, real_limit: int | None = 100) -> list[str]:
    """Write the offline task YAMLs, their JSONL data (prompts rendered in the Hermes
    format, ready for generation) and the scorer module into ``folder``; returns the task
    names. ``data_dir`` is a ``hermes3 data build`` folder (for the synthetic items)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hermes_utils.py").write_text(_UTILS)
    names, spans, chats = [], {}, {}

    def chat(messages, tools=None):
        text = render(messages, tools, add_generation_prompt=True)
        chats[text] = (messages, tools)
        return text

    def write(task, rows, scorer="process_check", metrics=_ACC, gen=max_gen_toks, text_field="prompt", cap=None,
              plain_text=False):
        path = folder / f"{task}.jsonl"
        rows = rows[:limit if limit is not None else cap]
        spans.update(_content_spans(rows, text_field, chats, plain_text))
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        (folder / f"{task}.yaml").write_text(_YAML.format(task=task, path=path.resolve(), scorer=scorer, metrics=metrics,
                                                          max_gen_toks=gen, text_field=text_field))
        names.append(task)

    if data_dir is not None:
        for cat in CATEGORY_TASKS:
            f = Path(data_dir) / "eval" / f"{cat}.jsonl"
            if not f.exists():
                raise EvalError(f"{f} missing: is {data_dir} a `hermes3 data build` folder?")
            items = read_records(f)
            write(f"hermes_{cat}", [{"id": it["id"], "prompt": chat(it["prompt"], it["tools"]),
                                     "target": it["reference"], "check": json.dumps(it["check"])} for it in items])
    ifeval = read_records(SOURCES / "ifeval" / "input_data.jsonl")
    # IFEval's checker reads the raw doc["prompt"]; the model sees it rendered as a chat turn.
    write("ifeval_local", [{**r, "target": "", "chat_prompt": chat([{"role": "user", "content": r["prompt"]}])}
                           for r in ifeval],
          scorer="process_ifeval", metrics=_IFEVAL, gen=max(max_gen_toks, 256), text_field="chat_prompt", cap=real_limit)
    gsm = read_records(SOURCES / "gsm8k" / "test.jsonl")
    write("gsm8k_local", [{"prompt": chat([{"role": "user", "content": r["question"]}]), "target": r["answer"],
                           "check": json.dumps({"kind": "number", "answer": _gsm_answer(r["answer"])})} for r in gsm],
          cap=real_limit)
    # AGIEval English: AGIEval's own zero-shot prompt (its dataset_loader.convert_zero_shot)
    rows = []
    for name in AGIEVAL_EN:
        for r in read_records(SOURCES / "agieval_en" / f"{name}.jsonl"):
            letters = "ABCDEFG"[: len(r["options"])]
            rows.append({"prompt": (r.get("passage") or "") + "Q: " + r["question"] + " Answer Choices: "
                         + " ".join(r["options"]) + "\nA: Among A through " + letters[-1] + ", the answer is",
                         "choices": [f"({c})" for c in letters], "gold": letters.index(r["label"]), "source": name})
    random.Random(0).shuffle(rows)  # mix the seven exams before any cap
    path = folder / "agieval_local.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for r in rows[:limit if limit is not None else real_limit]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (folder / "agieval_local.yaml").write_text(_MC_YAML.format(task="agieval_local", path=path.resolve()))
    names.append("agieval_local")
    # BIG-Bench Hard, 3-shot CoT with the official prompts; plain text, stop at the next question
    rows = []
    for f in sorted((SOURCES / "bbh" / "bbh").glob("*.json")):
        shots = (SOURCES / "bbh" / "cot-prompts" / f"{f.stem}.txt").read_text().split("-----\n", 1)[-1].strip()
        for ex in json.loads(f.read_text())["examples"]:
            rows.append({"prompt": f"{shots}\n\nQ: {ex['input']}\nA: Let's think step by step.", "target": ex["target"],
                         "check": json.dumps({"kind": "answer_is", "answer": ex["target"]})})
    random.Random(0).shuffle(rows)
    write("bbh_local", rows, cap=real_limit, plain_text=True)
    (folder / "bbh_local.yaml").write_text((folder / "bbh_local.yaml").read_text().replace(
        'until: ["<|im_end|>"]', 'until: ["<|im_end|>", "\\n\\nQ:"]'))
    (folder / CONTENT_SPANS).write_text(json.dumps(spans, ensure_ascii=False))
    return names


def _gsm_answer(answer: str):
    v = float(answer.split("####")[-1].strip().replace(",", ""))
    return int(v) if v.is_integer() else v


# ------------------------------------------------------------------------------ running


def _check_model(model) -> None:
    if isinstance(model, (str, Path)):
        from hermes3.modeling import ModelFolderError, check_model_folder

        try:
            check_model_folder(model)  # a missing or broken local folder; Hub ids pass
        except ModelFolderError as e:
            raise EvalError(str(e)) from None
        if not Path(model).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
            raise EvalError(f"model {model} is not a local folder and HF_HUB_OFFLINE=1 is set")


def resolve_tasks(suite: str | list[str]) -> tuple[dict[str, int | None], bool]:
    """``({task: num_fewshot}, needs_hub)`` for a suite name or a list of task names."""
    if isinstance(suite, str):
        if suite == "offline":
            return {t: 0 for t in OFFLINE_TASKS}, False
        if suite == "standins":
            return {t: 0 for t in STANDIN_TASKS}, False
        if suite in HUB_SUITES:
            return dict(HUB_SUITES[suite]), True
        if suite in STANDIN_GROUPS:
            return {t: 0 for t in STANDIN_GROUPS[suite]}, False
        raise EvalError(f"unknown suite {suite!r}; known: offline, standins, {', '.join(HUB_SUITES)}, "
                        f"{', '.join(STANDIN_GROUPS)}")
    tasks, hub = {}, False
    for t in suite:
        if t in OFFLINE_TASKS:
            tasks[t] = 0
        else:
            hub = True
            tasks[t] = TABLE5_TASKS.get(t)
    return tasks, hub


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


def tool_call_items(data_dir: str | Path, limit: int | None = None) -> list[int]:
    """Doc ids (positions) of the ``hermes_tool_use`` items that are checked as tool calls: the
    right function names and arguments, parsed by ``hermes3.parsing`` from the generation.
    ``limit``: the same item limit the evaluation used."""
    items = read_records(Path(data_dir) / "eval" / "tool_use.jsonl")[:limit]
    return [i for i, it in enumerate(items) if it["check"]["kind"] == "tool_calls"]


def tool_call_accuracy(result: EvalResult, ids: list[int]) -> float:
    """Exact-match rate of ``result`` on the tool-call items ``ids`` of ``hermes_tool_use``."""
    hit = {s["doc_id"]: float(s["acc"]) for s in result.samples["hermes_tool_use"]}
    return sum(hit[i] for i in ids) / len(ids) if ids else float("nan")


def tool_call_functions(result: EvalResult, data_dir: str | Path, limit: int | None = None) -> dict[int, float]:
    """``doc_id -> 1.0`` where the generation's tool calls, parsed by ``hermes3.parsing``, name
    the expected functions in the expected order (arguments not compared), for the tool-call
    items of ``hermes_tool_use``: the function-selection half of exact match, which BFCL's
    AST metric also scores on its own. ``limit``: the item limit the evaluation used."""
    from hermes3.parsing import parse_tool_calls

    items = read_records(Path(data_dir) / "eval" / "tool_use.jsonl")[:limit]
    out = {}
    for s in result.samples["hermes_tool_use"]:
        check = items[s["doc_id"]]["check"]
        if check["kind"] == "tool_calls":
            got = [c["name"] for c in parse_tool_calls(s["filtered_resps"][0]).tool_calls]
            out[s["doc_id"]] = float(got == [c["name"] for c in check["calls"]])
    return out


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
             backend: str = "hf", cache: bool = True, cache_only: bool = False) -> EvalResult | None:
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
    (``hermes3.recipe``). ``cache_only=True`` returns the cached result or None, never evaluating.
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
                                limit, max_gen_toks)
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


def _store(key: str, unit: dict) -> None:
    """One task's results into the cache: complete or absent (an interrupted run leaves a .tmp)."""
    folder = _cache_dir() / key
    tmp_dir = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")  # two workers never share a tmp
    tmp_dir.mkdir(parents=True, exist_ok=True)
    (tmp_dir / "raw.json").write_text(json.dumps(unit))
    try:
        tmp_dir.rename(folder)
    except OSError:  # another worker stored the same task first: the same result
        import shutil

        shutil.rmtree(tmp_dir, ignore_errors=True)


def _cache_dir() -> Path:
    return Path(os.environ.get("HERMES3_EVAL_CACHE") or runs("eval", "cache"))


MODEL_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
               "special_tokens_map.json", "chat_template.jinja", "vocab.json", "merges.txt", "model.safetensors.index.json"}


def _is_model_file(name: str) -> bool:
    """Weights, config and tokenizer: not a checkpoint's optimizer, RNG or trainer state, so the
    last epoch checkpoint and ``final/`` (the same weights) share one cache entry."""
    return name in MODEL_FILES or name.endswith(".safetensors") or (name.startswith("pytorch_model") and name.endswith(".bin"))


def model_digest(model_dir: Path) -> str:
    """Digest of a model folder's weights, config and tokenizer files (``_is_model_file``)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for f in sorted(p for p in model_dir.iterdir() if p.is_file() and _is_model_file(p.name)):
        h.update(f.name.encode())
        with f.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "blake2b").digest())
    return h.hexdigest()


def cache_key(model: str, task_dir: Path, task: str, shots, **settings) -> str:
    """Digest of what decides one task's result: the model's bytes (``model_digest``), the
    task's written files (items, prompts) and the shared ones (scorers, content spans), the
    source of prompts, generation and checkers, the settings, and lm-eval's version."""
    import hashlib
    from importlib.metadata import version

    h = hashlib.blake2b(digest_size=16)
    h.update(model.encode())
    for src in (Path(__file__), Path(__file__).parent / "data" / "checkers.py"):  # prompts, generation, scorers
        h.update(src.read_bytes())
    here = str(task_dir.resolve()).encode()
    for f in sorted(p for p in task_dir.rglob("*") if p.is_file()):
        if f.stem in OFFLINE_TASKS and f.stem != task:  # another task's items and YAML
            continue
        h.update(str(f.relative_to(task_dir)).encode() + f.read_bytes().replace(here, b"<tasks>"))
    h.update(json.dumps({"task": task, "shots": shots, "lm_eval": version("lm_eval"), **settings}, sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


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
        from hermes3 import tracking

        tracking.log_table(wandb_run, "scores", table)
    return EvalResult(table, raw, samples)


def _quiet(HFLM):
    """lm-eval's HF model without its progress bars: lm-eval passes ``disable=`` to tqdm itself,
    so ``TQDM_DISABLE`` (batch notebooks, ``hermes3.notebook``) does not reach them."""

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
    text (``hermes3.encoding.encode``); every other string as lm-eval does."""
    import torch

    from hermes3.encoding import encode

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

    from hermes3.fp8 import load_model

    if isinstance(model, (str, Path)):
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
        model = load_model(model, attn_implementation="sdpa")
    elif tokenizer is None:
        raise EvalError("an in-memory model needs its tokenizer")
    else:
        model.set_attn_implementation("sdpa")
    model.eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=add_bos_token,
                max_length=model.config.max_position_embeddings)
