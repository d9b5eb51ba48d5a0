"""The CUDA paths: fused rollout kernels in bf16 and fp32, grounding, the whole pipeline (SAM2
under autocast) and a bf16 training run, on the tiny models.

Marked ``gpu``: skipped without CUDA (CI has none; run them on a GPU machine with
``python -m pytest -m gpu``). ``STEERSEG_TEST_GPU_DEVICE=cpu`` dry-runs the same checks on the
CPU (the fused-kernel assertions then only check what the CPU can).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from steerseg_core.config import SteerSegConfig
from steerseg_core.grounding import rollout, rollout_triton
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.types import Clip
from steerseg_core.video import load_clip

from .conftest import davis_frames
from .rollout_reference import captured_row, dense_row

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("STEERSEG_TEST_GPU_DEVICE", "cuda")
ON_CUDA = DEVICE == "cuda"


@pytest.fixture(scope="module")
def clip() -> Clip:
    full = load_clip(davis_frames("blackswan"), max_side=160)
    return dataclasses.replace(full, frames=full.frames[:10], frame_names=full.frame_names[:10])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rollout_on_the_device_matches_the_references(tiny_models, dtype):
    adapter = load_adapter(str(tiny_models / "qwen2_5_vl"), DEVICE, dtype)
    assert adapter.device.type == DEVICE.split(":")[0] and adapter.dtype == getattr(torch, dtype)
    frames = np.random.default_rng(0).integers(0, 255, (4, 90, 140, 3), dtype=np.uint8)
    prepared = adapter.build_video(frames, "Expression: the dog on the left", 48, fps=4.0)
    lo, hi = 1, adapter.num_layers - 1
    calls = []
    real = rollout_triton.head_mean_rows
    rollout_triton.head_mean_rows = lambda *a: calls.append(1) or real(*a)
    try:
        fused = captured_row(adapter, prepared, None, lo, hi, fused=True)
    finally:
        rollout_triton.head_mean_rows = real
    plain = captured_row(adapter, prepared, None, lo, hi, fused=False)
    assert bool(calls) == (ON_CUDA and rollout_triton.triton is not None)
    # same Q and K, same maths: only the summation order differs — and a bf16 model's fused
    # capture keeps its probabilities in fp16 (relative error ≤ 2⁻¹¹)
    rtol = 1e-3 if dtype == "bfloat16" and calls else 0.0
    assert torch.allclose(fused, plain, rtol=rtol, atol=1e-6), float((fused - plain).abs().max())
    if dtype == "float32":  # eager attention in fp32 is the textbook reference
        ref = dense_row(adapter, prepared, None, lo, hi)
        assert torch.allclose(fused, ref, atol=1e-5), float((fused - ref).abs().max())


@pytest.mark.skipif(not ON_CUDA, reason="the real-size kernel check needs CUDA")
def test_fused_kernel_at_qwen_7b_head_shapes():
    torch.manual_seed(0)
    n = 1500
    q = (torch.randn(1, n, 28, 128, device="cuda") * 1.5).bfloat16().transpose(1, 2)
    k = (torch.randn(1, n, 4, 128, device="cuda") * 1.5).bfloat16().transpose(1, 2)
    for r0, r1 in [(0, 1024), (1024, n), (n - 1, n)]:
        fused = rollout_triton.head_mean_rows(q, k, 128 ** -0.5, r0, r1)
        ref = rollout._rows(q, k, None, 128 ** -0.5, r0, r1)
        assert torch.allclose(fused, ref, atol=1e-5), float((fused - ref).abs().max())
        assert torch.allclose(fused.sum(-1), torch.ones_like(fused[:, :, 0]), atol=1e-4)


def test_pipeline_end_to_end_on_the_device(tiny_models, clip):
    from steerseg_core import pipeline

    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.grounding.device = cfg.segment.device = DEVICE
    cfg.grounding.frame_max_tokens, cfg.grounding.t_frame, cfg.grounding.t_video = 48, 4, 4
    cfg.grounding.cot_max_new_tokens = 8
    cfg.segment.sam2 = str(tiny_models / "sam2")
    result = pipeline.SteerSeg(cfg).run(clip, "the black swan")
    g = result.grounding
    for m in (g.s_frm, g.s_vid):
        assert np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1
    assert g.s_frm.shape[0] == 4 and g.s_vid.shape[0] == 4
    assert result.masks.shape == (10, clip.height, clip.width) and result.masks.dtype == bool
    assert all(np.isfinite(t.s) and -1.0 <= t.s <= 1.0 for t in result.tracklets)  # s mixes two correlations
    pipeline.clear_model_cache()


def test_bf16_training_run_on_the_device(tiny_models, tmp_path):
    from steerseg_core.grounding.soft_prompts import SoftPrompts
    from steerseg_core.testing.synthetic import make_synthetic_dataset
    from steerseg_core.training.runs import read_metrics
    from steerseg_core.training.trainer import TrainConfig, train

    data = make_synthetic_dataset(tmp_path / "syn", videos=4, frames=6, size=56, objects=(1, 2), seed=1)
    cfg = TrainConfig.from_dict(dict(  # the flat layout of config.json, as older runs stored it
        data=str(data), backbone=str(tiny_models / "qwen2_5_vl"), out=str(tmp_path / "run"),
        steps=4, lr=2e-2, warmup_steps=1, batch_size=2, n_prompts=4, input_frames=4, t_frame=4,
        t_video=4, frame_max_tokens=8, frame_batch_size=4, checkpoint_every=2, eval_every=0,
        val_samples=1, device=DEVICE))
    result = train(cfg)
    assert result.state == "finished" and result.step == 4
    losses = [r["loss"] for r in read_metrics(result.run_dir) if r["split"] == "train"]
    assert len(losses) == 4 and all(np.isfinite(losses))
    prompts = SoftPrompts.load(result.soft_prompts)
    assert torch.isfinite(prompts.frame).all() and prompts.frame.dtype == torch.float32
