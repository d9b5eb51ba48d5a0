"""Attention capture and rollout of the query token's row (Abnar & Zuidema), memory-lean.

Why this file exists: the rollout R = Ã_L · … · Ã_L0 (Ã_l = ½(mean_heads(A_l) + I)) is only needed
at one row, i_q. We never ask the model for its attention matrices (``output_attentions`` forces
eager attention and materialises L × H × N × N). Instead the language model runs its normal sdpa
attention through a registered wrapper that, for the layers in the rollout range, keeps only the
post-RoPE queries and keys. After the forward, the row is computed as a vector–matrix chain from the
top layer down, recomputing each layer's head-mean attention ``chunk`` query rows at a time.

The same code is differentiable (soft-prompt training backpropagates through it); with grad
enabled each chunk is checkpointed so the backward never stores H × N × N either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

ATTN_IMPLEMENTATION = "steerseg_sdpa"
_state = threading.local()


@dataclass
class LayerRecord:
    query: torch.Tensor  # (B, H, N, D), post-RoPE
    key: torch.Tensor  # (B, KVH, N, D), post-RoPE
    scaling: float
    mask: torch.Tensor | None  # extra (B, 1|H, N, N) mask beyond causal, bool keep or additive float


@dataclass
class AttentionCapture:
    """Records queries/keys of the given attention modules during one forward pass."""

    modules: Sequence[nn.Module]
    records: dict[int, LayerRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {id(m): i for i, m in enumerate(self.modules)}

    def offer(self, module: nn.Module, query, key, mask, scaling) -> None:
        i = self._index.get(id(module))
        if i is None:
            return
        if key.shape[-2] != query.shape[-2]:
            raise RuntimeError("attention capture needs a full forward pass (no KV cache)")
        self.records[i] = LayerRecord(query, key, float(scaling), _extra_mask(mask, query))

    def ordered(self) -> list[LayerRecord]:
        missing = [i for i in range(len(self.modules)) if i not in self.records]
        if missing:
            raise RuntimeError(f"no attention captured for rollout layers at positions {missing}")
        return [self.records[i] for i in range(len(self.modules))]


def _extra_mask(mask: torch.Tensor | None, query: torch.Tensor) -> torch.Tensor | None:
    """Keep a 4-D mask only if it says more than 'causal' (padding); None otherwise."""
    if mask is None or mask.dim() != 4:
        return None
    n = query.shape[-2]
    m = mask[..., -n:, -n:]
    keep = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    causal = torch.ones(n, n, dtype=torch.bool, device=m.device).tril()
    if torch.equal(keep & causal, causal.expand_as(keep)) or torch.equal(keep, causal.expand_as(keep)):
        return None
    return keep


def _steerseg_attention(module, query, key, value, attention_mask, *args, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    capture: AttentionCapture | None = getattr(_state, "capture", None)
    if capture is not None:
        scaling = kwargs.get("scaling")
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        capture.offer(module, query, key, attention_mask, scaling)
    return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)


def register_attention() -> None:
    """Register our sdpa wrapper (and sdpa's mask builder) under ATTN_IMPLEMENTATION."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, _steerseg_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_IMPLEMENTATION, sdpa_mask)


@contextmanager
def capturing(modules: Sequence[nn.Module]) -> Iterator[AttentionCapture]:
    """Within the block, forward passes record Q/K of ``modules`` (the rollout layers, low→high)."""
    cap = AttentionCapture(list(modules))
    prev = getattr(_state, "capture", None)
    _state.capture = cap
    try:
        yield cap
    finally:
        _state.capture = prev


def _attention_rows(rec: LayerRecord, rows: torch.Tensor | slice, n: int) -> torch.Tensor:
    """Head-mean attention probabilities for the given query rows: (B, R, N), float32."""
    q = rec.query[:, :, rows]  # (B, H, R, D)
    b, h, r, d = q.shape
    kvh = rec.key.shape[1]
    q = q.reshape(b, kvh, h // kvh, r, d).float()
    k = rec.key.float().unsqueeze(2)  # (B, KVH, 1, N, D)
    with torch.autocast(q.device.type, enabled=False):  # float32 even inside a caller's autocast
        scores = torch.matmul(q, k.transpose(-1, -2)) * rec.scaling  # (B, KVH, G, R, N)
    row_idx = torch.arange(n, device=q.device)[rows].view(r, 1)
    keep = torch.arange(n, device=q.device).view(1, n) <= row_idx  # causal
    if rec.mask is not None:
        extra = rec.mask[:, :, rows].to(q.device)  # (B, 1|H, R, N)
        extra = extra.unsqueeze(2) if extra.shape[1] == 1 else extra.reshape(b, kvh, h // kvh, r, n)
        keep = keep & extra
    scores = scores.masked_fill(~keep, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return probs.mean(dim=(1, 2))  # (B, R, N)


def _chunk_product(rec: LayerRecord, v_chunk: torch.Tensor, start: int, stop: int, n: int) -> torch.Tensor:
    probs = _attention_rows(rec, slice(start, stop), n)
    with torch.autocast(probs.device.type, enabled=False):
        return torch.bmm(v_chunk.float().unsqueeze(1), probs).squeeze(1)


def vector_times_attention(rec: LayerRecord, v: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """v · mean_heads(A) for a (B, N) vector v, chunked over query rows (skips zero rows)."""
    n = rec.query.shape[-2]
    out = torch.zeros_like(v)
    nonzero = (v != 0).any(dim=0).nonzero()
    last = int(nonzero.max()) + 1 if nonzero.numel() else 0
    for start in range(0, last, chunk):
        stop = min(start + chunk, last)
        vc = v[:, start:stop]
        if torch.is_grad_enabled() and (vc.requires_grad or rec.query.requires_grad):
            out = out + checkpoint(_chunk_product, rec, vc, start, stop, n, use_reentrant=False)
        else:
            out = out + _chunk_product(rec, vc, start, stop, n)
    return out


@dataclass
class RolloutRow:
    """The rollout row of the query token and per-layer summaries for display."""

    row: torch.Tensor  # (B, N) — R[i_q, :]
    layer_rows: list[torch.Tensor]  # per layer (low→high) the raw head-mean attention row of i_q: (B, N)


def rollout_row(records: Sequence[LayerRecord], query_index: int = -1, chunk: int = 256) -> RolloutRow:
    """R[i_q, :] with R = Ã_L ⋯ Ã_L0, Ã = ½(mean_heads(A) + I); records ordered low → high."""
    if not records:
        raise ValueError("no layers to roll out")
    top = records[-1]
    b, _, n, _ = top.query.shape
    q = query_index % n
    device = top.query.device
    e_q = torch.zeros(b, n, device=device)
    e_q[:, q] = 1.0
    layer_rows = [_attention_rows(rec, slice(q, q + 1), n)[:, 0] for rec in records]
    v = 0.5 * (layer_rows[-1] + e_q)
    for rec in reversed(records[:-1]):
        v = 0.5 * (vector_times_attention(rec, v, chunk) + v)
    return RolloutRow(row=v, layer_rows=[r.detach() for r in layer_rows])


def dense_rollout_row(attentions: Sequence[torch.Tensor], query_index: int = -1) -> torch.Tensor:
    """Reference: explicit Ã products from full (B, H, N, N) attentions (low → high). Tests only."""
    rollout = None
    for a in attentions:
        a_tilde = 0.5 * (a.float().mean(dim=1) + torch.eye(a.shape[-1], device=a.device))
        rollout = a_tilde if rollout is None else torch.bmm(a_tilde, rollout)
    return rollout[:, query_index]


def normalise_maps(maps: torch.Tensor, dims: int) -> torch.Tensor:
    """Min-max normalise each map (over its last ``dims`` dims) to [0, 1]; constant → zeros."""
    flat = maps.flatten(-dims)
    lo = flat.min(dim=-1, keepdim=True).values
    hi = flat.max(dim=-1, keepdim=True).values
    span = (hi - lo).clamp_min(1e-12)
    out = torch.where(hi - lo > 1e-12, (flat - lo) / span, torch.zeros_like(flat))
    return out.view_as(maps)
