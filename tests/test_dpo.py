"""DPO with LoRA: step-0 sanity, dropout kept, clean reference under NEFTune, packed == padded, merge."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_tiny_model
from hermes3.dpo import (
    DPOConfig,
    collate_packed,
    collate_padded,
    dpo_step_loss,
    load_pairs,
    prepare,
    read_metrics,
    tokenize_pair,
    train,
)


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
    loss, m = dpo_step_loss(model, collate_packed(train_pairs[:8]), beta=0.1)
    assert math.isclose(loss.item(), math.log(2), abs_tol=1e-6) and m["rewards/margins"] == 0.0


def test_reference_is_untouched_by_neftune(sft_model, smoke_data, tmp_path):
    model, _, pairs, _, _ = prepare(_cfg(sft_model, smoke_data, tmp_path))
    model.train()
    batch = collate_packed(pairs[:4])
    g = torch.Generator().manual_seed(0)
    _, _, pol_noisy, ref_noisy = dpo_step_loss(model, batch, 0.1, neftune_alpha=5.0, generator=g, return_logps=True)
    for mod in model.modules():  # dropout off, so only the noise differs
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    _, _, pol_clean, ref_clean = dpo_step_loss(model, batch, 0.1, neftune_alpha=0.0, return_logps=True)
    torch.testing.assert_close(ref_noisy, ref_clean, atol=0, rtol=0)
    assert (pol_noisy - pol_clean).abs().max() > 1e-4


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
        loss, _ = dpo_step_loss(model, batch, beta=0.1)
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (la, ga), (lb, gb) = grads
    assert abs(la - lb) < 1e-5
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-5, rtol=1e-4, msg=k)


def test_training_logs_rewards_and_merge_equals_adapter(sft_model, smoke_data, tmp_path):
    out = train(_cfg(sft_model, smoke_data, tmp_path / "run", max_steps=6))
    m = read_metrics(out)
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"} <= set(m.columns)
    held = json.loads((out / "heldout.json").read_text())
    assert math.isclose(held["before"]["loss"], math.log(2), abs_tol=1e-6) and held["before"]["rewards/margins"] == 0
    from peft import PeftModel

    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft_model), out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    ids = torch.tensor([tokenize_pair(load_pairs(smoke_data)[0], AutoTokenizer.from_pretrained(sft_model))["chosen"]["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapter(ids).logits, atol=1e-5, rtol=1e-4)


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
        loss, _ = dpo_step_loss(model, collate_packed(pairs[:6]), 0.1, neftune_alpha=5.0,
                                generator=torch.Generator().manual_seed(0))
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    assert model.is_activation_checkpointing
    (la, ga), (lb, gb) = results
    assert la == lb and ga.keys() == gb.keys()
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-6, rtol=1e-5, msg=k)
