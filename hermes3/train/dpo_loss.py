"""The DPO step on packed preference pairs: collation, per-sequence log-probs, NEFTune, the
sigmoid loss and the reward metrics (report §4.2; Rafailov et al. 2023, arXiv:2305.18290).

``dpo_step`` is what training runs (``hermes3.train.dpo_trainer``) and what the tests check
against TRL's ``DPOTrainer``; ``evaluate_pairs`` scores held-out pairs with the same terms.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from hermes3.format.masking import IGNORE_INDEX
from hermes3.train.logprobs import has_fused_head, label_logprobs


def collate_packed(pairs: list[dict]) -> dict:
    """All sequences (chosen_0, rejected_0, chosen_1, ...) in one padding-free row.
    ``seq_index[t]`` says which sequence token ``t`` belongs to."""
    ids, labels, pos, seq, lens = [], [], [], [], []
    k = 0
    for p in pairs:
        for side in ("chosen", "rejected"):
            s = p[side]
            n = len(s["input_ids"])
            ids += s["input_ids"]
            labels += [IGNORE_INDEX] + s["labels"][1:]
            pos += range(n)
            seq += [k] * n
            lens.append(n)
            k += 1
    cu = torch.tensor([0] + lens).cumsum(0).to(torch.int32)
    return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([pos]),
            "seq_index": torch.tensor(seq), "num_sequences": k, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": max(lens), "max_length_k": max(lens)}


def collate_padded(pairs: list[dict], pad_id: int = 0) -> dict:
    """The same sequences right-padded into a [2 x pairs, longest] batch (TRL's layout)."""
    seqs = [p[side] for p in pairs for side in ("chosen", "rejected")]
    L = max(len(s["input_ids"]) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id)
    labels = torch.full((len(seqs), L), IGNORE_INDEX)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s["input_ids"])
        ids[i, :n] = torch.tensor(s["input_ids"])
        labels[i, 1:n] = torch.tensor(s["labels"][1:])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "num_sequences": len(seqs)}


# ---------------------------------------------------------------------- log-probs & loss


@contextlib.contextmanager
def neftune(model, alpha: float, position_ids: torch.Tensor | None, generator: torch.Generator | None = None):
    """NEFTune noise on the input embeddings inside this block, in training mode only (Jain et
    al. 2023, arXiv:2310.05914). Scale per sequence: alpha / sqrt(len x dim), the paper's formula
    with len the sample's own length. The noise is drawn at the block's first forward and added
    unchanged at every later one, so the passes of one block see the same noisy embeddings
    (``dpo_step`` runs reference and policy in one block: why there). ``model`` is the unwrapped
    model (the one with ``get_input_embeddings``); ``generator`` lives on the embeddings' device."""
    if alpha <= 0:
        yield
        return
    emb = model.get_input_embeddings()
    drawn = []  # the block's one noise draw

    def hook(module, inputs, output):
        if not module.training:
            return output
        if not drawn:
            drawn.append(_neftune_noise(output, alpha, position_ids, generator))
        return output + drawn[0]

    handle = emb.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _neftune_noise(output: torch.Tensor, alpha: float, position_ids: torch.Tensor | None, generator) -> torch.Tensor:
    """Uniform(-1, 1) noise shaped like the embeddings ``output``, scaled per sequence (``neftune``)."""
    d = output.shape[-1]
    if position_ids is not None:
        seg = (position_ids == 0).cumsum(-1)
        lengths = torch.zeros_like(position_ids).scatter_add_(-1, seg - 1, torch.ones_like(position_ids))
        n = lengths.gather(-1, seg - 1).to(output.dtype)
    else:
        n = torch.full(output.shape[:-1], output.shape[-2], dtype=output.dtype, device=output.device)
    scale = (alpha / torch.sqrt(n * d)).unsqueeze(-1)
    noise = torch.rand(output.shape, generator=generator, device=output.device, dtype=output.dtype) * 2 - 1
    return noise * scale


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """Sum of log p(label) over each sequence's labelled tokens: one value per sequence."""
    fused = has_fused_head(model)
    if "attention_mask" in batch:  # padded
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        return label_logprobs(model, inputs, batch["labels"], fused).sum(-1)
    kw = {k: batch[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q",
                                "max_length_k")}
    tok = label_logprobs(model, kw, batch["labels"], fused)[0]
    return torch.zeros(batch["num_sequences"], dtype=tok.dtype, device=tok.device).index_add(
        0, batch["seq_index"][1:].to(tok.device), tok)


METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


def pair_accuracy(margins) -> torch.Tensor:
    """Each pair's preference accuracy from its reward margin: 1 if the margin is > 0, 0.5 if it
    is 0, 0 if < 0. A tie counts half: a fresh adapter (policy == reference, every margin 0)
    scores chance, 0.5, not 0. The one rule of the training logs (``pair_terms``), the held-out
    table (``evaluate_pairs``) and the manifest (``hermes3.recipe.stages``).

    >>> pair_accuracy([0.3, 0.0, -0.1]).tolist()
    [1.0, 0.5, 0.0]
    """
    return (torch.sign(torch.as_tensor(margins)) + 1) / 2


def pair_terms(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair: the sigmoid DPO loss, and the logged quantities (columns in ``METRICS`` order),
    from per-sequence log-probs ordered (chosen, rejected, chosen, ...). Accuracy counts a tie
    (margin exactly 0) as half a pair (``pair_accuracy``)."""
    pc, pr, rc, rr = policy[0::2], policy[1::2], reference[0::2], reference[1::2]
    chosen_r, rejected_r = beta * (pc - rc), beta * (pr - rr)
    losses = -F.logsigmoid(chosen_r - rejected_r)
    logged = torch.stack([chosen_r, rejected_r, chosen_r - rejected_r, pair_accuracy(chosen_r - rejected_r),
                          pc, pr], -1).detach()
    return losses, logged


def dpo_step(model, batch: dict, beta: float, neftune_alpha: float = 0.0, generator=None, peft=None):
    """One DPO step's per-pair terms, as ``DPOEngineTrainer.compute_loss`` trains on them:
    the reference pass (adapter off, no grad), then the policy pass (adapter on), both on the
    same NEFTune-noised input embeddings (one ``neftune`` block, one draw). Returns
    ``(losses, logged, policy, reference)``: per-pair sigmoid losses, the ``METRICS`` columns per
    pair, and the per-sequence log-probs. ``model`` runs the forward passes (under DDP/FSDP: the
    wrapped model, so its hooks run); ``peft`` is the unwrapped PeftModel whose adapter is
    switched off (default: ``model``).

    Why the reference sees the policy's noise: a reward beta x (log pi - log pi_ref) should
    measure what the adapter learned. Against a noise-free reference, a noised policy loses
    log-probability on every completion token, so the logged rewards were mostly a noise
    penalty summed over each completion (negative, following lengths, not preferences: notebook
    06's Fig. 5 logged a margin of -0.4 at step 1, where policy == reference). With one draw a
    fresh adapter gives policy == reference exactly (margins 0, accuracy 0.5), and the loss is
    DPO on noised inputs in both terms. TRL's ``DPOTrainer`` noises its reference pass too
    (transformers' NEFTune hook fires there, the model being in training mode) but with a draw
    of its own, which leaves the step-1 margins noise rather than 0."""
    peft = model if peft is None else peft
    with neftune(peft, neftune_alpha, batch.get("position_ids"), generator):
        with torch.no_grad(), peft.disable_adapter():
            ref = sequence_logps(model, batch)
        pol = sequence_logps(model, batch)
    losses, logged = pair_terms(pol, ref, beta)
    return losses, logged, pol, ref


@torch.no_grad()
def evaluate_pairs(model, pairs: list[dict], beta: float, batch_pairs: int = 16, per_pair: bool = False,
                   peft=None, reference_only: bool = False, ref_cache: dict | None = None) -> dict:
    """Held-out reward metrics (no noise, no dropout), each the mean over the pairs (accuracy:
    a tie counts half, ``pair_accuracy``); ``per_pair`` adds ``margins``, each pair's reward
    margin in order (for an interval on the accuracy, and accuracy by pair type).
    ``model`` runs the passes (wrapped under DDP/FSDP), ``peft`` is the unwrapped PeftModel.
    ``reference_only``: the model before DPO, i.e. the reference itself (policy = reference:
    loss ln 2, margins 0, log-probs of the SFT model). ``ref_cache``: a dict kept across calls on
    the same ``pairs``: the reference (adapters off, frozen weights) gives the same log-probs at
    every evaluation, so they are computed once (TRL's ``precompute_ref_log_probs`` idea; in the
    demo, 7 reference passes over the held-out pairs became 1)."""
    peft = model if peft is None else peft
    device = next(peft.parameters()).device
    was = model.training
    model.eval()
    sums, n, margins = None, 0, []
    for k in range(0, len(pairs), batch_pairs):
        batch = {key: v.to(device) if torch.is_tensor(v) else v for key, v in collate_packed(pairs[k:k + batch_pairs]).items()}
        key = (k, batch_pairs, len(pairs))
        if ref_cache is not None and key in ref_cache:
            ref = ref_cache[key]
        else:
            with peft.disable_adapter():
                ref = sequence_logps(model, batch)
            if ref_cache is not None:
                ref_cache[key] = ref
        pol = ref if reference_only else sequence_logps(model, batch)
        losses, logged = pair_terms(pol, ref, beta)
        margins += logged[:, 2].tolist()
        s = torch.cat([losses[:, None], logged], 1).double().sum(0)
        sums = s if sums is None else sums + s
        n += losses.numel()
    model.train(was)
    out = dict(zip(("loss", *METRICS), (sums / n).tolist(), strict=True))
    out = {k: out[k] for k in (*METRICS, "loss")}  # the column order of heldout.csv
    return {**out, "margins": margins} if per_pair else out
