"""MT-Bench (80 two-turn questions) with FastChat's single-answer grading protocol.

The report scores MT-Bench with an LLM judge (judge model not stated in the report). We
implement the protocol itself: the model answers both turns in the Hermes format; the
judge gets FastChat's ``single-v1`` prompt for turn 1 and ``single-v1-multi-turn`` for
turn 2 (the ``-math-`` variants with GPT-4's reference answer for math, reasoning and
coding questions) and must answer ``[[rating]]`` on a 1–10 scale. The MT-Bench score is
the mean over turns of the mean rating (Table 2 reports Turn 1, Turn 2 and their mean).

No strong judge runs on a laptop CPU, so at demo scale the verifiable stand-in groups of
``hermes3.eval.evaluate`` take MT-Bench's place; ``judge_fn`` can be any callable, e.g. a
vLLM- or API-backed model on a real cluster.

>>> parse_rating("The answer is fine. Rating: [[8]]")
8.0
>>> parse_rating("no verdict") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from hermes3.core.paths import REPO
from hermes3.data.loaders import read_records
from hermes3.format.encoding import encode_conversation

MT_DIR = REPO / "data" / "sources" / "mt_bench"
NEED_REFERENCE = ("math", "reasoning", "coding")
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_FALLBACK = re.compile(r"\[(\d+\.?\d*)\]")


def load_questions(folder: Path = MT_DIR) -> list[dict]:
    """The 80 questions, each with ``turns`` and, where GPT-4 wrote one, ``reference``."""
    refs = {r["question_id"]: r["choices"][0]["turns"] for r in read_records(folder / "reference_answer_gpt-4.jsonl")}
    return [{**q, "reference": refs.get(q["question_id"])} for q in read_records(folder / "question.jsonl")]


def judge_prompts(folder: Path = MT_DIR) -> dict[str, dict]:
    return {p["name"]: p for p in read_records(folder / "judge_prompts.jsonl")}


def parse_rating(text: str) -> float | None:
    """The judge's ``[[rating]]`` (FastChat also accepts ``[rating]``); None if absent."""
    m = _RATING.search(text) or _RATING_FALLBACK.search(text)
    return float(m.group(1)) if m else None


def answer_questions(generate: Callable[[list[dict]], str], questions: list[dict]) -> dict[int, list[str]]:
    """Both turns of every question: ``generate(messages) -> assistant text``."""
    out = {}
    for q in questions:
        msgs = [{"role": "user", "content": q["turns"][0]}]
        a1 = generate(msgs)
        msgs += [{"role": "assistant", "content": a1 or " "}, {"role": "user", "content": q["turns"][1]}]
        out[q["question_id"]] = [a1, generate(msgs)]
    return out


def judge_request(q: dict, answers: list[str], turn: int, prompts: dict) -> tuple[str, str]:
    """``(system, user)`` messages for the judge, FastChat's single-answer templates."""
    math = q["category"] in NEED_REFERENCE and q.get("reference")
    name = ("single-math-v1" if math else "single-v1") + ("-multi-turn" if turn == 2 else "")
    p = prompts[name]
    fields = {"question": q["turns"][0], "answer": answers[0], "question_1": q["turns"][0],
              "question_2": q["turns"][1], "answer_1": answers[0], "answer_2": answers[1]}
    if math:
        fields |= {"ref_answer_1": q["reference"][0], "ref_answer_2": q["reference"][1]}
    return p["system_prompt"], p["prompt_template"].format(**fields)


def score(judge: Callable[[str, str], str], questions: list[dict], answers: dict[int, list[str]]):
    """Rate every answer; returns a DataFrame (question_id, category, turn, rating, judgment)
    and the summary ``{"turn_1", "turn_2", "mt_bench"}``. Unparseable verdicts count as
    missing (and are reported), not as zero."""
    import pandas as pd

    prompts = judge_prompts()
    rows = []
    for q in questions:
        for turn in (1, 2):
            system, user = judge_request(q, answers[q["question_id"]], turn, prompts)
            verdict = judge(system, user)
            rows.append({"question_id": q["question_id"], "category": q["category"], "turn": turn,
                         "rating": parse_rating(verdict), "judgment": verdict})
    df = pd.DataFrame(rows)
    t1, t2 = (df[df.turn == k].rating.mean() for k in (1, 2))
    return df, {"turn_1": t1, "turn_2": t2, "mt_bench": (t1 + t2) / 2, "unparsed": int(df.rating.isna().sum())}


def hf_generate_fn(model, tokenizer, max_new_tokens: int = 256) -> Callable[[list[dict]], str]:
    """``generate(messages)`` for a transformers model in the Hermes format (greedy,
    stops at ``<|im_end|>``)."""
    import torch

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def generate(messages: list[dict]) -> str:
        # content is text: a question quoting <|im_end|> cannot open a turn (hermes3.format.encoding)
        ids = torch.tensor([encode_conversation(messages, tokenizer, add_generation_prompt=True)["input_ids"]])
        with torch.no_grad():  # our saved generation configs say use_cache=False (packed training): ask for it
            out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()

    return generate
