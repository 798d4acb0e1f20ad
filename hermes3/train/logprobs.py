"""Per-token log-probabilities of the labels: the one scoring path of SFT and DPO.

A Llama 3 vocabulary has 128,256 entries, so full-vocabulary fp32 logits of one 8,192-token row
take 4.2 GB, and their log-softmax and gradient as much again. Above ``FUSED_MIN_VOCAB`` the
scores come from TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``): the head is
projected in tiles of ``TILE_TOKENS`` x ``TILE_VOCAB`` with an online log-sum-exp, forward and
backward, so no ``[tokens, vocab]`` tensor larger than one tile exists. Below it (the demo's own
small vocabularies) the plain head is smaller and faster (``benchmarks/memory.py``).

The plain path projects only the positions that have a label (transformers' ``logits_to_keep``)
when a batch is one padding-free row, as packed SFT and DPO batches are.
"""

from __future__ import annotations

import torch

from hermes3.format.masking import IGNORE_INDEX

# The tile TRL's fused head works in (trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE and
# trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE); hermes3 plan counts the logits term from it.
TILE_TOKENS, TILE_VOCAB = 4096, 32768
# Vocabularies from one tile's width on are scored by the fused head; below it a tile holds as many
# columns as the plain logits. benchmarks/memory.py on one 8,192-token row, 2 layers of hidden 256, CPU:
# at 4,096 entries (the demo) the fused head takes 2.4x the plain head's peak memory at 0.59x its
# tokens/s (SFT; DPO 2.1x, 0.66x); at 128,256 it takes 0.75x (SFT and DPO) at 0.47x (SFT) and 0.34x
# (DPO) tokens/s. On CPU TRL's torch fallback scores every position and keeps several fp32 tile-sized
# temporaries; its Triton kernel on GPUs scores only labelled positions and keeps none.
FUSED_MIN_VOCAB = TILE_VOCAB


def uses_fused_head(config) -> bool:
    """Whether a model of this config is scored through the fused head."""
    return config.vocab_size >= FUSED_MIN_VOCAB


def add_fused_head(model):
    """Patch ``model`` (before PEFT wraps it, as TRL does) so that ``label_logprobs`` can score
    it through the fused head, when its vocabulary is large enough. Returns ``model``."""
    if uses_fused_head(model.config) and not getattr(model, "hermes3_fused_head", False):
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model)
        model.hermes3_fused_head = True
    return model


def has_fused_head(model) -> bool:
    """Whether ``add_fused_head`` patched ``model`` (or the model inside a PEFT/DDP/FSDP wrapper)."""
    seen = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        if getattr(model, "hermes3_fused_head", False):
            return True
        model = getattr(model, "module", None) or getattr(getattr(model, "base_model", None), "model", None)
    return False


def label_logprobs(model, inputs: dict, labels: torch.Tensor, fused: bool) -> torch.Tensor:
    """``log p(labels[:, t + 1] | tokens[:t + 1])`` for every position: ``[batch, seq - 1]``, 0.0
    where the label is ``IGNORE_INDEX``. ``model`` is what runs the forward pass (under DDP/FSDP the
    wrapped model, so its hooks run); ``fused`` says whether it carries the fused head."""
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    if fused:
        return model(**inputs, labels=labels, fused_lm_head=True).log_probs
    if labels.shape[0] == 1:
        keep = mask[0].nonzero().squeeze(1)
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits[0]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, target[0, keep, None]).squeeze(-1)
        return torch.zeros(target.shape, dtype=lp.dtype, device=lp.device).index_put((torch.zeros_like(keep), keep), lp)
    logits = model(**inputs, use_cache=False).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
    return lp * mask
