"""How well the rollout maps agree with the ground-truth mask (the paper's Table 3 diagnostic).

Per keyframe, the GT mask is area-averaged onto the map's token grid (each cell = the fraction of
it the object covers; where the backbone letterboxes, only the content box holds the image) and
correlated (Pearson, over all cells) with the map; the frame-branch value is the mean over
keyframes of S_frm, the video-branch value the same for S_vid at the video frames. Keyframes where
either side is constant (e.g. the object is absent) have no correlation and are left out.
Training reuses ``downsample_mask`` for its targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..types import GroundingResult, TokenGeometry


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally sized arrays over all elements; NaN if one is constant."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"sizes differ: {x.size} vs {y.size}")
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    if not np.isfinite(denom) or denom <= 1e-12 * max(x.size, 1):
        return float("nan")
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0))


def _overlap_matrix(n_out: int, n_in: int, start: float, stop: float) -> np.ndarray:
    """(n_out, n_in) lengths of overlap between output cells [i, i+1) and input pixels mapped onto
    [start, stop) in output-cell units."""
    step = (stop - start) / n_in
    lo = start + np.arange(n_in) * step
    hi = lo + step
    cells = np.arange(n_out, dtype=np.float64)
    return np.clip(np.minimum(cells[:, None] + 1, hi[None, :]) - np.maximum(cells[:, None], lo[None, :]), 0, None)


def downsample_mask(mask: np.ndarray, grid: tuple[int, int],
                    content_box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Area-average a (H, W) mask onto a (rows, cols) grid → fraction of each cell covered.

    ``content_box`` (y0, x0, y1, x1) in cell units is where the image lies on the grid (whole grid
    when None); cells outside it get 0.
    """
    m = np.asarray(mask, dtype=np.float64)
    rows, cols = int(grid[0]), int(grid[1])
    y0, x0, y1, x1 = content_box or (0.0, 0.0, float(rows), float(cols))
    wr = _overlap_matrix(rows, m.shape[0], y0, y1)
    wc = _overlap_matrix(cols, m.shape[1], x0, x1)
    return wr @ m @ wc.T


@dataclass(frozen=True)
class RolloutCorrelation:
    """Mean Pearson correlation of S_frm (frame) and S_vid (video) with the GT, and per-frame values."""

    frame: float
    video: float
    per_keyframe: tuple[float, ...]
    per_video_frame: tuple[float, ...]


def _gt_at(gt_masks: np.ndarray | Mapping[int, np.ndarray], t: int,
           has_gt: np.ndarray | None) -> np.ndarray | None:
    if isinstance(gt_masks, Mapping):
        return gt_masks.get(t)
    if t < 0 or t >= len(gt_masks) or (has_gt is not None and not has_gt[t]):
        return None
    return gt_masks[t]


def map_correlations(maps: np.ndarray, frame_indices: np.ndarray,
                     gt_masks: np.ndarray | Mapping[int, np.ndarray],
                     geometry: TokenGeometry | None, has_gt: np.ndarray | None = None) -> list[float]:
    """Correlation of each map with the GT mask at its frame (NaN where unavailable)."""
    out: list[float] = []
    for m, t in zip(np.asarray(maps), np.asarray(frame_indices), strict=True):
        gt = _gt_at(gt_masks, int(t), has_gt)
        if gt is None:
            out.append(float("nan"))
            continue
        box = geometry.content_box if geometry is not None and tuple(geometry.grid) == m.shape else None
        out.append(pearson(m, downsample_mask(gt, m.shape, box)))
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def rollout_mask_correlation(grounding: GroundingResult, gt_masks: np.ndarray | Mapping[int, np.ndarray],
                             has_gt: np.ndarray | None = None) -> RolloutCorrelation:
    """Table 3's rollout–mask correlation for one expression.

    gt_masks: (T, H, W) bool GT for every clip frame, or {clip frame index: (H, W) mask} for the
    annotated frames only; has_gt: optional (T,) bool saying which frames of the array are
    annotated (others are skipped).
    """
    per_k = map_correlations(grounding.s_frm, grounding.keyframes, gt_masks, grounding.frame_geometry, has_gt)
    per_v = map_correlations(grounding.s_vid, grounding.video_frames, gt_masks, grounding.video_geometry, has_gt)
    return RolloutCorrelation(_nanmean(per_k), _nanmean(per_v), tuple(per_k), tuple(per_v))
