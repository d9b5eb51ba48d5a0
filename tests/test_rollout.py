"""Rollout from captured Q/K (vector chain, chunked) equals the dense textbook computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerseg_core.grounding import rollout
from steerseg_core.grounding.lvlm import load_adapter

from .rollout_reference import captured_row, dense_row


@pytest.fixture(scope="module")
def adapter(tiny_models):
    return load_adapter(str(tiny_models / "qwen2_5_vl"))


@pytest.mark.parametrize("video", [False, True])
@pytest.mark.parametrize("chunk", [7, 256])
def test_rollout_matches_dense(adapter, video, chunk):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 90, 140, 3), dtype=np.uint8)
    text = "Expression: the dog on the left\n\nWhat is the main object?"
    prepared = (adapter.build_video(frames, text, 24, fps=4.0) if video
                else adapter.build_frames(frames[:2], text, 24))
    prepared = adapter.splice_placeholders(prepared, 5)
    soft = torch.randn(5, adapter.hidden_size) * 0.5
    tokens, _ = adapter.generate(prepared, 1, soft)
    full = prepared.with_appended_tokens(tokens[:, :1])
    lo, hi = 2, adapter.num_layers - 1
    ours = captured_row(adapter, full, soft, lo, hi, chunk)
    ref = dense_row(adapter, full, soft, lo, hi)
    assert ours.shape == ref.shape == (full.batch_size, full.length)
    assert torch.allclose(ours, ref, atol=1e-5), float((ours - ref).abs().max())
    # rows of a product of row-stochastic matrices stay stochastic
    assert torch.allclose(ours.sum(-1), torch.ones(ours.shape[0]), atol=1e-5)


def test_capture_keeps_only_what_the_chain_needs(adapter):
    """Top layer: one row. Others: the causal head-mean chunks (≈ N²/2 floats), never H × N × N."""
    frames = np.zeros((1, 56, 56, 3), dtype=np.uint8)
    prepared = adapter.build_frames(frames, "Expression: x", 16)
    with torch.no_grad(), rollout.capturing(adapter.attention_modules(3, 5), chunk=8) as cap:
        adapter.forward(prepared)
    recs = cap.ordered()
    assert len(recs) == 3
    n = prepared.length
    assert recs[-1].query_row.shape == (1, n) and not recs[-1].chunks
    for rec in recs[:-1]:
        assert rec.query_row is None
        stored = sum(block.numel() for _, block in rec.chunks)
        assert stored <= n * (n + 8) / 2  # lower triangle plus the chunk's rectangle overhang
        assert all(block.dim() == 3 and block.shape[1] <= 8 for _, block in rec.chunks)
        # causal rows of a softmax: each stored row sums to 1
        for _, block in rec.chunks:
            assert torch.allclose(block.sum(-1), torch.ones(block.shape[:2]), atol=1e-5)


def test_rollout_is_differentiable(adapter):
    frames = np.random.default_rng(1).integers(0, 255, (1, 84, 84, 3), dtype=np.uint8)
    prepared = adapter.splice_placeholders(adapter.build_frames(frames, "Expression: a cat", 16), 3)
    soft = torch.randn(3, adapter.hidden_size, requires_grad=True)
    full = prepared.with_appended_tokens(torch.tensor([[5]]))
    with rollout.capturing(adapter.attention_modules(2, 5), chunk=4) as cap:
        adapter.forward(full, soft)
    row = rollout.rollout_row(cap.ordered()).row
    row[:, full.visual_positions].sum().backward()
    assert soft.grad is not None and soft.grad.abs().sum() > 0
    assert all(p.grad is None for p in adapter.model.parameters())


def test_normalise_maps_range_and_constant():
    maps = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[2.0, 2.0], [2.0, 2.0]]])
    out = rollout.normalise_maps(maps, 2)
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.all(out[1] == 0)


def test_rows_with_a_padding_mask_match_an_explicit_masked_softmax():
    """Left padding (batch element 1 has 3 pad tokens): the chunked rows equal the textbook
    masked softmax, and the padded rows that see nothing are zeros, not NaN."""
    torch.manual_seed(0)
    b, h, kvh, n, d = 2, 6, 2, 19, 8
    q = torch.randn(b, h, n, d)
    k = torch.randn(b, kvh, n, d)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    visible = torch.ones(b, n, dtype=torch.bool)
    visible[1, :3] = False
    mask = causal & visible[:, None, None, :]  # (B, 1, N, N)
    extra = rollout._extra_mask(mask, q)
    assert extra is not None
    assert rollout._extra_mask(causal.expand(b, 1, n, n), q) is None  # plain causal says nothing more
    scores = torch.matmul(q, k.repeat_interleave(h // kvh, 1).transpose(-1, -2)) * d ** -0.5
    ref = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1).nan_to_num(0.0).mean(1)
    for r0 in range(0, n, 5):
        r1 = min(r0 + 5, n)
        got = rollout._rows(q, k, extra, d ** -0.5, r0, r1)
        assert torch.allclose(got, ref[:, r0:r1, :r1], atol=1e-6)
        assert torch.isfinite(got).all()
    assert torch.equal(rollout._rows(q, k, extra, d ** -0.5, 0, 3)[1], torch.zeros(3, 3))
