"""Decontamination: do evaluation items occur in the training mixture?

The check open-instruct runs before training (and GPT-3's paper before it): an evaluation
item is contaminated when its text occurs in training, verbatim or as a long word n-gram
(13 words, GPT-3's choice). We count, over the held-out items of a data build:

* ``exact``: items whose whole prompt (every message before the answer, and the tool list) equals
  a training one;
* ``ngram``: items sharing at least one ``n``-word n-gram of their prompt with a training prompt;
* ``answer_ngram``: items whose reference answer shares an ``n``-gram with a training answer.

``overlaps`` gives the same flags per item: ``hermes3 data build`` stores them in every held-out
item, so a finding can be reported on the items whose answer shares no ``n``-gram with training
(``no_answer_overlap``) as well as on the whole test split.

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
NGRAM = 13  # GPT-3's n-gram length for decontamination


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


def overlaps(train: list[dict], items: list[dict], n: int = NGRAM) -> list[dict]:
    """Per evaluation item (``prompt`` messages + ``reference``), against ``train`` conversations
    (``messages``): ``{"exact", "prompt_ngram", "answer_ngram"}`` booleans, in the order of ``items``.

    >>> overlaps([{"messages": [{"role": "user", "content": "a b c"}, {"role": "assistant", "content": "x y"}]}],
    ...          [{"prompt": [{"role": "user", "content": "a b d"}], "reference": "w x y"}], n=2)
    [{'exact': False, 'prompt_ngram': True, 'answer_ngram': True}]
    """
    prompts = {_key(r["messages"][:-1], r.get("tools")) for r in train}
    grams: set = set()
    answer_grams: set = set()
    for r in train:
        grams |= ngrams(_user_text(r["messages"]), n)
        answer_grams |= ngrams(_answers(r["messages"]), n)
    return [{"exact": _key(it["prompt"], it.get("tools")) in prompts,
             "prompt_ngram": bool(ngrams(_user_text(it["prompt"]), n) & grams),
             "answer_ngram": bool(ngrams(it["reference"], n) & answer_grams)} for it in items]


def contamination(train: list[dict], items: list[dict], n: int = NGRAM) -> dict:
    """Counts of contaminated evaluation ``items`` (``prompt`` messages + ``reference``) against
    ``train`` conversations (``messages``): ``{"items", "exact", "ngram", "answer_ngram", "n"}``."""
    flags = overlaps(train, items, n)
    return {"items": len(items), "exact": sum(f["exact"] for f in flags), "ngram": sum(f["prompt_ngram"] for f in flags),
            "answer_ngram": sum(f["answer_ngram"] for f in flags), "n": n}


def no_answer_overlap(items: list[dict]) -> list[dict]:
    """The items whose reference shares no answer ``n``-gram with a training answer (the flag
    ``hermes3 data build`` stores as ``overlap.answer_ngram``).

    >>> [it["id"] for it in no_answer_overlap([{"id": "a", "overlap": {"answer_ngram": True}},
    ...                                        {"id": "b", "overlap": {"answer_ngram": False}}])]
    ['b']
    """
    return [it for it in items if not it["overlap"]["answer_ngram"]]
