"""Grounding → candidate tracklets (docs/method.md §7), and click refinement of a chosen tracklet.

One positive point per keyframe (argmax of S_frm) → a SAM2 mask on that keyframe → mask NMS →
each survivor tracked forward and backward from its keyframe through the whole clip. The clip goes
through SAM2's image encoder once (``Sam2Backend.encode``); keyframe masks and every candidate's
tracking read those features, and all candidates are tracked as one batch (``propagation.py``).

Tracklet layout: ``masks`` (T, H, W) bool at the clip's resolution; ``logits`` (T, h, w) float32
SAM2 mask logits for *every* clip frame, clipped to ±logit_clip and area-resized to a small grid
with the clip's aspect ratio (long side ``LOGIT_SIDE``) — scoring picks the keyframes and the
video-branch frames from it, and the UI can show it as a heat map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..config import SegmentConfig
from ..errors import InputError
from ..stages import Stage
from ..types import Clip, GroundingResult, Tracklet
from .nms import mask_nms
from .points import keyframe_points
from .propagation import low_res_to_outputs, segment_keyframes, track_candidates
from .sam2_backend import Sam2Backend

Progress = Callable[[str, float], None]
LOGIT_SIDE = 64
OBJ_ID = 1
# share of the stage's progress bar: encoding, keyframe masks, tracking
_ENCODE, _KEYFRAMES = 0.4, 0.45


def logit_grid(height: int, width: int, side: int = LOGIT_SIDE) -> tuple[int, int]:
    """(h, w) of the stored logits: long side ``side``, the frame's aspect ratio."""
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class _Collector:
    """Fills (T, H, W) masks and (T, h, w) logits per candidate as results arrive."""

    def __init__(self, n: int, clip: Clip, logit_clip: float):
        self.size = (clip.height, clip.width)
        self.logit_size = logit_grid(clip.height, clip.width)
        self.logit_clip = logit_clip
        self.masks = np.zeros((n, clip.num_frames, *self.size), dtype=bool)
        self.logits = np.zeros((n, clip.num_frames, *self.logit_size), dtype=np.float32)
        self.seen = np.zeros((n, clip.num_frames), dtype=bool)

    def __call__(self, cands: list[int], frames: list[int], low_res: torch.Tensor) -> None:
        masks, logits = low_res_to_outputs(low_res, self.size, self.logit_size, self.logit_clip)
        for i, (c, f) in enumerate(zip(cands, frames, strict=True)):
            self.masks[c, f], self.logits[c, f], self.seen[c, f] = masks[i], logits[i], True


def _check_grounding(clip: Clip, grounding: GroundingResult) -> list[int]:
    frames = [int(k) for k in np.asarray(grounding.keyframes).reshape(-1)]
    if not frames:
        raise InputError("the grounding result has no keyframes")
    if any(not 0 <= k < clip.num_frames for k in frames):
        raise InputError(f"keyframes {frames} fall outside the clip's {clip.num_frames} frames")
    if np.asarray(grounding.s_frm).shape[0] != len(frames):
        raise InputError(f"{np.asarray(grounding.s_frm).shape[0]} frame maps for {len(frames)} keyframes")
    return frames


def generate_candidates(backend: Sam2Backend, clip: Clip, grounding: GroundingResult,
                        cfg: SegmentConfig, progress: Progress | None = None) -> list[Tracklet]:
    """Candidate tracklets (unscored) for ``grounding`` on ``clip``, in keyframe order.

    Keyframe masks SAM2 predicts as empty (object absent) are dropped unless all are; NMS at
    ``cfg.nms_iou`` (IoU on SAM2's low-res mask grid) keeps the mask with the higher predicted
    IoU. ``progress(message, fraction)`` reports this stage's progress in [0, 1].
    """
    frames = _check_grounding(clip, grounding)
    report = progress or (lambda message, fraction: None)
    points = keyframe_points(grounding.s_frm, grounding.frame_geometry)
    with backend.running():
        report(Stage.SAM2_ENCODING, 0.0)
        enc = backend.encode(clip, progress=lambda f: report(Stage.SAM2_ENCODING, _ENCODE * f))
        key = segment_keyframes(backend, enc, frames, points)
        report(Stage.SAM2_KEYFRAMES, _KEYFRAMES)
        present = (key.low_res > 0).flatten(1).any(dim=1).cpu().numpy()
        candidates = np.flatnonzero(present) if present.any() else np.arange(len(frames))
        masks = (key.low_res[candidates, 0] > 0).cpu().numpy()
        kept = mask_nms(masks, key.iou[candidates].cpu().numpy(), cfg.nms_iou)
        rows = sorted(int(candidates[i]) for i in kept)
        collect = _Collector(len(rows), clip, cfg.logit_clip)
        track_candidates(
            backend, enc, key, rows, collect,
            progress=lambda f: report(Stage.SAM2_TRACKING, _KEYFRAMES + (1 - _KEYFRAMES) * f))
    assert collect.seen.all(), "every candidate must have a mask on every frame"
    report(Stage.SAM2_READY, 1.0)
    return [Tracklet(source_keyframe=frames[r], point_xy=(float(points[r][0]), float(points[r][1])),
                     masks=collect.masks[i], logits=collect.logits[i])
            for i, r in enumerate(rows)]


def _check_clicks(clip: Clip, clicks) -> tuple[tuple[int, float, float, int], ...]:
    out = []
    for click in clicks:
        if len(click) != 4:
            raise InputError(f"a click is (frame, x, y, label), got {click!r}")
        f, x, y, label = int(click[0]), float(click[1]), float(click[2]), int(click[3])
        if not 0 <= f < clip.num_frames:
            raise InputError(f"click on frame {f}, but the clip has {clip.num_frames} frames")
        if not (0 <= x < clip.width and 0 <= y < clip.height):
            raise InputError(f"click ({x:.0f}, {y:.0f}) is outside the {clip.width}×{clip.height} frame")
        if label not in (0, 1):
            raise InputError("click label must be 1 (positive) or 0 (negative)")
        out.append((f, x, y, label))
    return tuple(out)


def refine_tracklet(backend: Sam2Backend, clip: Clip, tracklet: Tracklet,
                    clicks: list[tuple[int, float, float, int]],
                    logit_clip: float = SegmentConfig.logit_clip) -> Tracklet:
    """Re-track ``tracklet`` with extra clicks (frame, x, y, label 1 positive / 0 negative).

    Uses sam2's own interactive API on a state built from the shared encoded clip: on the source
    keyframe the original point plus that frame's clicks prompt SAM2 afresh; on any other clicked
    frame the tracklet's current mask is given as the mask prompt together with the clicks (so a
    click corrects the mask rather than starting over). Then sam2 propagates forward and backward
    from the earliest prompted frame. Clicks accumulate in ``Tracklet.clicks``; scores are reset
    to NaN (rescore with ``score_tracklets``).
    """
    if tuple(np.shape(tracklet.masks)) != (clip.num_frames, clip.height, clip.width):
        raise InputError(f"the tracklet's masks {np.shape(tracklet.masks)} do not belong to this "
                         f"{clip.num_frames}-frame {clip.width}×{clip.height} clip")
    all_clicks = tuple(tracklet.clicks) + _check_clicks(clip, clicks)
    k = int(tracklet.source_keyframe)
    by_frame: dict[int, list[tuple[float, float, int]]] = {k: [(*tracklet.point_xy, 1)]}
    for f, x, y, label in all_clicks:
        by_frame.setdefault(f, []).append((x, y, label))
    model = backend.model
    with backend.running():
        state = backend.init_state(clip)
        for f in sorted(by_frame):
            pts = np.array([(x, y) for x, y, _ in by_frame[f]], dtype=np.float32)
            labels = np.array([label for _, _, label in by_frame[f]], dtype=np.int32)
            if f != k:
                model.add_new_mask(state, frame_idx=f, obj_id=OBJ_ID, mask=np.asarray(tracklet.masks[f]))
            model.add_new_points_or_box(state, frame_idx=f, obj_id=OBJ_ID, points=pts, labels=labels,
                                        clear_old_points=True)
        start = min(by_frame)
        for reverse in (False, True):
            for _ in model.propagate_in_video(state, start_frame_idx=start, reverse=reverse):
                pass
        outputs = state["output_dict_per_obj"][state["obj_id_to_idx"][OBJ_ID]]
        low_res = torch.cat([
            (outputs["cond_frame_outputs"].get(t) or outputs["non_cond_frame_outputs"][t])["pred_masks"]
            for t in range(clip.num_frames)]).to(backend.device)
        masks, logits = low_res_to_outputs(low_res, (clip.height, clip.width),
                                           logit_grid(clip.height, clip.width), logit_clip)
    return Tracklet(source_keyframe=k, point_xy=tracklet.point_xy, masks=masks, logits=logits,
                    clicks=all_clicks)
