"""Keyframe points (argmax cell → original-frame pixel) and mask NMS."""

from __future__ import annotations

import numpy as np
import pytest

from steerseg_core.segment import argmax_cell, keyframe_points, mask_iou_matrix, mask_nms
from steerseg_core.types import TokenGeometry


def _planted(grid: tuple[int, int], cells: list[tuple[int, int]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    maps = rng.random((len(cells), *grid)) * 0.5
    for t, (r, c) in enumerate(cells):
        maps[t, r, c] = 1.0
    return maps


@pytest.mark.parametrize("frame_size", [(480, 854), (720, 1280), (240, 427)])
def test_planted_maximum_lands_in_its_cell_after_resize(frame_size):
    grid = (18, 30)
    geo = TokenGeometry(grid=grid, frame_size=frame_size)
    cells = [(0, 0), (17, 29), (5, 12), (9, 3)]
    h, w = frame_size
    for (r, c), (x, y) in zip(cells, keyframe_points(_planted(grid, cells), geo), strict=True):
        # the pixel lies inside the part of the frame that token cell covers
        assert c * w / 30 <= x < (c + 1) * w / 30 and r * h / 18 <= y < (r + 1) * h / 18
        assert abs(x - (c + 0.5) * w / 30) < 1e-6 and abs(y - (r + 0.5) * h / 18) < 1e-6


def test_padded_content_box_maps_through_the_letterbox_and_ignores_padding():
    # 20 token rows, the image fills rows 1..19 (one padding row above and below)
    geo = TokenGeometry(grid=(20, 30), frame_size=(480, 854), content_box=(1.0, 0.0, 19.0, 30.0))
    maps = _planted((20, 30), [(5, 12), (18, 0)])
    maps[0, 0, 7] = 5.0  # a louder maximum in the top padding row must be ignored
    maps[1, 19, 29] = 5.0  # and in the bottom one
    (x0, y0), (x1, y1) = keyframe_points(maps, geo)
    assert argmax_cell(maps[0], geo) == (5, 12)
    assert 12 * 854 / 30 <= x0 < 13 * 854 / 30 and 4 * 480 / 18 <= y0 < 5 * 480 / 18
    assert 0 <= x1 < 854 / 30 and 17 * 480 / 18 <= y1 < 480


def test_heatmap_pictures_mark_the_point_the_segmentation_clicks(monkeypatch):
    """One argmax-point function: the keyframe heat map marks the click SAM2 got, padding ignored."""
    from types import SimpleNamespace

    from steerseg_core import visualize
    from steerseg_core.types import Clip

    geo = TokenGeometry(grid=(20, 30), frame_size=(480, 854), content_box=(1.0, 0.0, 19.0, 30.0))
    maps = _planted((20, 30), [(5, 12), (18, 0)])
    maps[0, 0, 7] = 5.0  # louder, but in the padding row
    clip = Clip(frames=np.zeros((2, 480, 854, 3), np.uint8), fps=10.0, source="synthetic")
    g = SimpleNamespace(keyframes=np.array([0, 1]), s_frm=maps, frame_geometry=geo, query_words_frames=())
    marked = []
    monkeypatch.setattr(visualize, "draw_point", lambda img, xy, scale=1.0: marked.append(xy) or img)
    visualize.keyframe_heatmaps(clip, g, max_side=854)
    assert marked == keyframe_points(maps, geo)


def test_fractional_content_box():
    geo = TokenGeometry(grid=(10, 16), frame_size=(300, 400), content_box=(0.5, 2.0, 9.5, 14.0))
    maps = _planted((10, 16), [(4, 7)])
    (x, y), = keyframe_points(maps, geo)
    assert x == pytest.approx((7.5 - 2.0) / 12.0 * 400) and y == pytest.approx((4.5 - 0.5) / 9.0 * 300)


def test_map_must_match_grid():
    with pytest.raises(ValueError):
        argmax_cell(np.zeros((9, 15)), TokenGeometry(grid=(18, 30), frame_size=(480, 854)))


def _box(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def test_nms_keeps_higher_scored_of_overlapping_masks():
    a = _box(100, 100, 10, 10, 60, 60)         # 2500 px
    b = _box(100, 100, 12, 10, 62, 60)         # IoU(a, b) = 2400 / 2600 ≈ 0.92
    c = _box(100, 100, 70, 70, 95, 95)         # disjoint
    masks = np.stack([b, c, a])
    assert mask_nms(masks, np.array([0.8, 0.5, 0.9]), 0.7) == [2, 1]    # a beats b
    assert mask_nms(masks, np.array([0.95, 0.5, 0.9]), 0.7) == [0, 1]   # now b beats a
    assert mask_nms(masks, np.array([0.8, 0.5, 0.9]), 0.95) == [2, 0, 1]  # below threshold: kept
    assert mask_nms(masks, np.array([0.8, 0.5, 0.9]), 1.0) == [2, 0, 1]
    assert mask_nms(masks[:0], np.zeros(0)) == []


def test_nms_threshold_is_strict_and_default_is_07():
    a = _box(10, 10, 0, 0, 10, 7)  # 70 px
    b = _box(10, 10, 0, 0, 10, 10)  # IoU = 0.7 exactly
    assert mask_nms(np.stack([a, b]), np.array([1.0, 0.5])) == [0, 1]
    assert mask_nms(np.stack([a, b]), np.array([1.0, 0.5]), 0.69) == [0]


def test_iou_matrix_matches_brute_force():
    rng = np.random.default_rng(3)
    masks = rng.random((7, 24, 31)) < rng.random((7, 1, 1))
    masks[3] = False
    masks[5] = False
    iou = mask_iou_matrix(masks)
    for i in range(7):
        for j in range(7):
            union = np.logical_or(masks[i], masks[j]).sum()
            ref = 1.0 if union == 0 else np.logical_and(masks[i], masks[j]).sum() / union
            assert iou[i, j] == pytest.approx(ref, abs=1e-6)
    assert iou[3, 5] == 1.0  # two empty masks are the same mask
