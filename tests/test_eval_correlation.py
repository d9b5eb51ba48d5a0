"""The rollout–mask correlation of Table 3."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from steerseg_core.eval.correlation import downsample_mask, pearson, rollout_mask_correlation
from steerseg_core.types import GroundingResult, TokenGeometry

from .conftest import davis_masks


def grounding(s_frm, keyframes, s_vid, video_frames, frame_size, content_box=None) -> GroundingResult:
    return GroundingResult(
        expression="x", cot=None, query_word="x", query_words_frames=(),
        keyframes=np.asarray(keyframes), video_frames=np.asarray(video_frames),
        s_frm=np.asarray(s_frm, dtype=np.float32), s_vid=np.asarray(s_vid, dtype=np.float32),
        frame_geometry=TokenGeometry(tuple(s_frm.shape[1:]), frame_size, content_box),
        video_geometry=TokenGeometry(tuple(s_vid.shape[1:]), frame_size),
        use_cot=True, use_soft_prompts=True, backbone="test", layers=(0, 0))


def test_pearson():
    a = np.arange(12.0)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert np.isnan(pearson(a, np.ones(12)))
    rng = np.random.default_rng(0)
    x, y = rng.random(500), rng.random(500)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_downsample_is_area_average():
    rng = np.random.default_rng(0)
    m = rng.random((12, 20)) > 0.5
    # integer factors: plain block means
    assert np.allclose(downsample_mask(m, (3, 5)), m.reshape(3, 4, 5, 4).mean(axis=(1, 3)))
    # non-integer factors: coverage fractions, total area preserved
    d = downsample_mask(m, (5, 7))
    assert d.shape == (5, 7) and d.min() >= 0 and d.max() <= 1
    assert d.sum() * (12 / 5) * (20 / 7) == pytest.approx(m.sum())
    # letterboxed: the image lies in rows 1..3 of a 5-row grid; outside rows are empty
    lb = downsample_mask(np.ones((12, 20)), (5, 5), content_box=(1.0, 0.0, 4.0, 5.0))
    assert lb[0].sum() == 0 and lb[4].sum() == 0 and np.allclose(lb[1:4], 1.0)


def test_correlation_on_real_masks():
    paths = sorted(davis_masks("blackswan").glob("*.png"))[:10]
    gt = np.stack([np.array(Image.open(p)) > 0 for p in paths])
    keys = [0, 3, 6, 9]
    assert gt.shape[1:] == (480, 854)
    # maps built by hand (block means: 480 = 15 · 32 = 8 · 60, 854 = 61 · 14 = 14 · 61), not with
    # the implementation's own downsample_mask
    s_frm = np.stack([gt[k].reshape(15, 32, 61, 14).mean(axis=(1, 3)) for k in keys])
    vid_keys = [1, 5]
    s_vid = np.stack([1 - gt[k].reshape(8, 60, 14, 61).mean(axis=(1, 3)) for k in vid_keys])
    g = grounding(s_frm, keys, s_vid, vid_keys, gt.shape[1:])
    c = rollout_mask_correlation(g, gt)
    assert c.frame == pytest.approx(1.0, abs=1e-9) and c.video == pytest.approx(-1.0, abs=1e-9)
    assert len(c.per_keyframe) == 4 and len(c.per_video_frame) == 2
    # Un-annotated frames are skipped (dict form), an empty GT frame has no correlation.
    c2 = rollout_mask_correlation(g, {0: gt[0], 6: np.zeros_like(gt[6]), 5: gt[5]})
    assert np.isnan(c2.per_keyframe[1]) and np.isnan(c2.per_keyframe[2])
    assert c2.frame == pytest.approx(1.0) and c2.video == pytest.approx(-1.0)
    # A map that is noise correlates weakly.
    noise = np.random.default_rng(0).random(s_frm.shape)
    c3 = rollout_mask_correlation(grounding(noise, keys, s_vid, vid_keys, gt.shape[1:]), gt)
    assert abs(c3.frame) < 0.3
