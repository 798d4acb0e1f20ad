"""Decontamination: do evaluation items occur in the training mixture?

The check open-instruct runs before training (and GPT-3's paper before it): an evaluation
item is contaminated when its text occurs in training, verbatim or as a long word n-gram
(13 words, GPT-3's choice). We count, over the held-out items of a data build:

* ``exact``: items whose whole prompt (every message before the answer, and the tool list) equals
  a training one;
* ``ngram``: items sharing at least one ``n``-word n-gram of their prompt with a training prompt;
* ``answer_ngram``: items whose reference answer shares an ``n``-gram with a training answer.

Templated synthetic tasks share phrasing by design ("Count from 3 to 20 in steps of 2."),
so n-gram overlap of answers measures how templated the data is, not leakage; ``exact``
is what must be zero (``hermes3 data build`` excludes every training prompt from evaluation).

>>> sorted(ngrams("The cat sat on the mat", 5))
[('cat', 'sat', 'on', 'the', 'mat'), ('the', 'cat', 'sat', 'on', 'the')]
>>> contamination([{"messages": [{"role": "user", "content": "a b c"}, {"role": "assistant", "content": "x"}]}],
...               [{"prompt": [{"role": "user", "content": "a b c"}], "reference": "y"}], n=3)["exact"]
1
"""

from __future__ import annotations

import json
import re

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _key(prompt: list[dict], tools) -> str:
    names = sorted(t.get("function", t)["name"] for t in tools) if tools else []
    return json.dumps([prompt, names], sort_keys=True, ensure_ascii=False)


def _user_text(messages: list[dict]) -> str:
    return "\n".join(m.get("content") or "" for m in messages if m.get("role") == "user")


def _answers(messages: list[dict]) -> str:
    return "\n".join(m.get("content") or "" for m in messages if m.get("role") == "assistant")


def contamination(train: list[dict], items: list[dict], n: int = 13) -> dict:
    """Counts of contaminated evaluation ``items`` (``prompt`` messages + ``reference``) against
    ``train`` conversations (``messages``): ``{"items", "exact", "ngram", "answer_ngram", "n"}``."""
    prompts = {_key(r["messages"][:-1], r.get("tools")) for r in train}
    grams: set = set()
    answer_grams: set = set()
    for r in train:
        grams |= ngrams(_user_text(r["messages"]), n)
        answer_grams |= ngrams(_answers(r["messages"]), n)
    exact = sum(_key(it["prompt"], it.get("tools")) in prompts for it in items)
    hit = sum(bool(ngrams(_user_text(it["prompt"]), n) & grams) for it in items)
    ans = sum(bool(ngrams(it["reference"], n) & answer_grams) for it in items)
    return {"items": len(items), "exact": exact, "ngram": hit, "answer_ngram": ans, "n": n}
