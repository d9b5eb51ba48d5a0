"""Attention capture and rollout of the query token's row (Abnar & Zuidema), memory-lean.

Why this file exists: the rollout R = Ã_L · … · Ã_L0 (Ã_l = ½(mean_heads(A_l) + I)) is only needed
at one row, i_q (the last position). We never ask the model for its attention matrices
(``output_attentions`` forces eager attention and materialises L × H × N × N). Instead the
language model runs its normal sdpa attention through a registered wrapper that, for the layers in
the rollout range, keeps only what the chain needs:

- the top layer: the head-mean attention row of i_q alone, (B, N);
- every other layer: its head-mean attention, causal part only (row chunks ``A[r0:r1, :r1]``),
  computed from the layer's queries and keys ``chunk`` rows and one KV-head group at a time.

That is N²/2 floats per layer — less than the layer's queries and keys (N·(H+KVH)·D floats) for
every N below 2·(H+KVH)·D (8,192 for Qwen2.5-VL-7B), and never H × N × N. After the forward the
row is a vector–matrix chain from the top layer down.

On CUDA (inference) the chunks come from two fused Triton kernels (``rollout_triton``) that keep
the scores on chip; elsewhere, and with a padding mask, from plain torch ops (``_rows``). Both give
the same numbers (checked in the tests). The torch path is differentiable (soft-prompt training
backpropagates through it); with grad enabled each chunk is checkpointed, so the backward
recomputes it instead of storing softmaxes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import rollout_triton

ATTN_IMPLEMENTATION = "steerseg_sdpa"
TORCH_ROWS_PER_CHUNK = 256  # query rows per chunk on the torch path (two G×256×N fp32 transients)
_state = threading.local()


@dataclass
class LayerRecord:
    """What one rollout layer leaves behind: causal head-mean attention chunks (B, r1-r0, r1) by
    first row r0 — or, for the top layer, only the query row (B, N).

    With grad (training), the layer's queries and keys are kept instead and the chunks are
    computed, checkpointed, during the chain: computing them inside the forward would break a
    model's own activation checkpointing (the recomputed forward would not repeat the capture)."""

    n: int
    chunks: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    query_row: torch.Tensor | None = None
    lazy: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float] | None = None
    chunk: int = TORCH_ROWS_PER_CHUNK
    top: bool = False

    def blocks(self) -> Iterator[tuple[int, torch.Tensor]]:
        if self.lazy is None:
            yield from self.chunks
            return
        for r0 in range(0, self.n, self.chunk):
            r1 = min(r0 + self.chunk, self.n)
            yield r0, checkpoint(_rows, *self.lazy, r0, r1, use_reentrant=False)


@dataclass
class AttentionCapture:
    """Records the rollout inputs of the given attention modules during one forward pass."""

    modules: Sequence[nn.Module]
    chunk: int | None = None  # rows per chunk; None: 256 for the torch path, more for the fused one
    fused: bool = True  # use the Triton kernels where they can run
    records: dict[int, LayerRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {id(m): i for i, m in enumerate(self.modules)}

    def offer(self, module: nn.Module, query, key, mask, scaling) -> None:
        i = self._index.get(id(module))
        if i is None:
            return
        n = query.shape[-2]
        if key.shape[-2] != n:
            raise RuntimeError("attention capture needs a full forward pass (no KV cache)")
        extra = _extra_mask(mask, query)
        if torch.is_grad_enabled() and (query.requires_grad or key.requires_grad):
            self.records[i] = LayerRecord(n, lazy=(query, key, extra, float(scaling)), chunk=self.chunk or TORCH_ROWS_PER_CHUNK,
                                          top=(i == len(self.modules) - 1))
            return
        fused = self.fused and extra is None and rollout_triton.available(query)
        # A 16-bit model's probabilities are kept in fp16 (10-bit mantissa, relative error ≤ 2⁻¹¹,
        # finer than the bf16 activations they come from): half the memory of fp32.
        store = torch.float16 if fused and query.dtype in (torch.bfloat16, torch.float16) else torch.float32

        def rows(r0: int, r1: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            if fused:
                return rollout_triton.head_mean_rows(query, key, float(scaling), r0, r1, dtype)
            return _rows(query, key, extra, float(scaling), r0, r1)

        if i == len(self.modules) - 1:  # top layer: only the query's own row is used
            self.records[i] = LayerRecord(n, query_row=rows(n - 1, n)[:, 0], top=True)
            return
        step = self.chunk or (rollout_triton.ROWS_PER_CHUNK if fused else TORCH_ROWS_PER_CHUNK)
        rec = LayerRecord(n, chunk=step)
        rec.chunks = [(r0, rows(r0, min(r0 + step, n), store)) for r0 in range(0, n, step)]
        self.records[i] = rec

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


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32, or the input's own dtype where wider (float64 for gradient checks)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _rows(query: torch.Tensor, key: torch.Tensor, extra: torch.Tensor | None, scaling: float,
          r0: int, r1: int) -> torch.Tensor:
    """Head-mean causal attention probabilities of rows r0..r1-1 over columns 0..r1-1:
    (B, r1-r0, r1), float32. One KV-head group at a time, the mask applied in place, keeps the
    transient to two (B, H/KVH, R, r1) score tensors."""
    b, h, _, _ = query.shape
    kvh = key.shape[1]
    g = h // kvh
    rows = torch.arange(r0, r1, device=query.device).view(-1, 1)
    above = torch.arange(r0, r1, device=query.device).view(1, -1) > rows  # causal, diagonal block only
    out = None
    with torch.autocast(query.device.type, enabled=False):  # float32 even inside a caller's autocast
        for j in range(kvh):
            q = _wide(query[:, j * g:(j + 1) * g, r0:r1]) * scaling  # (B, G, R, D)
            k = _wide(key[:, j:j + 1, :r1])  # (B, 1, r1, D)
            scores = torch.matmul(q, k.transpose(-1, -2))  # (B, G, R, r1)
            scores[..., r0:r1].masked_fill_(above, float("-inf"))
            if extra is not None:
                e = extra[:, :, r0:r1, :r1]
                scores.masked_fill_(~(e if e.shape[1] == 1 else e[:, j * g:(j + 1) * g]), float("-inf"))
            probs = torch.softmax(scores, dim=-1)
            del scores
            if extra is not None:  # a padded row may have no visible column at all
                probs = probs.nan_to_num(0.0)
            part = probs.sum(dim=1)
            out = part if out is None else out + part
    return out / h


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
def capturing(modules: Sequence[nn.Module], chunk: int | None = None,
              fused: bool = True) -> Iterator[AttentionCapture]:
    """Within the block, forward passes record the rollout inputs of ``modules`` (the rollout
    layers, low→high; the last one is the top layer), ``chunk`` query rows at a time (None: the
    path's default). ``fused=False`` forces the torch path even where the Triton kernels run."""
    cap = AttentionCapture(list(modules), int(chunk) if chunk and chunk > 0 else None, fused)
    prev = getattr(_state, "capture", None)
    _state.capture = cap
    try:
        yield cap
    finally:
        _state.capture = prev


def rollout_step(rec: LayerRecord, v: torch.Tensor) -> torch.Tensor:
    """v · Ã = ½(v · mean_heads(A) + v) for a (B, N) float32 vector v, from the stored causal chunks
    (few, in-place ops: on a GPU this chain is launch-bound)."""
    out = v.clone()
    with torch.autocast(v.device.type, enabled=False):
        for r0, block in rec.blocks():
            r1 = r0 + block.shape[1]
            out[:, :r1] += torch.bmm(v[:, None, r0:r1], block.to(v.dtype))[:, 0]
    return out.mul_(0.5)


@dataclass
class RolloutRow:
    """The rollout row of the query token and per-layer summaries for display."""

    row: torch.Tensor  # (B, N) — R[i_q, :]
    layer_rows: list[torch.Tensor]  # per layer (low→high) the raw head-mean attention row of i_q: (B, N)


def _last_row(rec: LayerRecord) -> torch.Tensor:
    if rec.query_row is not None:
        return rec.query_row
    if rec.lazy is not None:
        return _rows(*rec.lazy, rec.n - 1, rec.n)[:, 0]
    return rec.chunks[-1][1][:, -1].float()


def rollout_row(records: Sequence[LayerRecord], query_index: int = -1, chunk: int | None = None) -> RolloutRow:
    """R[i_q, :] with R = Ã_L ⋯ Ã_L0, Ã = ½(mean_heads(A) + I); records ordered low → high.
    i_q is the last position (the response token); chunking happened at capture time."""
    if not records:
        raise ValueError("no layers to roll out")
    top = records[-1]
    if not top.top or query_index not in (-1, top.n - 1):
        raise ValueError("the rollout row is captured for the last position (the query token) only")
    n = top.n
    v = _wide(_last_row(top)) * 0.5  # e_q · Ã_L
    v[:, n - 1] += 0.5
    for rec in reversed(records[:-1]):
        v = rollout_step(rec, v)
    return RolloutRow(row=v, layer_rows=[_last_row(r).detach() for r in records])


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
