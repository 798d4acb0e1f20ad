"""The offline lm-eval tasks, written from the embedded data and a data build: YAML, JSONL
items with prompts rendered in the Hermes format, and the scorer module lm-eval imports.

lm-eval reads local tasks as YAML + JSONL (``include_path``); this writes them into a folder
per evaluation, so a task's items and prompts are exactly what ``hermes3.eval.cache`` hashes.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from hermes3.core.paths import REPO, runs
from hermes3.data.loaders import read_records
from hermes3.eval.tasks import CATEGORY_TASKS, EvalError
from hermes3.format.chat import render

SOURCES = REPO / "data" / "sources"

AGIEVAL_EN = ("aqua-rat", "lsat-ar", "lsat-lr", "lsat-rc", "sat-en", "sat-en-without-passage", "sat-math")

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

_UTILS = '''"""Scorers of the hermes3 offline lm-eval tasks (written by hermes3.eval.lmeval_tasks)."""
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
    text (``hermes3.format.encoding``). A chat prompt's spans come from rendering its messages
    (``chats``: prompt -> (messages, tools)); a ``plain_text`` prompt is data throughout.
    """
    from hermes3.format.chat import render_with_spans
    from hermes3.format.encoding import special_tokens_in

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
                        max_gen_toks: int = 192, real_limit: int = 100, split: str = "test") -> list[str]:
    """Write the offline task YAMLs, their JSONL data (prompts rendered in the Hermes
    format, ready for generation) and the scorer module into ``folder``; returns the task
    names. ``data_dir`` is a ``hermes3 data build`` folder (for the synthetic items).

    ``split``: the synthetic items of that split of the data build; of each real benchmark
    (IFEval, GSM8K test, AGIEval, BBH) the first ``real_limit`` items (after the fixed shuffle)
    are ``validation`` and the next ``real_limit`` are ``test``, so the two never share an item
    whatever ``limit`` (items per task, at most ``real_limit``) is."""
    from hermes3.data.build import SPLITS

    if split not in SPLITS:
        raise EvalError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    start = SPLITS.index(split) * real_limit
    take = real_limit if limit is None else min(limit, real_limit)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hermes_utils.py").write_text(_UTILS)
    names, spans, chats = [], {}, {}

    def chat(messages, tools=None):
        text = render(messages, tools, add_generation_prompt=True)
        chats[text] = (messages, tools)
        return text

    def write(task, rows, scorer="process_check", metrics=_ACC, gen=max_gen_toks, text_field="prompt", real=True,
              plain_text=False):
        path = folder / f"{task}.jsonl"
        rows = rows[start:start + take] if real else rows[:limit]
        spans.update(_content_spans(rows, text_field, chats, plain_text))
        with path.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        (folder / f"{task}.yaml").write_text(_YAML.format(task=task, path=path.resolve(), scorer=scorer, metrics=metrics,
                                                          max_gen_toks=gen, text_field=text_field))
        names.append(task)

    if data_dir is not None:
        for cat in CATEGORY_TASKS:
            f = Path(data_dir) / "eval" / split / f"{cat}.jsonl"
            if not f.exists():
                raise EvalError(f"{f} missing: is {data_dir} a `hermes3 data build` folder (of this version, with "
                                "validation and test splits)?")
            items = read_records(f)
            write(f"hermes_{cat}", [{"id": it["id"], "prompt": chat(it["prompt"], it["tools"]),
                                     "target": it["reference"], "check": json.dumps(it["check"])} for it in items],
                  real=False)
    ifeval = read_records(SOURCES / "ifeval" / "input_data.jsonl")
    # IFEval's checker reads the raw doc["prompt"]; the model sees it rendered as a chat turn.
    write("ifeval_local", [{**r, "target": "", "chat_prompt": chat([{"role": "user", "content": r["prompt"]}])}
                           for r in ifeval],
          scorer="process_ifeval", metrics=_IFEVAL, gen=max(max_gen_toks, 256), text_field="chat_prompt")
    gsm = read_records(SOURCES / "gsm8k" / "test.jsonl")
    write("gsm8k_local", [{"prompt": chat([{"role": "user", "content": r["question"]}]), "target": r["answer"],
                           "check": json.dumps({"kind": "number", "answer": _gsm_answer(r["answer"])})} for r in gsm])
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
        for r in rows[start:start + take]:
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
    write("bbh_local", rows, plain_text=True)
    (folder / "bbh_local.yaml").write_text((folder / "bbh_local.yaml").read_text().replace(
        'until: ["<|im_end|>"]', 'until: ["<|im_end|>", "\\n\\nQ:"]'))
    (folder / CONTENT_SPANS).write_text(json.dumps(spans, ensure_ascii=False))
    return names

def synthetic_items(data_dir: Path, task: str, split: str, limit: int | None = None) -> list[dict]:
    """The held-out items of a ``hermes_<category>`` task in lm-eval's ``doc_id`` order (the order
    ``write_offline_tasks`` writes them), with their ``overlap`` flags."""
    return read_records(Path(data_dir) / "eval" / split / f"{task.removeprefix('hermes_')}.jsonl")[:limit]


def _gsm_answer(answer: str):
    v = float(answer.split("####")[-1].strip().replace(",", ""))
    return int(v) if v.is_integer() else v
