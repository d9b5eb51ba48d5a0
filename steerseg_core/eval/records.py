"""One expression's record: the chosen masks' J and F over the annotated frames, every candidate
tracklet's scores and J/F (so an α sweep can re-pick without the models), and the rollout–mask
correlation (Table 3)."""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..datasets import Expression, GroundTruth
from ..errors import InputError
from ..types import SegmentationResult
from .correlation import rollout_mask_correlation
from .metrics import frame_scores


def score_candidates(gt: GroundTruth, clip_names: Sequence[str],
                     candidates: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean J and F over the GT frames for each candidate (T, H, W) mask sequence → (K,), (K,).

    GT frames the clip lacks count as empty predictions."""
    index = {n: i for i, n in enumerate(clip_names)}
    k = len(candidates)
    size = gt.masks.shape[1:]
    for c in candidates:
        if c.shape[1:] != size:
            raise InputError(f"predicted masks are {c.shape[2]}x{c.shape[1]}, ground truth is {size[1]}x{size[0]}")
    js = np.zeros((k, len(gt.frames)))
    fs = np.zeros((k, len(gt.frames)))
    empty = np.zeros(size, dtype=bool)
    for t, name in enumerate(gt.frames):
        i = index.get(name)
        preds = np.stack([c[i] if i is not None else empty for c in candidates])
        jt, ft = frame_scores(gt.masks[t][None], preds)
        js[:, t], fs[:, t] = jt[:, 0], ft[:, 0]
    return js.mean(axis=1), fs.mean(axis=1)


def build_record(expr: Expression, clip_names: Sequence[str], masks: np.ndarray, gt: GroundTruth | None,
                 result: SegmentationResult | None = None) -> dict:
    """The per-expression record: chosen masks' J/F, every tracklet's scores and J/F, correlation."""
    rec: dict[str, Any] = {"key": expr.key, "benchmark": expr.benchmark, "video": expr.video,
                           "exp_id": expr.exp_id, "text": expr.text, "group": expr.group,
                           "obj_ids": list(expr.obj_ids), "status": "ok", "frames": len(clip_names)}
    tracklets = list(result.tracklets) if result is not None else []
    chosen = result.chosen if result is not None and tracklets else -1
    cands = [np.asarray(t.masks, dtype=bool) for t in tracklets] if tracklets else [masks]
    if gt is not None:
        j, f = score_candidates(gt, clip_names, cands)
        ci = chosen if chosen >= 0 else 0
        rec.update(J=float(j[ci]), F=float(f[ci]), JF=float((j[ci] + f[ci]) / 2), gt_frames=len(gt.frames))
    else:
        j = f = np.full(len(cands), np.nan)
        rec.update(J=None, F=None, JF=None)
    if result is not None:
        g = result.grounding
        rec["chosen"] = chosen
        rec["tracklets"] = [{"s_frm": t.s_frm, "s_vid": t.s_vid, "s": t.s, "J": j[i], "F": f[i],
                             "source_keyframe": t.source_keyframe} for i, t in enumerate(tracklets)]
        rec["query_word"] = g.query_word
        rec["reasoning"] = g.reasoning
        rec["attributes"] = list(g.attributes)
        rec["keyframes"] = np.asarray(g.keyframes).tolist()
        rec["timings"] = {**g.timings, **result.timings}
        if gt is not None:
            index = {n: i for i, n in enumerate(clip_names)}
            lookup = {index[n]: gt.masks[t] for t, n in enumerate(gt.frames) if n in index}
            corr = rollout_mask_correlation(g, lookup)
            rec["correlation"] = {"frame": corr.frame, "video": corr.video,
                                  "per_keyframe": list(corr.per_keyframe),
                                  "per_video_frame": list(corr.per_video_frame)}
    return rec


def error_record(expr: Expression, clip_names: Sequence[str], gt: GroundTruth | None, err: BaseException) -> dict:
    """A failed expression, scored as empty masks (what a missing prediction gets)."""
    rec = {"key": expr.key, "benchmark": expr.benchmark, "video": expr.video, "exp_id": expr.exp_id,
           "text": expr.text, "group": expr.group, "obj_ids": list(expr.obj_ids), "status": "error",
           "error": f"{type(err).__name__}: {err}",
           "traceback": "".join(traceback.format_exception(err))[-4000:], "frames": len(clip_names)}
    if gt is not None:
        empty = np.zeros((len(clip_names), *gt.masks.shape[1:]), dtype=bool)
        j, f = score_candidates(gt, clip_names, [empty])
        rec.update(J=float(j[0]), F=float(f[0]), JF=float((j[0] + f[0]) / 2), gt_frames=len(gt.frames))
    else:
        rec.update(J=None, F=None, JF=None)
    return rec
