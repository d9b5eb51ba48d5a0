"""Segmentation stage: keyframe points → SAM2 masks → NMS → tracklets → scores (paper §3.3; docs/method.md)."""

from .build_sam import build_sam2
from .nms import mask_iou_matrix, mask_nms
from .points import argmax_cell, keyframe_point, keyframe_points
from .sam2_backend import Sam2Backend
from .scoring import pearson, score_tracklet, score_tracklets, select_best, to_token_grid
from .tracklets import LOGIT_SIDE, generate_candidates, logit_grid, refine_tracklet

__all__ = [
    "LOGIT_SIDE",
    "Sam2Backend",
    "argmax_cell",
    "build_sam2",
    "generate_candidates",
    "keyframe_point",
    "keyframe_points",
    "logit_grid",
    "mask_iou_matrix",
    "mask_nms",
    "pearson",
    "refine_tracklet",
    "score_tracklet",
    "score_tracklets",
    "select_best",
    "to_token_grid",
]
