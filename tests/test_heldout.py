"""hermes3.eval.heldout: the batched, length-sorted reference log-likelihood equals a plain per-item
forward pass over the full logits, in the items' own order."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_tiny_model
from hermes3.data.build import load_eval
from hermes3.data.synthetic import CATEGORIES
from hermes3.eval.heldout import _pairs, answer_loss, heldout_scores, reference_logprobs


@pytest.fixture(scope="module")
def model_and_items(smoke_data, tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp("heldout") / "m", smoke_data / "tokenizer")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    items = [it for c in CATEGORIES for it in load_eval(smoke_data, c, split="test")]
    return folder, tok, model, items


@torch.no_grad()
def _one_by_one(model, tok, items):
    out = []
    for p, a in _pairs(items, tok):
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0].float(), -1)
        out.append((sum(float(logp[len(p) - 1 + t, a[t]]) for t in range(len(a))), len(a)))
    return out


def test_equals_one_item_at_a_time_in_item_order(model_and_items):
    _, tok, model, items = model_and_items
    lengths = [sum(map(len, pa)) for pa in _pairs(items, tok)]
    assert lengths != sorted(lengths), "the items must come unsorted for the test to check the order"
    got, want = reference_logprobs(model, tok, items, batch_size=3), _one_by_one(model, tok, items)
    assert [n for _, n in got] == [n for _, n in want]
    assert torch.allclose(torch.tensor([s for s, _ in got]), torch.tensor([s for s, _ in want]), atol=1e-3, rtol=1e-5)


def test_answer_tokens_end_with_im_end(model_and_items):
    _, tok, _, items = model_and_items
    (_, answer), = _pairs(items[:1], tok)
    assert answer == tok(items[0]["reference"], add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]


def test_heldout_scores_frame(model_and_items, smoke_data):
    folder, tok, model, items = model_and_items
    s = heldout_scores(folder, smoke_data, ["math", "coding"], split="validation")
    assert list(s.category.unique()) == ["math", "coding"] and set(s.split) == {"validation"}
    want = load_eval(smoke_data, "math", split="validation") + load_eval(smoke_data, "coding", split="validation")
    assert list(s.id) == [it["id"] for it in want]
    assert list(s.answer_overlap) == [it["overlap"]["answer_ngram"] for it in want]
    assert (s.mean_logprob == s.logprob / s.tokens).all() and (s.logprob < 0).all()
    assert answer_loss(s) == pytest.approx(-s.logprob.sum() / s.tokens.sum())
    with pytest.raises(ValueError, match="no test items"):
        heldout_scores(folder, smoke_data, ["math"], limit=0, split="test")
