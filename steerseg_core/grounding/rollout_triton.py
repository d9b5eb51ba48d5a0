"""Fused head-mean causal attention rows for the rollout capture on CUDA (Triton).

Why this file exists: on a GPU the capture's work in plain torch ops is memory-bound — for every
row chunk it writes H × R × N fp32 scores, reads them back for the softmax, writes the
probabilities and reads them again for the head mean: at N ≈ 4,200 on Qwen2.5-VL-7B shapes that
is gigabytes of traffic per layer, more than the layer's own work. Two small kernels do the same
arithmetic with the scores kept on chip:

1. ``_lse_kernel``: per (row block, head) the log-sum-exp of the causal scaled scores, computed
   online over column blocks (as flash attention does);
2. ``_mean_kernel``: per (row block, column block) the sum over heads of exp(score − lse), then
   divided by H, written once: the only large write is the (R, r1) fp32 result itself.

Scores are bf16/fp16 products accumulated in fp32 (exactly what sdpa computes) or, for fp32
inputs, IEEE fp32 products; the softmax and the head mean are fp32 (the capture stores a
16-bit model's result in fp16). Inference only: training
(which needs autograd) uses the torch path in ``rollout._rows``. The kernels run under Triton's
CPU interpreter too (``TRITON_INTERPRET=1``), which is how CI checks them against the torch path.
"""

from __future__ import annotations

import logging

import torch

from ..config import triton_interpret

try:  # Triton ships with the Linux CUDA builds of torch; elsewhere the torch path is used
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the platform
    triton = None

ROWS_PER_CHUNK = 1024  # fewer, larger launches on a GPU; the result is (B, R, r1) per chunk


_log = logging.getLogger(__name__)
_warned: list[bool] = []


def available(query: torch.Tensor) -> bool:
    """True when the fused kernels can run on ``query``'s device (CUDA, or Triton's interpreter)."""
    if triton is None:
        if query.is_cuda and not _warned:
            _warned.append(True)
            _log.warning("Triton is not installed: the rollout capture runs on the slower torch path "
                         "(same results, ≈2.5× the time of a plain forward; see benchmarks/README.md)")
        return False
    if query.is_cuda:
        return True
    return query.device.type == "cpu" and triton_interpret()


if triton is not None:

    @triton.jit
    def _tile(ptr, b, head, idx, ok, dims, sb, sh, sn, sd, HEAD_DIM: tl.constexpr):
        """The (len(idx), BLOCK_D) tile of token positions ``idx`` of one head; zeros outside."""
        return tl.load(ptr + b * sb + head * sh + idx[:, None] * sn + dims[None, :] * sd,
                       mask=ok[:, None] & (dims[None, :] < HEAD_DIM), other=0.0)

    @triton.jit
    def _scores(q, k, IEEE: tl.constexpr):
        """Unscaled q·kᵀ in fp32: IEEE products for fp32 inputs (no TF32), tensor cores otherwise."""
        if IEEE:
            return tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            return tl.dot(q, tl.trans(k))

    @triton.jit
    def _lse_kernel(q_ptr, k_ptr, lse_ptr, r0, r1, n_groups, scale,
                    sqb, sqh, sqn, sqd, skb, skh, skn, skd, slb, slh, sln,
                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_D: tl.constexpr, IEEE: tl.constexpr):
        pid_m = tl.program_id(0)
        h = tl.program_id(1)
        b = tl.program_id(2)
        rows = r0 + pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        row_ok = rows < r1
        q = _tile(q_ptr, b, h, rows, row_ok, dims, sqb, sqh, sqn, sqd, HEAD_DIM)
        kv = h // n_groups
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        last = tl.minimum(r0 + (pid_m + 1) * BLOCK_M, r1)  # causal: no column beyond the last row
        for c0 in range(0, last, BLOCK_N):
            cols = c0 + tl.arange(0, BLOCK_N)
            k = _tile(k_ptr, b, kv, cols, cols < r1, dims, skb, skh, skn, skd, HEAD_DIM)
            s = _scores(q, k, IEEE) * scale
            s = tl.where((cols[None, :] <= rows[:, None]) & (cols[None, :] < r1), s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), axis=1)
            m_i = m_new
        lse = m_i + tl.log(l_i)
        tl.store(lse_ptr + b * slb + h * slh + (rows - r0) * sln, lse, mask=row_ok)

    @triton.jit
    def _mean_kernel(q_ptr, k_ptr, lse_ptr, out_ptr, r0, r1, n_heads, n_groups, scale,
                     sqb, sqh, sqn, sqd, skb, skh, skn, skd, slb, slh, sln, sob, som, son,
                     HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_D: tl.constexpr, IEEE: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        b = tl.program_id(2)
        rows = r0 + pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        dims = tl.arange(0, BLOCK_D)
        row_ok = rows < r1
        col_ok = cols < r1
        keep = (cols[None, :] <= rows[:, None]) & row_ok[:, None] & col_ok[None, :]
        acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
        if pid_n * BLOCK_N <= r0 + pid_m * BLOCK_M + BLOCK_M - 1:  # block not entirely above the diagonal
            for h in range(0, n_heads):
                q = _tile(q_ptr, b, h, rows, row_ok, dims, sqb, sqh, sqn, sqd, HEAD_DIM)
                k = _tile(k_ptr, b, h // n_groups, cols, col_ok, dims, skb, skh, skn, skd, HEAD_DIM)
                lse = tl.load(lse_ptr + b * slb + h * slh + (rows - r0) * sln, mask=row_ok, other=0.0)
                p = tl.exp(_scores(q, k, IEEE) * scale - lse[:, None])
                acc += tl.where(keep, p, 0.0)
        acc = acc / n_heads
        tl.store(out_ptr + b * sob + (rows[:, None] - r0) * som + cols[None, :] * son,
                 acc.to(out_ptr.dtype.element_ty),
                 mask=row_ok[:, None] & col_ok[None, :])


def head_mean_rows(query: torch.Tensor, key: torch.Tensor, scaling: float, r0: int, r1: int,
                   out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Head-mean causal attention probabilities of rows r0..r1-1 over columns 0..r1-1:
    (B, r1-r0, r1) — the same quantity as ``rollout._rows`` without a padding mask, computed in
    fp32 and stored as ``out_dtype``."""
    if triton is None:
        raise RuntimeError("Triton is not installed")
    b, h, n, d = query.shape
    kvh = key.shape[1]
    if h % kvh or key.shape[-1] != d or key.shape[-2] < r1 or n < r1:
        raise ValueError(f"query {tuple(query.shape)} and key {tuple(key.shape)} do not fit rows {r0}..{r1}")
    rows = r1 - r0
    ieee = query.dtype == torch.float32
    block_d = max(16, triton.next_power_of_2(d))
    block_m, block_n = (32, 32) if ieee or block_d > 128 else (64, 64)
    lse = torch.empty(b, h, rows, dtype=torch.float32, device=query.device)
    out = torch.empty(b, rows, r1, dtype=out_dtype, device=query.device)
    strides = (*query.stride(), *key.stride())
    _lse_kernel[(triton.cdiv(rows, block_m), h, b)](
        query, key, lse, r0, r1, h // kvh, float(scaling), *strides, *lse.stride(),
        HEAD_DIM=d, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, IEEE=ieee)
    _mean_kernel[(triton.cdiv(rows, block_m), triton.cdiv(r1, block_n), b)](
        query, key, lse, out, r0, r1, h, h // kvh, float(scaling), *strides, *lse.stride(), *out.stride(),
        HEAD_DIM=d, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d, IEEE=ieee)
    return out
