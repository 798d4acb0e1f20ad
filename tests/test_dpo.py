"""DPO with LoRA: step-0 sanity, dropout kept, one NEFTune draw for reference and policy, ties count half,
packed == padded, merge."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_tiny_model
from hermes3.train.dpo import DPOConfig, load_pairs, prepare, read_metrics, tokenize_pair, train
from hermes3.train.dpo_loss import METRICS, collate_packed, collate_padded, dpo_step, pair_accuracy, pair_terms


def step_loss(model, batch, beta=0.1, **kw):
    """The production step (``dpo_step``), reduced as the Trainer logs it: mean loss, mean metrics."""
    losses, logged, pol, ref = dpo_step(model, batch, beta, **kw)
    return losses.mean(), dict(zip(METRICS, logged.mean(0).tolist(), strict=True)), pol, ref


def dpo_loss(policy, reference, beta):
    losses, logged = pair_terms(policy, reference, beta)
    return losses.mean(), dict(zip(METRICS, logged.mean(0).tolist(), strict=True))


@pytest.fixture(scope="module")
def sft_model(smoke_data, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("sft"), smoke_data / "tokenizer", seed=3)


def _cfg(sft_model, smoke_data, out, **kw):
    d = dict(model=str(sft_model), data=str(smoke_data), output_dir=str(out), lr=1e-3, pairs_per_step=4, max_steps=4,
             max_length=512, wandb_mode="disabled", bf16="false")
    d.update(kw)
    return DPOConfig(**d)


def test_fresh_adapter_lora_settings_and_no_reference_copy(sft_model, smoke_data, tmp_path):
    model, tok, train_pairs, held, _ = prepare(_cfg(sft_model, smoke_data, tmp_path))
    lora = [m for n, m in model.named_modules() if hasattr(m, "lora_dropout")]
    assert lora and all(m.lora_dropout["default"].p == 0.05 for m in lora)
    assert all(m.r["default"] == 32 and m.lora_alpha["default"] == 16 for m in lora)
    names = {n.split(".")[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    assert names == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # one set of base weights: the reference is the same modules with the adapter disabled
    assert sum(isinstance(m, torch.nn.Embedding) for m in model.modules()) == 1
    model.eval()
    loss, m, _, _ = step_loss(model, collate_packed(train_pairs[:8]))
    assert math.isclose(loss.item(), math.log(2), abs_tol=1e-6) and m["rewards/margins"] == 0.0


def test_reference_and_policy_share_one_neftune_draw(sft_model, smoke_data, tmp_path):
    """NEFTune alpha 5 in training mode with a fresh adapter (B = 0, LoRA dropout 0.05 on): both
    passes see the same noisy embeddings, so they are equal, every margin is 0, every accuracy
    0.5 and the loss ln 2. The noise is there (both differ from the clean pass); the reference
    keeps no autograd graph."""
    model, _, pairs, _, _ = prepare(_cfg(sft_model, smoke_data, tmp_path))
    model.train()
    batch = collate_packed(pairs[:4])
    gen = torch.Generator().manual_seed(0)
    losses, logged, pol, ref = dpo_step(model, batch, 0.1, neftune_alpha=5.0, generator=gen)
    torch.testing.assert_close(pol, ref, atol=0, rtol=0)
    by_pair = dict(zip(METRICS, logged.T.tolist(), strict=True))
    assert by_pair["rewards/margins"] == [0.0] * 4 and by_pair["rewards/accuracies"] == [0.5] * 4
    assert torch.allclose(losses, torch.full_like(losses, math.log(2)))
    _, _, pol_clean, ref_clean = dpo_step(model, batch, 0.1)
    assert (ref - ref_clean).abs().max() > 1e-4 and (pol - pol_clean).abs().max() > 1e-4
    assert ref.grad_fn is None and not ref.requires_grad and pol.grad_fn is not None


def test_heldout_reference_logps_are_computed_once(sft_model, smoke_data, tmp_path, monkeypatch):
    """With a ref_cache, later held-out evaluations reuse the reference log-probs (adapters off,
    weights frozen) and give exactly what a fresh computation gives, after the policy moved."""
    import hermes3.train.dpo_loss as dpo

    model, _, pairs, _, _ = prepare(_cfg(sft_model, smoke_data, tmp_path))
    held, cache, passes = pairs[:6], {}, []
    real = dpo.sequence_logps
    monkeypatch.setattr(dpo, "sequence_logps", lambda m, b: passes.append(1) or real(m, b))
    before = dpo.evaluate_pairs(model, held, 0.1, batch_pairs=4, reference_only=True, ref_cache=cache)
    assert len(passes) == 2 and len(cache) == 2  # two batches, reference only
    with torch.no_grad():  # the policy moves (as DPO steps move it); the reference does not
        for n, prm in model.named_parameters():
            if "lora_B" in n:
                prm.add_(0.01 * torch.randn_like(prm))
    passes.clear()
    cached = dpo.evaluate_pairs(model, held, 0.1, batch_pairs=4, per_pair=True, ref_cache=cache)
    assert len(passes) == 2  # the policy passes only
    fresh = dpo.evaluate_pairs(model, held, 0.1, batch_pairs=4, per_pair=True)
    assert cached == fresh and cached["rewards/margins"] != 0.0
    assert before == dpo.evaluate_pairs(model, held, 0.1, batch_pairs=4, reference_only=True, ref_cache=cache)


def test_packed_equals_padded_loss_and_gradients(sft_model, smoke_data, tmp_path):
    model, tok, pairs, _, _ = prepare(_cfg(sft_model, smoke_data, tmp_path))
    with torch.no_grad():  # a non-zero adapter, so policy and reference differ
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    model.eval()
    grads = []
    for batch in (collate_packed(pairs[:6]), collate_padded(pairs[:6], tok.pad_token_id)):
        model.zero_grad()
        loss, _, _, _ = step_loss(model, batch)
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (la, ga), (lb, gb) = grads
    assert abs(la - lb) < 1e-5
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-5, rtol=1e-4, msg=k)


def test_dpo_loss_by_hand():
    """Sigmoid DPO (Rafailov et al. 2023, eq. 7), two pairs ordered (chosen, rejected, ...):
    pair 0: policy -1 / -3, reference -2 / -2 -> rewards beta*(logp - ref) = +0.1 / -0.1,
            margin +0.2, loss -log sigmoid(0.2) = log(1 + e^-0.2) = 0.5981388693815918;
    pair 1: policy -5 / -4, reference -5 / -5 -> rewards 0 / +0.1, margin -0.1,
            loss log(1 + e^0.1) = 0.744396660073571.
    Means: loss 0.6712677647275813, rewards 0.05 / 0.0, margin 0.05, accuracy 0.5, logps -3 / -3.5.
    Swapping chosen and rejected flips every sign."""
    loss, m = dpo_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0]), beta=0.1)
    assert math.isclose(loss.item(), 0.5981388693815918, rel_tol=1e-6)
    expected = {"rewards/chosen": 0.1, "rewards/rejected": -0.1, "rewards/margins": 0.2, "rewards/accuracies": 1.0,
                "logps/chosen": -1.0, "logps/rejected": -3.0}
    assert m.keys() == expected.keys() and all(math.isclose(m[k], v, abs_tol=1e-7) for k, v in expected.items()), m
    loss, m = dpo_loss(torch.tensor([-1.0, -3.0, -5.0, -4.0]), torch.tensor([-2.0, -2.0, -5.0, -5.0]), beta=0.1)
    assert math.isclose(loss.item(), 0.6712677647275813, rel_tol=1e-6)
    expected = {"rewards/chosen": 0.05, "rewards/rejected": 0.0, "rewards/margins": 0.05, "rewards/accuracies": 0.5,
                "logps/chosen": -3.0, "logps/rejected": -3.5}
    assert all(math.isclose(m[k], v, abs_tol=1e-7) for k, v in expected.items()), m


def test_a_tie_counts_half():
    """Accuracy per pair: 1 above a zero margin, 0.5 at it (either sign of zero), 0 below; the
    logged column is that rule (a pair with policy == reference is a tie)."""
    margins = torch.tensor([0.2, 0.0, -0.0, -0.3, 1e-30])
    assert pair_accuracy(margins).tolist() == [1.0, 0.5, 0.5, 0.0, 1.0]
    assert pair_accuracy([0.0, -2.0]).tolist() == [0.5, 0.0]  # a JSON list of margins, as the manifest reads
    _, logged = pair_terms(torch.tensor([-1.0, -3.0, -4.0, -6.0]), torch.tensor([-2.0, -2.0, -4.0, -6.0]), beta=0.1)
    assert logged[:, 2].tolist() == [pytest.approx(0.2), 0.0] and logged[:, 3].tolist() == [1.0, 0.5]


def test_heldout_accuracy_by_type():
    """Held-out accuracy per pair type, from heldout.json's per_pair rows: by kind within each source,
    a source total where it has several types, all pairs last; ties half; a bootstrap 95% interval."""
    from hermes3.eval.compare import accuracy_by_type, bootstrap_mean

    def pair(source, kind, category, margin):
        return {"source": source, "kind": kind, "category": category, "margin": margin}

    per_pair = [pair("synthetic", "refusal", "math", 0.3), pair("synthetic", "refusal", "coding", 0.1),
                pair("synthetic", "wrong_answer", "math", -0.2), pair("synthetic", "wrong_answer", "math", 0.0),
                pair("hh_rlhf", "human_preference", "steering", 0.5),
                pair("hh_rlhf", "human_preference", "steering", -0.1)]
    rows = {r["type"]: r for r in accuracy_by_type(per_pair)}
    assert list(rows) == ["hh_rlhf: human_preference", "synthetic: refusal", "synthetic: wrong_answer",
                          "synthetic: all", "all"]
    assert {k: (r["pairs"], r["accuracy"]) for k, r in rows.items()} == {
        "hh_rlhf: human_preference": (2, 0.5), "synthetic: refusal": (2, 1.0), "synthetic: wrong_answer": (2, 0.25),
        "synthetic: all": (4, 0.625), "all": (6, 7 / 12)}
    assert rows["synthetic: refusal"]["ci95_low"] == rows["synthetic: refusal"]["ci95_high"] == 1.0  # no spread
    assert (rows["all"]["ci95_low"], rows["all"]["ci95_high"]) == bootstrap_mean([1, 1, 0, 0.5, 1, 0])[1:]
    assert rows["synthetic: wrong_answer"]["mean_margin"] == pytest.approx(-0.1)
    by_category = [r["type"] for r in accuracy_by_type(per_pair, by="category")]
    assert by_category == ["hh_rlhf: steering", "synthetic: coding", "synthetic: math", "synthetic: all", "all"]
    assert accuracy_by_type([]) == []  # a run without held-out pairs


def test_packed_sequences_are_chosen_then_rejected():
    a = {"chosen": {"input_ids": [1, 2, 3], "labels": [1, 2, 3]}, "rejected": {"input_ids": [4, 5], "labels": [4, 5]}}
    b = {"chosen": {"input_ids": [6], "labels": [6]}, "rejected": {"input_ids": [7, 8], "labels": [-100, 8]}}
    batch = collate_packed([a, b])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6, 7, 8]]
    assert batch["seq_index"].tolist() == [0, 0, 0, 1, 1, 2, 3, 3] and batch["num_sequences"] == 4
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 2, 3, -100, 5, -100, -100, 8]]  # no label crosses a boundary
    assert batch["cu_seq_lens_q"].tolist() == [0, 3, 5, 6, 8]
    padded = collate_padded([a, b], pad_id=0)
    assert padded["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 0, 0], [7, 8, 0]]
    assert padded["labels"].tolist() == [[-100, 2, 3], [-100, 5, -100], [-100, -100, -100], [-100, 8, -100]]


def _sequence_logp(model, ids, labels):
    """log p of the labelled tokens of one sequence: a plain, unpacked forward in float64."""
    with torch.no_grad():
        logits = model(torch.tensor([ids]), use_cache=False).logits[0].double()
    lp = torch.log_softmax(logits[:-1], -1)
    return sum(lp[t - 1, ids[t]].item() for t in range(1, len(ids)) if labels[t] != -100)


def test_training_logs_rewards_and_merge_equals_adapter(sft_model, smoke_data, tmp_path):
    cfg = _cfg(sft_model, smoke_data, tmp_path / "run", max_steps=6)
    out = train(cfg)
    m = read_metrics(out)
    assert list(m.columns) == ["step", "epoch", "loss", "learning_rate", "grad_norm", "rewards/chosen", "rewards/rejected",
                               "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"]
    assert m["step"].tolist() == [1, 2, 3, 4, 5, 6]
    # each logged row obeys margin = chosen - rejected
    diff = (m["rewards/margins"] - (m["rewards/chosen"] - m["rewards/rejected"])).abs().max()
    assert diff < 1e-6
    # step 1 runs a fresh adapter (B = 0), NEFTune alpha 5 and LoRA dropout on: policy == reference,
    # so margin 0, accuracy 0.5 (ties count half) and loss ln 2, not a noise penalty
    first = m.iloc[0]
    assert first["rewards/margins"] == 0.0 and first["rewards/accuracies"] == 0.5
    assert math.isclose(first["loss"], math.log(2), abs_tol=1e-6)
    held = json.loads((out / "heldout.json").read_text())
    assert math.isclose(held["before"]["loss"], math.log(2), abs_tol=1e-6) and held["before"]["rewards/margins"] == 0
    assert held["before"]["rewards/accuracies"] == 0.5  # every held-out pair a tie before training
    # held["after"] against a second implementation: the merged policy and the SFT reference
    # run one sequence at a time, unpacked, and the DPO formula written out here.
    _, _, _, pairs, _ = prepare(cfg)
    assert held["pairs"] == len(pairs) > 0
    policy = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    reference = AutoModelForCausalLM.from_pretrained(sft_model).eval()
    rows = []
    for p in pairs:
        pc, pr, rc, rr = (_sequence_logp(model, p[side]["input_ids"], p[side]["labels"])
                          for model in (policy, reference) for side in ("chosen", "rejected"))
        chosen, rejected = cfg.beta * (pc - rc), cfg.beta * (pr - rr)
        rows.append({"loss": math.log1p(math.exp(-(chosen - rejected))), "rewards/chosen": chosen,
                     "rewards/rejected": rejected, "rewards/margins": chosen - rejected,
                     "rewards/accuracies": (chosen > rejected) + 0.5 * (chosen == rejected),  # a tie counts half
                     "logps/chosen": pc, "logps/rejected": pr})
    for k in rows[0]:
        want = sum(r[k] for r in rows) / len(rows)
        assert math.isclose(held["after"][k], want, rel_tol=1e-4, abs_tol=1e-5), (k, held["after"][k], want)
    assert held["after"]["rewards/margins"] != 0  # the adapter moved
    # each held-out pair's type beside its margin, in order (accuracy by type: notebook 06): the type of
    # the data build's record whose tokens the pair holds
    assert [r["margin"] for r in held["per_pair"]] == held["after"]["margins"]
    tok = AutoTokenizer.from_pretrained(sft_model)

    def tokens(t):
        return tuple(t["chosen"]["input_ids"]), tuple(t["rejected"]["input_ids"])

    record = {tokens(tokenize_pair(r, tok)): r for r in load_pairs(smoke_data)}
    fields = ("source", "kind", "category")
    assert ([{k: r[k] for k in fields} for r in held["per_pair"]]
            == [{k: record[tokens(p)][k] for k in fields} for p in pairs])
    assert {r["source"] for r in held["per_pair"]} == {"synthetic", "hh_rlhf"}
    from peft import PeftModel

    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft_model), out / "adapter").eval()
    ids = torch.tensor([tokenize_pair(load_pairs(smoke_data)[0], AutoTokenizer.from_pretrained(sft_model))["chosen"]["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(policy(ids).logits, adapter(ids).logits, atol=1e-5, rtol=1e-4)


def test_completion_only_labels(sft_model, smoke_data):
    tok = AutoTokenizer.from_pretrained(sft_model)
    pair = next(p for p in load_pairs(smoke_data) if p["source"] == "hh_rlhf" and len(p["prompt"]) > 2)
    t = tokenize_pair(pair, tok)
    trained = tok.decode([i for i, lab in zip(t["chosen"]["input_ids"], t["chosen"]["labels"]) if lab != -100])
    assert trained == pair["chosen"][0]["content"] + "<|im_end|>"  # earlier assistant turns are prompt


def test_gradient_checkpointing_keeps_loss_and_gradients(sft_model, smoke_data, tmp_path):
    """Same loss and gradients with activation checkpointing, in train mode: LoRA dropout and
    NEFTune noise are drawn once (the recompute replays the RNG), not twice."""
    results = []
    for ckpt in (False, True):
        model, _, pairs, _, _ = prepare(_cfg(sft_model, smoke_data, tmp_path, gradient_checkpointing=ckpt))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(n))) * 0.02)
        model.train()
        torch.manual_seed(1)
        loss, _, _, _ = step_loss(model, collate_packed(pairs[:6]), neftune_alpha=5.0,
                                  generator=torch.Generator().manual_seed(0))
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert model.is_activation_checkpointing
    (la, ga), (lb, gb) = results
    assert la == lb and ga.keys() == gb.keys()
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-6, rtol=1e-5, msg=k)


# --- the production step as the Trainer runs it (DPOEngineTrainer.compute_loss), against the formula
# written out here on plain, unpacked float64 forwards (no packing, no dpo_loss code)


def _engine(sft_model, smoke_data, tmp_path, **kw):
    """The Trainer `hermes3 dpo` builds for this config (``dpo_trainer.build_trainer``), its pairs."""
    from hermes3.train.dpo_trainer import build_trainer

    cfg = _cfg(sft_model, smoke_data, tmp_path / "run", **kw)
    model, tok, pairs, _, _ = prepare(cfg)
    with torch.no_grad():  # a non-zero adapter: policy and reference differ
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(n))) * 0.5)
    return build_trainer(cfg, tmp_path / "run", model, tok, pairs, [], 4, 1, report_to=[]), pairs


def _logps_by_hand(model, pairs):
    """Per sequence (chosen, rejected, ...): (policy, reference) log-probs, the reference with the
    adapter switched off; eval mode, so no dropout and no noise."""
    was = model.training
    model.eval()
    seqs = [p[side] for p in pairs for side in ("chosen", "rejected")]
    pol = [_sequence_logp(model, s["input_ids"], s["labels"]) for s in seqs]
    with model.disable_adapter():
        ref = [_sequence_logp(model, s["input_ids"], s["labels"]) for s in seqs]
    model.train(was)
    return pol, ref


def _losses_by_hand(pol, ref, beta):
    return [math.log1p(math.exp(-beta * ((pol[i] - ref[i]) - (pol[i + 1] - ref[i + 1]))))
            for i in range(0, len(pol), 2)]


def test_engine_loss_uses_the_configured_beta(sft_model, smoke_data, tmp_path):
    """A non-default beta reaches the loss training computes: compute_loss at beta 0.5 equals the
    sigmoid DPO loss at 0.5 by hand, and differs from the loss at the default 0.1."""
    trainer, pairs = _engine(sft_model, smoke_data, tmp_path, beta=0.5)
    model = trainer.model
    model.eval()
    batch = collate_packed(pairs[:4])
    pol, ref = _logps_by_hand(model, pairs[:4])
    want = _losses_by_hand(pol, ref, 0.5)
    at_default = sum(_losses_by_hand(pol, ref, 0.1)) / 4
    loss = trainer.compute_loss(model, batch).item()  # outside training_step: the mean over pairs
    assert math.isclose(loss, sum(want) / 4, rel_tol=1e-4), (loss, sum(want) / 4)
    assert abs(loss - at_default) > 50 * 1e-4 * loss, (loss, at_default)  # well beyond the tolerance above
    # in training_step: the sum over this micro-batch's pairs / the pairs of the whole optimizer step
    n = trainer._get_num_items_in_batch([batch, collate_packed(pairs[4:6])], torch.device("cpu"))
    assert int(n) == 6  # pairs, not sequences
    step = trainer.compute_loss(model, batch, num_items_in_batch=n).item()
    assert math.isclose(step, sum(want) / 6, rel_tol=1e-4), (step, sum(want) / 6)


def test_engine_passes_share_the_neftune_noise(sft_model, smoke_data, tmp_path, monkeypatch):
    """compute_loss in training mode with NEFTune on and the adapter back at B = 0 (LoRA dropout
    on): one noise draw reaches both passes, so its reference and policy log-probs are equal and
    both differ from the clean log-probs by hand; it logs margins 0 and accuracies 0.5."""
    import hermes3.train.dpo_loss as dpo

    trainer, pairs = _engine(sft_model, smoke_data, tmp_path, neftune_alpha=5.0)
    model = trainer.model
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.zero_()
    model.train()
    seen, real = [], dpo.sequence_logps
    monkeypatch.setattr(dpo, "sequence_logps", lambda m, b: seen.append(real(m, b)) or seen[-1])
    trainer.compute_loss(model, collate_packed(pairs[:3]))
    ref_seen, pol_seen = seen
    assert model.training
    torch.testing.assert_close(pol_seen, ref_seen, atol=0, rtol=0)
    _, ref = _logps_by_hand(model, pairs[:3])
    assert max(abs(g - w) for g, w in zip(ref_seen.tolist(), ref, strict=True)) > 1e-2
    sums = dict(zip(METRICS, trainer._sums.tolist(), strict=True))  # summed over the 3 pairs
    assert sums["rewards/margins"] == 0.0 and sums["rewards/accuracies"] == 1.5


def test_packed_batch_reports_the_longest_sequence():
    """flash-attn's varlen kernels size their query/key blocks by max_length_q/k: the longest
    sequence in the row, not the shortest or the first."""
    def side(n):
        return {"input_ids": list(range(1, n + 1)), "labels": list(range(1, n + 1))}

    pairs = [{"chosen": side(3), "rejected": side(5)}, {"chosen": side(9), "rejected": side(2)},
             {"chosen": side(4), "rejected": side(4)}]
    batch = collate_packed(pairs)
    lengths = batch["cu_seq_lens_q"].diff().tolist()
    assert lengths == [3, 5, 9, 2, 4, 4]
    assert batch["max_length_q"] == batch["max_length_k"] == 9
    assert torch.equal(batch["cu_seq_lens_k"], batch["cu_seq_lens_q"])
