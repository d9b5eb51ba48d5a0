"""Tracklet scoring (docs/method.md §8): Pearson against S_frm / S_vid, α mixing, constant maps, and
selection of the true object among distractors built from real DAVIS ground truth."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from steerseg_core.errors import InputError
from steerseg_core.segment import pearson, score_tracklets, select_best, to_token_grid
from steerseg_core.segment.scoring import CONSTANT_MAP_SCORE, CONSTANT_TRACKLET_SCORE
from steerseg_core.types import GroundingResult, TokenGeometry, Tracklet

from .conftest import davis_masks as conftest_davis_masks

DAVIS_MASKS = conftest_davis_masks("blackswan").parent
SEQUENCES = ("blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout", "cows", "kite-surf", "libby")
H, W = 120, 214          # masks at a quarter of the 480p resolution keep the test fast
T = 16                   # frames per clip (the committed masks: 16 per sequence)
KEYFRAMES = np.round(np.linspace(0, T - 1, 16)).astype(int)
VIDEO_FRAMES = np.round(np.linspace(0, T - 1, 8)).astype(int)
FRAME_GRID, VIDEO_GRID = (18, 30), (9, 15)
SIZE = (240, 427)        # frame size of the synthetic tests
DISTRACTOR_WEIGHT = (0.2, 0.5)  # attention on the distractor relative to the target's peak


def grounding(s_frm, s_vid, keyframes=KEYFRAMES, video_frames=VIDEO_FRAMES, size=(H, W),
              frame_geometry=None, video_geometry=None) -> GroundingResult:
    return GroundingResult(
        expression="the object", cot=None, query_word="object", query_words_frames=(),
        keyframes=np.asarray(keyframes), video_frames=np.asarray(video_frames),
        s_frm=np.asarray(s_frm, dtype=np.float32), s_vid=np.asarray(s_vid, dtype=np.float32),
        frame_geometry=frame_geometry or TokenGeometry(grid=np.asarray(s_frm).shape[1:], frame_size=size),
        video_geometry=video_geometry or TokenGeometry(grid=np.asarray(s_vid).shape[1:], frame_size=size),
        use_cot=False, use_soft_prompts=False, backbone="test", layers=(0, 0))


def tracklet(masks, logits=None) -> Tracklet:
    return Tracklet(source_keyframe=0, point_xy=(0.0, 0.0), masks=np.asarray(masks, dtype=bool), logits=logits)


# ------------------------------------------------------------------------------------------------
# Pearson and grids


def test_pearson_matches_numpy_corrcoef():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(size=(4, 9, 15))
        b = 0.3 * a + rng.normal(size=a.shape) * rng.random()
        assert pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-9)
    assert pearson(a, a) == pytest.approx(1.0) and pearson(a, -a) == pytest.approx(-1.0)


def test_constant_maps_get_the_documented_values():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 5, 5))
    assert pearson(a, np.full_like(a, 0.25)) == CONSTANT_MAP_SCORE == 0.0
    assert pearson(np.full_like(a, -20.0), a) == CONSTANT_TRACKLET_SCORE == -1.0
    assert pearson(np.full_like(a, 3.0), np.full_like(a, 0.25)) == CONSTANT_MAP_SCORE
    assert pearson(a + 1e-12 * 0, a) == pytest.approx(1.0)


def test_to_token_grid_averages_areas_and_fills_padding():
    m = np.zeros((1, 120, 200), dtype=np.float32)
    m[:, :, :100] = 1.0                                   # left half of the frame
    plain = to_token_grid(m, TokenGeometry(grid=(6, 10), frame_size=(120, 200)), fill=-1.0)
    assert plain.shape == (1, 6, 10)
    assert np.allclose(plain[0, :, :4], 1.0) and np.allclose(plain[0, :, 6:], 0.0)
    # the image occupies grid rows 1..5 of 7; row 0 and 6 are padding
    boxed = to_token_grid(m, TokenGeometry(grid=(7, 10), frame_size=(120, 200),
                                           content_box=(1.0, 0.0, 6.0, 10.0)), fill=-1.0)
    assert np.allclose(boxed[0, [0, 6]], -1.0)
    assert np.allclose(boxed[0, 1:6, :4], 1.0) and np.allclose(boxed[0, 1:6, 6:], 0.0)
    # a half-cell content box edge averages image and padding
    half = to_token_grid(np.ones((1, 50, 50), np.float32),
                         TokenGeometry(grid=(4, 4), frame_size=(50, 50), content_box=(0.5, 0, 4, 4)), fill=-1.0)
    assert np.allclose(half[0, 0], 0.0, atol=1e-6) and np.allclose(half[0, 1:], 1.0)


def test_logits_and_masks_give_the_same_scores_when_they_agree():
    rng = np.random.default_rng(2)
    masks = np.zeros((T, *SIZE), dtype=bool)
    masks[:, 60:180, 100:300] = True
    small = np.where(np.array(Image.fromarray(masks[0]).resize((64, 36), Image.NEAREST)), 20.0, -20.0)
    logits = np.repeat(small[None].astype(np.float32), T, axis=0)
    g = grounding(rng.random((16, *FRAME_GRID)), rng.random((8, *VIDEO_GRID)), size=SIZE)
    a, b = score_tracklets([tracklet(masks), tracklet(masks, logits)], g, 0.3)
    assert a.s_frm == pytest.approx(b.s_frm, abs=0.03) and a.s_vid == pytest.approx(b.s_vid, abs=0.03)


def test_alpha_extremes_and_frozen_copies():
    rng = np.random.default_rng(4)
    left = np.zeros((T, *SIZE), dtype=bool)
    left[:, 40:200, 20:180] = True
    right = np.zeros_like(left)
    right[:, 40:200, 250:410] = True
    # frame branch looks left, video branch looks right
    s_frm = np.zeros((16, *FRAME_GRID))
    s_frm[:, 3:15, 2:12] = 1.0
    s_vid = np.zeros((8, *VIDEO_GRID))
    s_vid[:, 2:7, 9:14] = 1.0
    g = grounding(s_frm + 0.05 * rng.random(s_frm.shape), s_vid + 0.05 * rng.random(s_vid.shape), size=SIZE)
    cands = [tracklet(left), tracklet(right)]
    only_frame = score_tracklets(cands, g, 1.0)
    only_video = score_tracklets(cands, g, 0.0)
    assert [t.s for t in only_frame] == [t.s_frm for t in only_frame]
    assert [t.s for t in only_video] == [t.s_vid for t in only_video]
    assert select_best(only_frame) == 0 and select_best(only_video) == 1
    mixed = score_tracklets(cands, g, 0.3)
    assert all(t.s == pytest.approx(0.3 * t.s_frm + 0.7 * t.s_vid) for t in mixed)
    assert np.isnan(cands[0].s)  # inputs untouched, outputs are new frozen tracklets
    with pytest.raises(dataclasses.FrozenInstanceError):
        mixed[0].s = 1.0  # type: ignore[misc]
    with pytest.raises(InputError):
        score_tracklets(cands, g, 1.5)


def test_empty_tracklet_never_beats_a_real_one_and_flat_attention_is_neutral():
    rng = np.random.default_rng(5)
    obj = np.zeros((T, *SIZE), dtype=bool)
    obj[:, 100:140, 10:60] = True  # small object where attention is NOT looking
    s_frm = np.zeros((16, *FRAME_GRID))
    s_frm[:, 10:16, 20:28] = 1.0
    g = grounding(s_frm + 0.01 * rng.random(s_frm.shape), np.full((8, *VIDEO_GRID), 0.5), size=SIZE)
    real, empty = score_tracklets([tracklet(obj), tracklet(np.zeros_like(obj))], g, 0.3)
    assert real.s_frm < 0  # anti-correlated, yet still above the empty candidate
    assert empty.s_frm == -1.0 and real.s_vid == empty.s_vid == 0.0
    assert select_best([empty, real]) == 1
    assert select_best([dataclasses.replace(real, s=float("nan")), empty]) == 1
    with pytest.raises(ValueError):
        select_best([])


# ------------------------------------------------------------------------------------------------
# Selection on real DAVIS ground truth


@cache
def davis_masks(seq: str) -> np.ndarray:
    """T ground-truth masks spread over the sequence, (T, H, W) bool at (H, W)."""
    files = sorted((DAVIS_MASKS / seq).glob("*.png"))
    pick = np.round(np.linspace(0, len(files) - 1, T)).astype(int)
    return np.stack([np.array(Image.open(files[i]).convert("L").resize((W, H), Image.BILINEAR)) >= 128
                     for i in pick])


def attention(masks: np.ndarray, grid: tuple[int, int], rng, distractor=None) -> np.ndarray:
    """A fake LVLM map: the object's mask on the token grid, blurred (peak 1), plus weaker attention
    on a distractor (peak DISTRACTOR_WEIGHT), plus noise; min-max normalised to [0, 1] per frame."""
    def blob(m):
        cells = np.array([np.array(Image.fromarray(f.astype(np.float32)).resize(grid[::-1], Image.BOX))
                          for f in m])
        cells = ndimage.gaussian_filter(cells, sigma=(0, 1.0, 1.0))
        return cells / np.maximum(cells.max(axis=(1, 2), keepdims=True), 1e-6)
    maps = blob(masks)
    if distractor is not None:
        maps = maps + rng.uniform(*DISTRACTOR_WEIGHT) * blob(distractor)
    maps = maps + rng.normal(0.0, 0.15, maps.shape) + rng.uniform(0, 0.3)
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - lo) / np.maximum(hi - lo, 1e-6)


def shifted(masks: np.ndarray, rng) -> np.ndarray:
    dx = int(rng.choice([-1, 1]) * rng.uniform(0.2, 0.35) * W)
    dy = int(rng.uniform(-0.15, 0.15) * H)
    return ndimage.shift(masks, (0, dy, dx), order=0, cval=False)


def run_trials(n: int, target_index: int | None = None) -> float:
    """Fraction of seeded trials where the scorer picks the candidate the attention is built from
    (the true object by default; ``target_index`` 3 = a mask from another clip)."""
    hits = 0
    for trial in range(n):
        rng = np.random.default_rng(1000 + trial)
        seq = SEQUENCES[trial % len(SEQUENCES)]
        true = davis_masks(seq)
        others = [s for s in SEQUENCES if s != seq]
        o1, o2 = rng.choice(len(others), 2, replace=False)
        cands = [true, shifted(true, rng), shifted(true, rng), davis_masks(others[o1]), davis_masks(others[o2])]
        target = cands[target_index or 0]
        distractor = cands[1 + int(rng.integers(4))] if target_index is None else true
        g = grounding(attention(target[KEYFRAMES], FRAME_GRID, rng, distractor[KEYFRAMES]),
                      attention(target[VIDEO_FRAMES], VIDEO_GRID, rng, distractor[VIDEO_FRAMES]))
        order = rng.permutation(len(cands))
        scored = score_tracklets([tracklet(cands[i]) for i in order], g, 0.3)
        hits += int(order[select_best(scored)] == (target_index or 0))
    return hits / n


def test_scorer_picks_the_true_davis_object_among_distractors():
    rate = run_trials(100)
    print(f"\nscorer picked the true object in {rate:.0%} of 100 trials "
          f"({len(SEQUENCES)} DAVIS sequences, 4 distractors each)")
    assert rate >= 0.95


def test_scorer_follows_the_attention_not_the_mask():
    # Same candidates, attention built from another clip's object (the true one is now the
    # distractor): that object must win, so the choice comes from the attention, not from the
    # masks. Harder than above: the target is often small and the distractor large.
    rate = run_trials(40, target_index=3)
    print(f"\nscorer followed the attention to the other clip's object in {rate:.0%} of 40 trials")
    assert rate >= 0.9
