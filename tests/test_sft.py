"""SFT: accumulation-invariant loss, exact resume, safe checkpoints, packed == unpacked, config errors."""

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import make_tiny_model
from hermes3.core.config import ConfigError, check
from hermes3.train.sft import SFTConfig, last_complete_checkpoint, read_metrics, sample_weights, train


@pytest.fixture(scope="module")
def base(smoke_data, tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("base"), smoke_data / "tokenizer", seed=1)


def _cfg(base, smoke_data, out, **kw):
    d = dict(model=str(base), data=str(smoke_data), output_dir=str(out), max_length=256, lr=1e-3, warmup_steps=2,
             bf16="false", wandb_mode="disabled", save_each_epoch=False, logging_steps=1)
    d.update(kw)
    return SFTConfig(**d)


def _params(folder):
    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


@pytest.mark.parametrize("norm", ["token", "sample"])
def test_grad_accumulation_equals_large_batch(base, smoke_data, tmp_path, norm):
    a = train(_cfg(base, smoke_data, tmp_path / "a", rows_per_device=8, grad_accum=1, max_steps=1, loss_normalization=norm))
    # the global batch (8 rows) as the setting: 4 micro-steps of 2 rows derived for 1 process
    b = train(_cfg(base, smoke_data, tmp_path / "b", rows_per_device=2, global_batch=8, max_steps=1, loss_normalization=norm))
    la, lb = read_metrics(a).loss[0], read_metrics(b).loss[0]
    assert abs(la - lb) < 1e-5
    pa, pb = _params(a / "final"), _params(b / "final")
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=1e-6, rtol=1e-5, msg=k)


def test_resume_reproduces_losses_and_skips_half_written_checkpoint(base, smoke_data, tmp_path):
    # attention dropout on, so steps 4-6 also depend on the restored RNG state, not only on
    # the weights, optimizer and scheduler
    shutil.copytree(base, tmp_path / "base")
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    (tmp_path / "base" / "config.json").write_text(json.dumps({**config, "attention_dropout": 0.1}))
    base = tmp_path / "base"
    full = train(_cfg(base, smoke_data, tmp_path / "full", max_steps=6, save_steps=3))
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(full / "checkpoint-3", part / "checkpoint-3")
    shutil.copy(full / "metrics.csv", part / "metrics.csv")
    # a save that died midway: weights half written, no COMPLETE marker
    (part / "checkpoint-5").mkdir()
    (part / "checkpoint-5" / "model.safetensors").write_bytes(b"\x00" * 10)
    assert last_complete_checkpoint(part) == part / "checkpoint-3"
    train(_cfg(base, smoke_data, part, max_steps=6, save_steps=3, resume=True))
    a, b = read_metrics(full), read_metrics(part)
    assert list(a.step) == list(b.step) == [1, 2, 3, 4, 5, 6]
    # steps 4-6 were re-run from checkpoint-3 (the copied rows after step 3 are dropped):
    # per-step loss, grad norm (optimizer state) and LR schedule equal, exact on CPU
    for col in ("loss", "grad_norm", "learning_rate", "epoch"):
        assert list(a[col]) == list(b[col]), col
    pa, pb = _params(full / "final"), _params(part / "final")
    assert pa.keys() == pb.keys() and len(pa) > 10
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=0, rtol=0, msg=k)
    assert any(not torch.equal(pa[k], v) for k, v in _params(full / "checkpoint-3").items())  # steps 4-6 moved them


def test_packed_step_equals_unpacked_step(base, smoke_data):
    """One SGD step on packed rows == one step on the same samples padded, same normalisation."""
    from hermes3.train.modeling import packed_forward
    from hermes3.train.packing import PackedDataset, PaddingFreeCollator, pack

    tok = AutoTokenizer.from_pretrained(base)
    from hermes3.data.build import load_sft
    from hermes3.format.masking import tokenize_and_mask

    samples = [tokenize_and_mask(c, tok) for c in load_sft(smoke_data)[:6]]
    plan = pack([len(s["input_ids"]) for s in samples], 2048)
    batch = PaddingFreeCollator()([PackedDataset(samples, plan)[i] for i in range(plan.num_rows)])
    m1 = AutoModelForCausalLM.from_pretrained(base, attn_implementation="hermes_varlen_sdpa")
    m2 = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    n = int((batch["labels"][:, 1:] != -100).sum())
    logits = packed_forward(m1, {k: v for k, v in batch.items() if k != "labels"}).logits[0, :-1]
    torch.nn.functional.cross_entropy(logits, batch["labels"][0, 1:], ignore_index=-100, reduction="sum").div(n).backward()
    L = max(len(s["input_ids"]) for s in samples)
    ids = torch.zeros(len(samples), L, dtype=torch.long)
    lab = torch.full((len(samples), L), -100)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(samples):
        k = len(s["input_ids"])
        ids[i, :k], lab[i, :k], mask[i, :k] = torch.tensor(s["input_ids"]), torch.tensor(s["labels"]), 1
    lab[:, 0] = -100
    out = m2(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1]
    torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), lab[:, 1:].reshape(-1), ignore_index=-100,
                                      reduction="sum").div(n).backward()
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        with torch.no_grad():
            torch.testing.assert_close(p1 - 0.1 * p1.grad, p2 - 0.1 * p2.grad, atol=1e-6, rtol=0, msg=name)


def test_sample_weights():
    labels = torch.tensor([[-100, 5, 6, -100, -100, 7]])
    pos = torch.tensor([[0, 1, 2, 0, 1, 2]])
    w = sample_weights(labels, pos)
    # shifted targets: [5, 6, -100, -100, 7]; sample 1 has 2 targets, sample 2 has 1
    assert w.tolist() == [[0.5, 0.5, 0.0, 0.0, 1.0]]


@pytest.mark.parametrize("kw,msg", [({"lr": 0}, "lr must be > 0"), ({"max_length": 100}, "multiple of 8"),
                                    ({"loss_normalization": "mean"}, "loss_normalization"),
                                    ({"overlong": "wrap"}, "overlong")])
def test_config_errors_before_loading(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        check(SFTConfig(**kw))


def test_empty_dataset_is_one_line(base, tmp_path):
    f = tmp_path / "empty.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(ConfigError, match="empty after filtering"):
        train(_cfg(base, f, tmp_path / "o", max_steps=1))
    with pytest.raises(ConfigError, match="data .*missing.jsonl does not exist"):
        train(_cfg(base, tmp_path / "missing.jsonl", tmp_path / "o2", max_steps=1))


@pytest.mark.parametrize("norm", ["token", "sample"])
def test_trainer_loss_on_target_positions_equals_full_logits(base, smoke_data, norm):
    """compute_loss projects only target positions to the vocabulary (logits_to_keep); its loss
    and gradients equal the plain computation over all logits."""
    from types import SimpleNamespace

    from hermes3.data.build import load_sft
    from hermes3.format.masking import tokenize_and_mask
    from hermes3.train.packing import PackedDataset, PaddingFreeCollator, pack
    from hermes3.train.sft import _trainer_class, num_samples_with_targets

    tok = AutoTokenizer.from_pretrained(base)
    samples = [tokenize_and_mask(c, tok) for c in load_sft(smoke_data)[:8]]
    plan = pack([len(s["input_ids"]) for s in samples], 4096)
    batch = PaddingFreeCollator()([PackedDataset(samples, plan)[i] for i in range(plan.num_rows)])
    grads = []
    for fast in (True, False):
        model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="hermes_varlen_sdpa")
        if fast:
            me = SimpleNamespace(loss_normalization=norm, tokens_seen=0, args=SimpleNamespace(average_tokens_across_devices=False))
            loss = _trainer_class().compute_loss(me, model, dict(batch))
        else:  # the reference: every position's logits, per-token CE, the chosen normalisation
            labels = batch["labels"]
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits[0, :-1]
            ce = torch.nn.functional.cross_entropy(logits, labels[0, 1:], ignore_index=-100, reduction="none")
            if norm == "token":
                loss = ce.sum() / (labels[0, 1:] != -100).sum()
            else:
                loss = (ce * sample_weights(labels, batch["position_ids"])[0]).sum() / num_samples_with_targets(
                    labels, batch["position_ids"])
        loss.backward()
        grads.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (la, ga), (lb, gb) = grads
    assert abs(la - lb) < 1e-6
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], atol=1e-6, rtol=1e-5, msg=k)


def test_default_saves_each_epoch_and_the_last_equals_final(base, smoke_data, tmp_path):
    """save_each_epoch=True (the default): one complete checkpoint per epoch end, listed in
    order by epoch_checkpoints, the last one holding the final weights."""
    import math

    from hermes3.train.sft import epoch_checkpoints

    assert SFTConfig().save_each_epoch is True
    cfg = _cfg(base, smoke_data, tmp_path / "run", epochs=2, max_length=2048, rows_per_device=4)
    cfg.save_each_epoch = True
    out = train(cfg)
    rows = json.loads((out / "packing.json").read_text())["rows"]
    per_epoch = math.ceil(rows / 4)  # optimizer steps in one pass over the packed rows
    ckpts = epoch_checkpoints(out)
    assert [(e, p.name) for e, p in ckpts] == [(1.0, f"checkpoint-{per_epoch}"), (2.0, f"checkpoint-{2 * per_epoch}")]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == sorted(p.name for _, p in ckpts)  # nothing else
    m = read_metrics(out)
    assert list(m.step) == list(range(1, 2 * per_epoch + 1)) and m.epoch.iloc[-1] == 2.0
    first, last, final = _params(ckpts[0][1]), _params(ckpts[1][1]), _params(out / "final")
    for k in final:
        torch.testing.assert_close(last[k], final[k], atol=0, rtol=0, msg=k)
    assert any(not torch.equal(first[k], final[k]) for k in final)  # epoch 2 trained


def test_sample_normalization_counts_conversations_and_weighs_them_equally(base, smoke_data, tmp_path):
    """loss_normalization=sample, through the Trainer's own methods: the optimizer step's
    denominator is the number of conversations with a target, counted here from the samples
    before packing, and the step's loss (summed over its micro-batches) is each conversation's
    mean cross-entropy, from a plain unpacked forward of that conversation alone, averaged."""
    from transformers import TrainingArguments

    from hermes3.data.build import load_sft
    from hermes3.format.masking import tokenize_and_mask
    from hermes3.train.packing import PackedDataset, PaddingFreeCollator, pack
    from hermes3.train.sft import _trainer_class

    tok = AutoTokenizer.from_pretrained(base)
    samples = [tokenize_and_mask(c, tok) for c in load_sft(smoke_data)[:7]]
    samples.append({**samples[0], "labels": [-100] * len(samples[0]["labels"])})  # a conversation with no target

    def micro_batch(part):
        plan = pack([len(s["input_ids"]) for s in part], 4096)
        assert sorted(i for row in plan.rows for i in row) == list(range(len(part)))
        return PaddingFreeCollator()([PackedDataset(part, plan)[i] for i in range(plan.num_rows)])

    batches = [micro_batch(samples[:3]), micro_batch(samples[3:])]
    conversations = sum(any(lab != -100 for lab in s["labels"][1:]) for s in samples)
    targets = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    assert conversations == 7 and targets > 10 * conversations
    model = AutoModelForCausalLM.from_pretrained(base, attn_implementation="hermes_varlen_sdpa")
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, average_tokens_across_devices=False)
    trainer = _trainer_class()(model=model, args=args, loss_normalization="sample")
    n = trainer._get_num_items_in_batch(batches, torch.device("cpu"))
    assert int(n) == conversations
    with torch.no_grad():
        loss = sum(trainer.compute_loss(model, dict(b), num_items_in_batch=n).item() for b in batches)
        plain = AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
        means = []
        for s in samples:
            lab = torch.tensor(s["labels"][1:])
            if (lab != -100).any():
                logits = plain(torch.tensor([s["input_ids"]]), use_cache=False).logits[0, :-1].double()
                means.append(torch.nn.functional.cross_entropy(logits, lab, ignore_index=-100).item())
    assert len(means) == conversations
    assert abs(loss - sum(means) / len(means)) < 1e-5, (loss, sum(means) / len(means))
