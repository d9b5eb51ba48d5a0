"""Mask non-maximum suppression: drop keyframe candidates that repeat a better one (docs/method.md §7).

Candidates are SAM2 masks from different keyframes; many keyframes point at the same object, and
only the best-scored copy (SAM2's predicted IoU) needs tracking. IoUs come from one matrix
product over all masks.
"""

from __future__ import annotations

import numpy as np


def mask_iou_matrix(masks: np.ndarray) -> np.ndarray:
    """(N, N) IoU between boolean masks (N, ...). Two empty masks count as identical (IoU 1)."""
    flat = np.asarray(masks, dtype=bool).reshape(len(masks), -1).astype(np.float32)
    inter = flat @ flat.T
    area = flat.sum(axis=1)
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 1.0)


def mask_nms(masks: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.7) -> list[int]:
    """Indices of the masks kept, best score first.

    Greedy: take the highest-scoring remaining mask, drop every other whose IoU with it is above
    ``iou_threshold`` (1.0 keeps everything; 0.0 keeps one mask per group of overlapping ones).
    Equal scores keep the lower index; NaN scores rank last.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(scores)} scores")
    if len(scores) == 0:
        return []
    iou = mask_iou_matrix(masks)
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    alive = np.ones(len(scores), dtype=bool)
    keep: list[int] = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(int(i))
        alive &= iou[i] <= iou_threshold
    return keep
