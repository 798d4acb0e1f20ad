"""Held-out log-likelihood of reference answers: a continuous score that moves with small models.

GPT4All's tasks (ARC, HellaSwag, PIQA, ...) are scored by log-likelihood: lm-eval asks how
likely the model finds each answer. Our demo-scale GPT4All stand-in does the same on the
held-out synthetic items of ``hermes3 data build``: the log-probability the model assigns to
the reference answer (its tokens and the closing ``<|im_end|>``) after the rendered prompt,
per token. Unlike the 0/1 accuracy of generated answers, which sits near the floor for a
5M-parameter model and moves in steps of 1/n, it separates learning rates and model sizes
with a few hundred items (Fig. 2, Fig. 4 of the report), and ``compare.bootstrap_diff``
puts an interval on every difference.

Prompt and answer are tokenized separately, as at generation time (the model's answer starts
after the generation prompt ``<|im_start|>assistant\\n``); control tokens inside the prompt's
message content stay text (``hermes3.format.encoding``).

>>> item = {"prompt": [{"role": "user", "content": "Hi"}], "tools": None, "reference": "Hello!"}
>>> from hermes3.format.chat import render
>>> render(item["prompt"], add_generation_prompt=True)
'<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from hermes3.core.errors import Hermes3Error


def _pairs(items: list[dict], tok) -> list[tuple[list[int], list[int]]]:
    from hermes3.format.encoding import encode_conversation

    out = []
    for it in items:
        # the prompt's message content stays text (hermes3.format.encoding); the answer is model output
        prompt = encode_conversation(it["prompt"], tok, it.get("tools"), add_generation_prompt=True)["input_ids"]
        answer = tok(it["reference"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        out.append((prompt, answer))
    return out


@torch.no_grad()
def reference_logprobs(model, tok, items: list[dict], batch_size: int = 16) -> list[tuple[float, int]]:
    """``[(sum of log-probs of the reference tokens, number of tokens)]`` per item, in the order of
    ``items``.

    Two things make this ~2.7x faster than one forward pass over the items in file order (measured:
    640 demo items, 36 s -> 13 s on one thread, sums equal to 1.5e-5): batches are formed in order
    of length, so a 1,200-token tool session is not padded against 40-token questions; and the
    vocabulary projection and log-softmax run only at the answer positions (the prompt's logits are
    never used). Right padding with an attention mask leaves every real position's value as it is.
    ``get_decoder()`` then ``get_output_embeddings()`` is the whole head of Llama-family models; one
    that scales or soft-caps logits after the projection (Gemma 2) would need that step here too.
    """
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    pairs = _pairs(items, tok)
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    out: list[tuple[float, int] | None] = [None] * len(pairs)
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        rows = [pairs[i][0] + pairs[i][1] for i in idx]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, :len(r)] = torch.tensor(r)
            mask[j, :len(r)] = 1
        hidden = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        for j, i in enumerate(idx):
            p, a = pairs[i]
            # the token at position t is predicted by the hidden state at t - 1
            logp = torch.log_softmax(head(hidden[j, len(p) - 1:len(p) + len(a) - 1]).float(), -1)
            out[i] = (float(logp[torch.arange(len(a)), torch.tensor(a)].sum()), len(a))
    return out


def require_items(data_dir: str | Path, categories: list[str], splits) -> None:
    """One line when ``data_dir`` has no held-out items of a category in a split. A choice calls it
    before it trains anything: a published mixture (a ``source:`` data config, such as the full
    preset's Hermes-3-Dataset) has no held-out items, and finding that out after the LR search's
    runs have trained would waste them."""
    from hermes3.data.build import load_eval

    missing = [f"{split}/{c}" for split in splits for c in categories if not load_eval(data_dir, c, split=split)]
    if missing:
        raise Hermes3Error(f"{data_dir}: no held-out items for {', '.join(missing)} (expected "
                           "eval/<split>/<category>.jsonl from hermes3 data build; a published mixture has none, "
                           "see docs/full-scale.md, 'Not yet at full scale')")


def heldout_scores(model_dir: str | Path, data_dir: str | Path, categories: list[str], limit: int | None = None,
                   batch_size: int = 16, *, split: str):
    """Per held-out item of ``categories`` in ``split`` (``validation`` for choices, ``test`` for
    findings): ``id, category, split, answer_overlap, logprob, tokens, mean_logprob``
    (log-probability per reference token; higher is better; ``answer_overlap``: the reference
    shares a 13-gram with a training answer). A DataFrame."""
    import pandas as pd
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hermes3.data.build import load_eval
    from hermes3.train.modeling import check_model_folder

    check_model_folder(model_dir)  # one line on a pickle-only or damaged folder, before anything is read
    items = [it for c in categories for it in load_eval(data_dir, c, split=split)[:limit]]
    if not items:
        raise Hermes3Error(f"{data_dir}: no {split} items for {categories} (expected {data_dir}/eval/{split}/"
                           "<category>.jsonl from hermes3 data build)")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 **({"use_safetensors": True} if Path(model_dir).is_dir() else {}))
    scores = reference_logprobs(model, tok, items, batch_size)
    return pd.DataFrame([{"id": it["id"], "category": it["category"], "split": split,
                          "answer_overlap": it["overlap"]["answer_ngram"], "logprob": lp, "tokens": n,
                          "mean_logprob": lp / n} for it, (lp, n) in zip(items, scores)])


def answer_loss(scores) -> float:
    """Loss on the held-out reference answers only (nats per answer token, token-weighted) of a
    ``heldout_scores`` frame."""
    return float(-scores.logprob.sum() / scores.tokens.sum())


def heldout_path(model, data: Path, split: str, limit: int | None, cache: Path) -> Path:
    """Where ``heldout_cached`` keeps the scores of ``model``: named by the digest of its weights
    and config, of the data build's manifest, the split and ``limit``."""
    from hermes3.train.modeling import model_digest

    data_digest = hashlib.blake2b((Path(data) / "manifest.json").read_bytes(), digest_size=12).hexdigest()
    return Path(cache) / f"{model_digest(model)}-{data_digest[:8]}-{split}-{limit}.csv"


def heldout_cached(model, data: Path, split: str, limit: int | None, cache: Path):
    """``heldout_scores`` of every category of ``split`` under ``model``, cached in ``cache`` (``heldout_path``),
    so parallel jobs, Table 2's epoch scores and later notebooks compute each model once."""
    import pandas as pd

    from hermes3.data.synthetic import CATEGORIES

    path = heldout_path(model, data, split, limit, cache)
    if path.exists():
        return pd.read_csv(path)
    scores = heldout_scores(model, data, list(CATEGORIES), limit=limit, split=split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two workers never write one tmp file
    scores.to_csv(tmp, index=False)
    tmp.replace(path)
    return scores
