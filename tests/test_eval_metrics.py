"""J, F and the per-object statistics on small arrays worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from steerseg_core.eval.metrics import (
    boundary_f,
    boundary_tolerance,
    decay_bins,
    disk,
    frame_scores,
    jaccard,
    score_stack,
    seg2bmap,
    statistics,
)


def square(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1 + 1, x0:x1 + 1] = True
    return m


def test_disk_and_tolerance():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    d8 = disk(8)
    assert d8.shape == (17, 17) and d8[8, 0] == 1 and d8[0, 0] == 0 and d8.sum() == 197
    # DAVIS 480p: ceil(0.008 * sqrt(854² + 480²)) = ceil(7.837) = 8
    assert boundary_tolerance(480, 854) == 8
    assert boundary_tolerance(10, 10) == 1  # ceil(0.113)
    assert boundary_tolerance(1080, 1920) == 18  # ceil(17.62)
    assert boundary_tolerance(100, 100, bound_th=3) == 3


def test_seg2bmap_ring_of_a_square():
    # A 4x4 square at rows/cols 2..5 has the 16-pixel ring of the 5x5 square 1..5 as boundary:
    # the map marks pixels that differ from their right, lower or lower-right neighbour.
    b = seg2bmap(square(10, 10, 2, 5, 2, 5))
    ring = square(10, 10, 1, 5, 1, 5) & ~square(10, 10, 2, 4, 2, 4)
    assert b.sum() == 16
    assert (b == ring).all()


def test_seg2bmap_last_row_and_column_quirks():
    # The last row only compares to the right, the last column only downwards, the bottom-right
    # corner is never a boundary: a mask covering the whole frame has no boundary at all.
    assert seg2bmap(np.ones((4, 5), dtype=bool)).sum() == 0
    m = np.zeros((4, 4), dtype=bool)
    m[3, 1] = True  # single pixel in the last row
    assert np.argwhere(seg2bmap(m)).tolist() == [[2, 0], [2, 1], [3, 0], [3, 1]]


def test_j_and_f_by_hand_shift_one():
    gt = square(10, 10, 2, 5, 2, 5)
    pred = square(10, 10, 2, 5, 3, 6)
    assert jaccard(gt, pred) == pytest.approx(12 / 20)
    # radius ceil(0.008*√200) = 1: every shifted ring pixel is a 4-neighbour of the GT ring.
    assert boundary_f(gt, pred) == pytest.approx(1.0)


def test_j_and_f_by_hand_shift_three():
    gt = square(10, 10, 2, 5, 2, 5)
    pred = square(10, 10, 2, 5, 5, 8)
    assert jaccard(gt, pred) == pytest.approx(4 / 28)
    # Of each 16-pixel ring, 9 lie within distance 1 of the other ring: P = R = 9/16.
    assert boundary_f(gt, pred) == pytest.approx(9 / 16)


def test_empty_cases():
    z = np.zeros((6, 7), dtype=bool)
    obj = square(6, 7, 1, 3, 1, 3)
    assert jaccard(z, z) == 1.0 and boundary_f(z, z) == 1.0  # both empty → 1
    assert jaccard(obj, z) == 0.0 and boundary_f(obj, z) == 0.0  # prediction empty → 0
    assert jaccard(z, obj) == 0.0 and boundary_f(z, obj) == 0.0  # ground truth empty → 0
    assert jaccard(obj, obj) == 1.0 and boundary_f(obj, obj) == 1.0


def test_void_pixels_are_ignored():
    gt = square(10, 10, 2, 5, 2, 5)
    pred = gt.copy()
    pred[8:, 8:] = True  # a false positive...
    void = np.zeros_like(gt)
    void[7:, 7:] = True  # ...inside the void region
    j, f = frame_scores(gt[None], pred[None], void)
    assert j[0, 0] == 1.0 and f[0, 0] == 1.0
    j, f = frame_scores(gt[None], pred[None])
    assert j[0, 0] == pytest.approx(16 / 20) and f[0, 0] < 1.0


def test_pairwise_matches_single_pairs():
    rng = np.random.default_rng(0)
    gts = rng.random((3, 12, 15)) > 0.6
    preds = rng.random((4, 12, 15)) > 0.5
    j, f = frame_scores(gts, preds)
    assert j.shape == f.shape == (4, 3)
    for m in range(4):
        for n in range(3):
            assert j[m, n] == pytest.approx(float(jaccard(gts[n], preds[m])))
            assert f[m, n] == pytest.approx(float(boundary_f(gts[n], preds[m])))
    seqs = rng.random((4, 3, 12, 15)) > 0.5  # 4 candidate sequences of 3 frames against gts as a clip
    js, fs = score_stack(gts, seqs)
    assert js.shape == fs.shape == (4, 3)
    for k in range(4):
        assert js[k] == pytest.approx(jaccard(gts, seqs[k]))
        assert fs[k] == pytest.approx(boundary_f(gts, seqs[k]))


def test_decay_bins_and_statistics():
    # round(linspace(1, 8, 5)) - 1 = 0, 2 (2.75), 4 (4.5 rounds up), 5 (6.25), 7; stops inclusive
    assert decay_bins(8) == [(0, 3), (2, 5), (4, 6), (5, 8)]
    v = np.array([1, 1, 1, 0.5, 0.5, 0.2, 0.2, 0.2])
    s = statistics(v)
    assert s.mean == pytest.approx(v.mean())
    assert s.recall == pytest.approx(3 / 8)  # strictly greater than 0.5
    assert s.decay == pytest.approx(1.0 - 0.2)
    one = statistics(np.array([0.7]))
    assert (one.mean, one.recall, one.decay) == (0.7, 1.0, 0.0)
    assert np.isnan(statistics(np.array([])).mean)


@pytest.mark.parametrize("n", [255, 256, 300, 1000])
def test_decay_on_long_clips_is_not_nan(n):
    # The official code's uint8 bin indices wrap from 256 frames on; ours give the intended bins.
    bins = decay_bins(n)
    assert bins[0][0] == 0 and bins[-1][1] == n
    v = np.linspace(1.0, 0.0, n)
    a, b = bins[0]
    c, d = bins[3]
    assert statistics(v).decay == pytest.approx(v[a:b].mean() - v[c:d].mean())
    assert np.isfinite(statistics(v).decay) and statistics(v).decay > 0.7


def test_decay_bins_for_300_frames_by_hand():
    # round(linspace(1, 300, 5)) = 1, 76 (75.75), 151 (150.5 rounds up), 225 (225.25), 300
    assert decay_bins(300) == [(0, 76), (75, 151), (150, 225), (224, 300)]
    v = np.r_[np.ones(76), np.full(148, 0.5), np.zeros(76)]
    assert statistics(v).decay == pytest.approx(1.0)
