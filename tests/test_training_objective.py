"""The training objective: mask → token grid, BCE + Dice, Pearson, schedule, and gradients that
reach only the soft prompts (with and without activation checkpointing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steerseg_core.config import GroundingConfig
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.soft_prompts import SoftPrompts
from steerseg_core.testing.synthetic import make_synthetic_dataset
from steerseg_core.training import data as D
from steerseg_core.training.objective import (
    Objective,
    bce_dice,
    mask_to_grid,
    pearson,
    slot_targets,
    summarise,
)
from steerseg_core.training.trainer import lr_factor
from steerseg_core.types import TokenGeometry


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def test_mask_to_grid_is_area_fraction():
    m = np.zeros((1, 8, 12), bool)
    m[0, 0:4, 0:3] = True  # top-left cell of a 2×4 grid: 4×3 pixels, fully covered
    m[0, 4:6, 9:12] = True  # bottom-right cell: half covered
    g = mask_to_grid(m, TokenGeometry(grid=(2, 4), frame_size=(8, 12)))
    expected = torch.zeros(1, 2, 4)
    expected[0, 0, 0] = 1.0
    expected[0, 1, 3] = 0.5
    assert torch.allclose(g, expected)
    # a letterboxed grid: the image fills rows 1..3 of a 4-row grid; nothing outside the box
    full = np.ones((1, 8, 8), bool)
    boxed = mask_to_grid(full, TokenGeometry(grid=(4, 4), frame_size=(8, 8), content_box=(1.0, 0.0, 3.0, 4.0)))
    assert torch.allclose(boxed[0, 1:3], torch.ones(2, 4)) and boxed[0, 0].sum() == 0 and boxed[0, 3].sum() == 0


def test_slot_targets_average_merged_frames():
    t = torch.arange(5.0).view(5, 1, 1).expand(5, 2, 2)
    s = slot_targets(t, 3, 2)  # frames (0,1), (2,3), (4,4 repeated)
    assert s[:, 0, 0].tolist() == [0.5, 2.5, 4.0]


def test_bce_dice_orders_predictions():
    target = torch.zeros(1, 4, 4)
    target[0, :2, :2] = 1
    inverted = 1 - target
    bce_i, dice_i = bce_dice(inverted, target, 2)
    bce_p, dice_p = bce_dice(target, target, 2)
    assert bce_p.item() < 1e-5 and dice_p.item() < 1e-6
    assert bce_i.item() > 5 and dice_i.item() > 0.7
    half = torch.full_like(target, 0.5)
    bce_h, _ = bce_dice(half, target, 2)
    assert math.isclose(bce_h.item(), math.log(2), rel_tol=1e-5)


def test_pearson_matches_numpy_and_handles_constants():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5, 6)), rng.normal(size=(3, 5, 6))
    b[1] = a[1] * 2 + 1
    ours = pearson(torch.tensor(a), torch.tensor(b), 2)
    ref = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(3)]
    assert np.allclose(ours.numpy(), ref, atol=1e-6)
    assert math.isclose(ours[1].item(), 1.0, abs_tol=1e-6)
    assert pearson(torch.ones(4, 4), torch.rand(4, 4), 2).item() == 0.0
    x = torch.rand(2, 3, requires_grad=True)
    pearson(x, torch.rand(2, 3), 2).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_lr_schedule_warmup_then_cosine():
    total, warm = 100, 10
    f = [lr_factor(s, total, warm, 0.1) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warmup
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.55)  # cosine midpoint
    assert f[100] == pytest.approx(0.1)
    assert all(x >= y - 1e-12 for x, y in zip(f[10:], f[11:], strict=False))


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    adapter = load_adapter(str(tiny_models / "qwen2_5_vl"))
    ds = D.open_dataset(make_synthetic_dataset(tmp_path_factory.mktemp("syn"), videos=2, frames=4, size=112,
                                               objects=1, seed=3))
    sample = D.load_sample(ds.records[0], 4)
    return adapter, sample


def _objective(adapter, checkpointing: bool) -> tuple[Objective, SoftPrompts]:
    soft = SoftPrompts.from_seed(adapter, 4)
    cfg = GroundingConfig(backbone="tiny", frame_max_tokens=16, query_max_new_tokens=1)
    return Objective(Grounder(adapter, cfg, soft), t_frame=4, t_video=4, frame_batch_size=2,
                     gradient_checkpointing=checkpointing), soft


def test_gradients_reach_only_soft_prompts_and_checkpointing_matches(setup):
    adapter, sample = setup
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    obj, soft = _objective(adapter, checkpointing=False)
    res = obj.run(sample, soft)
    assert set(res) == {"frame", "video"}
    for r in res.values():
        assert r.finite and r.bce >= 0 and 0 <= r.dice <= 1 and -1 <= r.corr <= 1
    assert res["frame"].maps.shape == (4, 4, 4) and res["video"].maps.shape == (2, 2, 2)
    assert res["frame"].maps.min() == 0 and res["frame"].maps.max() == 1
    g_plain = (soft.frame.grad.clone(), soft.video.grad.clone())
    assert g_plain[0].abs().sum() > 0 and g_plain[1].abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in adapter.model.parameters())

    obj_ck, soft_ck = _objective(adapter, checkpointing=True)
    layers = adapter.decoder_layers()
    assert all(getattr(layer, "gradient_checkpointing", False) for layer in layers)
    calls = []
    hook = layers[0].self_attn.register_forward_hook(lambda *a: calls.append(torch.is_grad_enabled()))
    try:
        res_ck = obj_ck.run(sample, soft_ck)
    finally:
        hook.remove()
    # checkpointing recomputes the layer during backward: more attention forwards than without
    assert calls.count(True) > 3
    assert not any(layer.training for layer in layers) and not adapter.model.training  # restored, eval mode
    assert torch.allclose(soft_ck.frame.grad, g_plain[0], atol=1e-6)
    assert torch.allclose(soft_ck.video.grad, g_plain[1], atol=1e-6)
    assert summarise(res_ck)["loss"] == pytest.approx(summarise(res)["loss"], abs=1e-6)
    after = adapter.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_no_grad_evaluation_leaves_no_gradients(setup):
    adapter, sample = setup
    obj, soft = _objective(adapter, checkpointing=False)
    res = obj.run(sample, soft, grad=False)
    assert soft.frame.grad is None and soft.video.grad is None
    assert np.isfinite(summarise(res)["corr"])


def test_rollout_stays_float32_under_autocast(setup):
    """Training runs the LVLM under bf16 autocast on CUDA; the rollout chain itself must stay
    float32 (as at inference). CPU autocast exercises the same code path."""
    from steerseg_core.grounding import rollout

    adapter, sample = setup
    prepared = adapter.build_frames(sample.frames[:2], "Expression: the circle", 16)
    full = prepared.with_appended_tokens(torch.tensor([[5], [5]]))
    with torch.no_grad(), rollout.capturing(adapter.attention_modules(3, 5), 8) as cap:
        adapter.forward(full)
    ref = rollout.rollout_row(cap.ordered()).row
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), \
            rollout.capturing(adapter.attention_modules(3, 5), 8) as cap2:
        adapter.forward(full)
    records = cap2.ordered()
    assert all(b.dtype == torch.float32 for r in records for _, b in r.chunks)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ac = rollout.rollout_row(records).row
    # measured difference 2e-6 on rows whose entries reach 0.13 (visual ones ~0.02): 1e-4 catches
    # a bf16 chain (errors ~1e-3) or a zeroed map, and each row is still a distribution
    assert ac.dtype == torch.float32
    assert torch.allclose(ac, ref, rtol=0, atol=1e-4), float((ac - ref).abs().max())
    assert torch.allclose(ac.sum(-1), torch.ones(ac.shape[0]), atol=1e-5)


def test_mask_to_grid_box_past_the_grid():
    """LLaVA-OV's base grid covers 378 of 384 px: its content box ends past the grid's edge."""
    full = np.ones((1, 8, 8), dtype=bool)
    g = mask_to_grid(full, TokenGeometry(grid=(4, 4), frame_size=(8, 8), content_box=(0.0, 0.0, 4.5, 4.5)))
    assert g.shape == (1, 4, 4)
    assert torch.allclose(g, torch.ones_like(g), atol=1e-6)
