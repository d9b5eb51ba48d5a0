"""Score candidate tracklets against the LVLM's attention maps and pick one (docs/method.md §8).

s_frm = Pearson(tracklet logits at the keyframes, S_frm), s_vid = Pearson(tracklet logits at the
video-branch frames, S_vid), s = α·s_frm + (1 − α)·s_vid; the best s wins. Logits are clipped to
±logit_clip, then brought onto each map's token grid through its ``TokenGeometry`` (area-averaged;
cells outside the content box — padding — read as background, −logit_clip). A correlation runs
over all elements of the (frames, rows, cols) stack at once.

Logits come from ``Tracklet.logits`` (SAM2 logits for every clip frame) when present; a tracklet
without them (built from masks elsewhere) uses its masks as logits: +logit_clip inside, −logit_clip
outside, before the same area resize.

Undefined correlations get defined values: a constant attention map (zero variance) carries no
preference, so every tracklet scores 0.0 on that branch; a constant tracklet (empty or full on
all those frames) cannot point at anything, so it scores −1.0 (the minimum) there — an empty
candidate never outranks a real one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..config import SegmentConfig
from ..errors import InputError
from ..types import GroundingResult, TokenGeometry, Tracklet

DEFAULT_LOGIT_CLIP = SegmentConfig.logit_clip
CONSTANT_MAP_SCORE = 0.0
CONSTANT_TRACKLET_SCORE = -1.0


def pearson(a: np.ndarray, b: np.ndarray, *, constant_a: float = CONSTANT_TRACKLET_SCORE,
            constant_b: float = CONSTANT_MAP_SCORE) -> float:
    """Pearson correlation over all elements. A constant ``b`` gives ``constant_b``, else a
    constant ``a`` gives ``constant_a`` (zero variance: the correlation is undefined)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"cannot correlate {x.size} with {y.size} elements")
    if _is_constant(y):
        return float(constant_b)
    if _is_constant(x):
        return float(constant_a)
    x, y = x - x.mean(), y - y.mean()
    return float(np.clip((x @ y) / math.sqrt(float(x @ x) * float(y @ y)), -1.0, 1.0))


def _is_constant(v: np.ndarray) -> bool:
    """Zero variance up to float32 rounding of values of this magnitude."""
    return v.size == 0 or float(v.std()) <= 1e-6 * max(1.0, float(np.abs(v).max()))


def to_token_grid(maps: np.ndarray, geometry: TokenGeometry, fill: float) -> np.ndarray:
    """(n, h, w) frame-covering maps → (n, rows, cols) on ``geometry``'s token grid.

    Each cell is the exact area mean of the map over the part of the frame the cell shows
    (fractional pixels weighted); the part of a cell outside the content box (padding) counts
    as ``fill``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    gh, gw = geometry.grid
    y0, x0, y1, x1 = geometry.content_box or (0.0, 0.0, float(gh), float(gw))
    wy = _cell_weights(gh, y0, y1, maps.shape[1])
    wx = _cell_weights(gw, x0, x1, maps.shape[2])
    inside = wy.sum(axis=1)[:, None] * wx.sum(axis=1)[None, :]
    return (wy @ (maps @ wx.T) + fill * (1.0 - inside)).astype(np.float32)


def _cell_weights(cells: int, lo: float, hi: float, pixels: int) -> np.ndarray:
    """(cells, pixels): the share of each token cell (along one axis) that each pixel covers.
    Cell ``k`` spans content coordinates [(k - lo) / (hi - lo), (k + 1 - lo) / (hi - lo)) of the
    frame; rows sum to the fraction of the cell inside the image."""
    scale = pixels / (hi - lo)  # pixels per cell
    start = (np.arange(cells) - lo) * scale
    edges = np.arange(pixels + 1, dtype=np.float64)
    overlap = (np.minimum(start[:, None] + scale, edges[None, 1:])
               - np.maximum(start[:, None], edges[None, :-1]))
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def tracklet_logits(tracklet: Tracklet, frames: np.ndarray, logit_clip: float) -> np.ndarray:
    """(n, h, w) clipped logits of ``tracklet`` at clip frames ``frames``: its stored SAM2 logits,
    or ±logit_clip from its masks when it has none."""
    frames = np.asarray(frames, dtype=np.int64)
    if tracklet.logits is not None:
        return np.clip(np.asarray(tracklet.logits, dtype=np.float32)[frames], -logit_clip, logit_clip)
    return np.where(np.asarray(tracklet.masks)[frames], logit_clip, -logit_clip).astype(np.float32)


def score_tracklet(tracklet: Tracklet, grounding: GroundingResult, alpha: float,
                   logit_clip: float = DEFAULT_LOGIT_CLIP) -> Tracklet:
    """A copy of ``tracklet`` with s_frm, s_vid and s filled in."""
    s_frm = _branch(tracklet, grounding.keyframes, grounding.s_frm, grounding.frame_geometry, logit_clip)
    s_vid = _branch(tracklet, grounding.video_frames, grounding.s_vid, grounding.video_geometry,
                    logit_clip)
    s = alpha * s_frm + (1.0 - alpha) * s_vid
    return dataclasses.replace(tracklet, s_frm=s_frm, s_vid=s_vid, s=float(s))


def _branch(tracklet: Tracklet, frames: np.ndarray, attention: np.ndarray, geometry: TokenGeometry,
            logit_clip: float) -> float:
    attention = np.asarray(attention, dtype=np.float32)
    if attention.shape[0] != len(frames):
        raise ValueError(f"{attention.shape[0]} attention maps for {len(frames)} frames")
    grid = to_token_grid(tracklet_logits(tracklet, frames, logit_clip), geometry, fill=-logit_clip)
    return pearson(grid, attention)


def score_tracklets(tracklets: list[Tracklet], grounding: GroundingResult, alpha: float,
                    logit_clip: float = DEFAULT_LOGIT_CLIP) -> list[Tracklet]:
    """New frozen tracklets with their scores (same order). α weighs the frame branch (paper 0.3)."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha (weight of the frame score) must be in [0, 1], got {alpha}")
    return [score_tracklet(t, grounding, alpha, logit_clip) for t in tracklets]


def select_best(tracklets: list[Tracklet]) -> int:
    """Index of the highest s (NaN ranks last; ties keep the earlier tracklet)."""
    if not tracklets:
        raise ValueError("no candidate tracklets to choose from")
    scores = np.array([t.s for t in tracklets], dtype=np.float64)
    return int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))
