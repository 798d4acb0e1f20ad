"""Attention for packed rows: flash-attn varlen on CUDA, a per-sample SDPA elsewhere.

transformers isolates packed samples under ``sdpa``/``eager`` by building a full L x L
block-diagonal mask from ``position_ids``: on CPU that is no faster than padding
(``benchmarks/packing.py``), and ``flex_attention`` has no CPU backward. flash-attn's varlen
kernel, which the report used, needs CUDA. So for everything else we register
``hermes_varlen_sdpa`` through transformers' ``AttentionInterface``: it runs causal SDPA
on each sample's slice separately, which is exact and never materialises a mask.

Sample boundaries come from ``cu_seq_lens_q`` when the collator passes it, else from
``position_ids`` resets (a row that starts mid-sample still starts a segment at 0).

It ignores a padding ``attention_mask``: transformers passes none to custom kernels, so
use it with padding-free or right-padded batches (causal attention never reaches right
padding), not left-padded generation batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ATTENTION_NAME = "hermes_varlen_sdpa"


def _segments(kwargs: dict, batch: int, length: int, device) -> list[list[tuple[int, int]]]:
    """Per batch row, the ``(start, end)`` of each sample."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        if batch != 1:
            raise ValueError(f"cu_seq_lens_q describes one flattened row, got a batch of {batch}")
        b = cu.tolist()
        if b[0] != 0 or b[-1] != length or any(y < x for x, y in zip(b, b[1:])):
            raise ValueError(f"cu_seq_lens_q must rise from 0 to the row length {length}, got {b}")
        return [[(b[i], b[i + 1]) for i in range(len(b) - 1) if b[i + 1] > b[i]]]
    pos = kwargs.get("position_ids")
    if pos is None:
        return [[(0, length)] for _ in range(batch)]
    pos = pos.expand(batch, -1) if pos.shape[0] == 1 and batch > 1 else pos
    out = []
    for row in pos:
        starts = (row == 0).nonzero().flatten().tolist()
        if not starts or starts[0] != 0:
            starts = [0] + starts
        ends = starts[1:] + [length]
        out.append(list(zip(starts, ends)))
    return out


def varlen_sdpa_attention(module, query, key, value, attention_mask=None, dropout: float = 0.0,
                          scaling: float | None = None, **kwargs):
    """Causal SDPA run per packed sample. Shapes as transformers' ``sdpa_attention_forward``:
    query ``[B, H, L, D]``, key/value ``[B, Hkv, S, D]``; returns ``([B, L, H, D], None)``."""
    B, H, L, _ = query.shape
    n_rep = H // key.shape[1]
    if n_rep > 1:  # grouped-query attention: share each kv head across its query heads
        key = key.repeat_interleave(n_rep, dim=1)
        value = value.repeat_interleave(n_rep, dim=1)
    S = key.shape[2]
    if S != L:
        # Decoding with a cache: one sequence, queries are the last L positions.
        mask = torch.arange(L, device=query.device)[:, None] + (S - L) >= torch.arange(S, device=query.device)[None]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    segments = _segments(kwargs, B, L, query.device)
    if all(len(s) == 1 for s in segments):  # nothing packed: one fused call
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, dropout_p=dropout, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    return _bucketed(query, key, value, segments, dropout, scaling), None


def _bucketed(query, key, value, segments, dropout, scaling):
    """Causal SDPA per sample, batched: samples of similar length (power-of-two buckets)
    are right-padded to the bucket's longest and run as one batch with ``is_causal``.
    Right padding is exact under a causal mask (a real query never sees a later padded
    key); padded outputs are dropped. A loop of one SDPA per sample was exact too, but
    its per-call overhead dominated rows of many short conversations (10x slower)."""
    B, H, L, D = query.shape
    flat = lambda t: t.transpose(1, 2).reshape(B * L, H, D)  # noqa: E731  [tokens, heads, dim]
    q, k, v = flat(query), flat(key), flat(value)
    segs = [(b * L + s, e - s) for b, row in enumerate(segments) for s, e in row]
    buckets: dict[int, list[tuple[int, int]]] = {}
    for start, n in segs:
        buckets.setdefault(max(n - 1, 0).bit_length(), []).append((start, n))
    out = torch.empty_like(q)
    for group in buckets.values():
        width = max(n for _, n in group)
        pos = torch.arange(width, device=q.device)
        starts = torch.tensor([s for s, _ in group], device=q.device)
        lens = torch.tensor([n for _, n in group], device=q.device)
        valid = pos[None] < lens[:, None]  # [n, width]
        idx = starts[:, None] + torch.minimum(pos[None], lens[:, None] - 1)  # padding repeats the last token
        qb, kb, vb = (t[idx].transpose(1, 2) for t in (q, k, v))  # [n, heads, width, dim]
        o = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, dropout_p=dropout, scale=scaling)
        out = out.index_copy(0, idx[valid], o.transpose(1, 2)[valid])
    return out.view(B, L, H, D)


def register() -> str:
    """Register ``hermes_varlen_sdpa`` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, varlen_sdpa_attention)
    return ATTENTION_NAME


def flash_attn_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def choose_attention(device: str | torch.device | None = None) -> str:
    """``flash_attention_2`` (varlen, as in the report) on CUDA when flash-attn is
    installed, else our per-sample SDPA (registered on the way)."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda" and flash_attn_available():
        return "flash_attention_2"
    return register()


# Registered on import so the name works anywhere once hermes3 is imported, e.g.
# AutoModelForCausalLM.from_pretrained(..., attn_implementation="hermes_varlen_sdpa").
register()
