"""J (region IoU), F (boundary F-measure) and their per-object statistics, as davis2017-evaluation
computes them, vectorised over objects so a sequence costs one pass over its frames.

Conventions that decide the numbers (all matching the official code):

* J = |P ∩ G| / |P ∪ G| with void pixels removed from both; an empty union gives 1.
* F: boundaries by ``seg2bmap`` (a pixel differs from its right, bottom or bottom-right neighbour;
  the last row only looks right, the last column only down, the corner is never a boundary), a
  tolerance of ``ceil(0.008 · diagonal)`` pixels applied by dilating with a disk, precision =
  matched predicted boundary / predicted boundary, recall = matched GT boundary / GT boundary,
  F = 2PR / (P + R); both boundaries empty → 1, exactly one empty → 0.
* Per object: Mean, Recall (fraction of frames > 0.5) and Decay (mean of the first quarter bin minus
  the last, bins from ``round(linspace(1, n, 5))``, inclusive ends). The official code casts the bin
  indices to uint8, which wraps for 256+ frames; here they stay int64 so long clips get the
  intended value.
* ReVOS accuracy A and robustness R (``revos_accuracy_robustness``): the official script's 0/255
  scaling of predictions is kept on purpose, see there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

BOUND_TH = 0.008


def disk(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 structuring element: offsets with dx² + dy² ≤ r²."""
    r = int(radius)
    ax = np.arange(-r, r + 1)
    return ((ax[:, None] ** 2 + ax[None, :] ** 2) <= r * r).astype(np.uint8)


def boundary_tolerance(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Dilation radius in pixels: ``bound_th`` itself when ≥ 1, else ceil(bound_th · diagonal)."""
    if bound_th >= 1:
        return int(round(bound_th))
    return int(math.ceil(bound_th * math.hypot(height, width)))


def seg2bmap(masks: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary maps of binary masks of shape (..., H, W) (bool)."""
    seg = np.asarray(masks).astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[..., :, :-1] = seg[..., :, 1:]
    south[..., :-1, :] = seg[..., 1:, :]
    south_east[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[..., -1, :] = seg[..., -1, :] ^ east[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ south[..., :, -1]
    b[..., -1, -1] = False
    return b


def _dilate(boundaries: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Dilate each (H, W) map of a (K, H, W) bool stack by ``kernel`` (centred).

    Only the bounding box of a map's boundary pixels, grown by the radius, can change, so only
    that window is dilated — the result is identical to dilating the whole frame.
    """
    r = kernel.shape[0] // 2
    out = np.zeros_like(boundaries, dtype=bool)
    h, w = boundaries.shape[-2:]
    for k, b in enumerate(boundaries):
        rows = np.flatnonzero(b.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(b.any(axis=0))
        y0, y1 = max(rows[0] - r, 0), min(rows[-1] + r + 1, h)
        x0, x1 = max(cols[0] - r, 0), min(cols[-1] + r + 1, w)
        window = np.ascontiguousarray(b[y0:y1, x0:x1]).view(np.uint8)
        out[k, y0:y1, x0:x1] = cv2.dilate(window, kernel) > 0
    return out


def _counts_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) pixel counts of a[m] & b[n] for bool stacks (M, P) and (N, P), exact."""
    m, n, p = a.shape[0], b.shape[0], a.shape[1]
    if m * n * p <= 2**26:
        return np.count_nonzero(a[:, None, :] & b[None, :, :], axis=2)
    dtype = np.float32 if p < 2**24 else np.float64
    return np.rint(a.astype(dtype) @ b.astype(dtype).T).astype(np.int64)


def frame_scores(
    gt: np.ndarray,
    pred: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    pairs: str = "all",
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of one frame for stacks of binary masks.

    gt: (N, H, W), pred: (M, H, W). ``pairs="all"`` scores every (pred, gt) pair → (M, N) arrays;
    ``pairs="diag"`` (M == N) scores pred[k] against gt[k] → (N,) arrays.
    """
    gt = np.asarray(gt, dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    if gt.shape[1:] != pred.shape[1:]:
        raise ValueError(f"mask sizes differ: ground truth {gt.shape[1:]}, prediction {pred.shape[1:]}")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt = gt & keep
        pred = pred & keep
    h, w = gt.shape[1:]
    kernel = disk(boundary_tolerance(h, w, bound_th))
    gb, pb = seg2bmap(gt), seg2bmap(pred)
    gd, pd = _dilate(gb, kernel), _dilate(pb, kernel)
    flat = lambda x: x.reshape(x.shape[0], -1)  # noqa: E731
    count = lambda x: np.count_nonzero(flat(x), axis=1)  # noqa: E731
    g_area, p_area = count(gt), count(pred)
    n_gt, n_fg = count(gb), count(pb)
    if pairs == "diag":
        if len(gt) != len(pred):
            raise ValueError("pairs='diag' needs as many predictions as ground-truth masks")
        inter = count(gt & pred)
        fg_match = count(pb & gd)
        gt_match = count(gb & pd)
        g_area_, p_area_, n_gt_, n_fg_ = g_area, p_area, n_gt, n_fg
    else:
        inter = _counts_matrix(flat(pred), flat(gt))
        fg_match = _counts_matrix(flat(pb), flat(gd))
        gt_match = _counts_matrix(flat(pd), flat(gb))
        g_area_, n_gt_ = g_area[None, :], n_gt[None, :]
        p_area_, n_fg_ = p_area[:, None], n_fg[:, None]
    union = p_area_ + g_area_ - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
        precision = np.where(n_fg_ == 0, 1.0, fg_match / np.maximum(n_fg_, 1))
        recall = np.where(n_gt_ == 0, 1.0, gt_match / np.maximum(n_gt_, 1))
        # Exactly one boundary empty: the official code sets (P, R) to (1, 0) or (0, 1) → F = 0.
        one_empty = (n_fg_ == 0) != (n_gt_ == 0)
        precision = np.where(one_empty & (n_gt_ == 0), 0.0, precision)
        recall = np.where(one_empty & (n_fg_ == 0), 0.0, recall)
        total = precision + recall
        f = np.where(total == 0, 0.0, 2 * precision * recall / np.where(total == 0, 1.0, total))
    shape = (len(pred), len(gt)) if pairs != "diag" else (len(gt),)
    return np.broadcast_to(j, shape).astype(np.float64), np.broadcast_to(f, shape).astype(np.float64)


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> np.ndarray:
    """Per-frame J of binary masks (T, H, W) (or one (H, W) frame → a 0-d array)."""
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        gt, pred = gt & keep, pred & keep
    inter = (gt & pred).sum(axis=(-2, -1))
    union = (gt | pred).sum(axis=(-2, -1))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def boundary_f(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> np.ndarray:
    """Per-frame F of binary masks (T, H, W) (or one (H, W) frame → a 0-d array)."""
    gt, pred = np.asarray(gt, dtype=bool), np.asarray(pred, dtype=bool)
    if gt.shape != pred.shape:
        raise ValueError(f"mask shapes differ: ground truth {gt.shape}, prediction {pred.shape}")
    if gt.ndim == 2:
        return boundary_f(gt[None], pred[None], None if void is None else np.asarray(void)[None], bound_th)[0]
    out = np.empty(len(gt))
    for t in range(len(gt)):
        v = None if void is None else void[t]
        out[t] = frame_scores(gt[t][None], pred[t][None], v, bound_th, pairs="diag")[1][0]
    return out


def score_stack(
    gt: np.ndarray, preds: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F per frame of K candidate mask sequences against one GT sequence.

    gt: (T, H, W) bool, preds: (K, T, H, W) bool → (K, T) J and (K, T) F. GT boundaries are computed
    once per frame and shared by all candidates.
    """
    gt = np.asarray(gt, dtype=bool)
    preds = np.asarray(preds, dtype=bool)
    if preds.shape[1:] != gt.shape:
        raise ValueError(f"mask shapes differ: ground truth {gt.shape}, predictions {preds.shape[1:]}")
    k, t_len = preds.shape[:2]
    j = np.empty((k, t_len))
    f = np.empty((k, t_len))
    for t in range(t_len):
        jt, ft = frame_scores(gt[t][None], preds[:, t], None if void is None else void[t], bound_th)
        j[:, t], f[:, t] = jt[:, 0], ft[:, 0]
    return j, f


@dataclass(frozen=True)
class Stats:
    """Mean, recall (fraction > 0.5) and decay of one object's per-frame values."""

    mean: float
    recall: float
    decay: float


def decay_bins(n: int) -> list[tuple[int, int]]:
    """The four (start, stop) slices of the official decay, with int64 indices (no uint8 wrap)."""
    ids = (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)
    return [(int(ids[i]), int(ids[i + 1]) + 1) for i in range(4)]


def statistics(values: np.ndarray) -> Stats:
    """Official per-object statistics of per-frame J or F values (NaN for no frames)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return Stats(float("nan"), float("nan"), float("nan"))
    with np.errstate(invalid="ignore"):
        mean = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        recall = float(np.mean(v > 0.5))
        bins = [v[a:b] for a, b in decay_bins(v.size)]
        first = bins[0][np.isfinite(bins[0])]
        last = bins[3][np.isfinite(bins[3])]
        decay = float(first.mean() - last.mean()) if first.size and last.size else float("nan")
    return Stats(mean, recall, decay)


def revos_accuracy_robustness(gt: np.ndarray, pred: np.ndarray,
                              foreground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame pixel accuracy A and robustness R, computed as ReVOS's official script does.

    gt, pred: (T, H, W) bool; foreground: (T,) the video's foreground pixel counts
    (``mask_dict_foreground.json``). The script reads predictions as 0/255 and the ground truth as
    0/1, in uint8 arithmetic, and we keep that so the numbers compare with published ones:
    A = mean(gt == pred) is the fraction of pixels that are background in *both* (a perfect mask
    scores 1 − foreground fraction, not 1), and R = max(1 − neg / (pos + 1e-6), 0) with ``neg``
    the 0/255 predicted values outside the ground truth — each false-positive pixel weighs 255.
    (The script sums overlapping annotations of one expression, where uint8 wraparound adds 1/255
    of a false positive per covered overlap pixel; we use their union.)
    """
    g = np.asarray(gt, dtype=bool).astype(np.uint8)
    p = np.where(np.asarray(pred, dtype=bool), 255, 0).astype(np.uint8)
    acc = (g == p).mean(axis=(1, 2))
    neg = ((1 - g) * p).sum(axis=(1, 2), dtype=np.int64)
    pos = np.asarray(foreground, dtype=np.float64)
    rob = np.maximum(1.0 - neg / (pos + 1e-6), 0.0)
    return acc, rob
