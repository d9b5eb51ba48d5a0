"""Batched SAM2 tracking of many single-point candidates over one encoded clip.

sam2's video predictor tracks the objects of a state one at a time and starts every pass at the
state's earliest prompted frame, so candidates prompted on different keyframes cannot share a
pass. Here each candidate is split into two independent *sequences* — forward from its keyframe
to the last frame, backward from its keyframe to frame 0 — and all sequences advance together:
at step ``s`` every sequence still running is ``s`` frames away from its keyframe, so they all
have the same memory layout (the prompted keyframe plus their last steps) and one ``track_step``
call handles the whole batch, each row reading its own frame's cached encoder features.

Per sequence this computes what sam2 computes for one object prompted on its keyframe and
propagated in one direction in a fresh state (``propagate_in_video(start_frame_idx=k)`` forward,
or ``reverse=True``); tests check that equivalence. Frame indices handed to sam2 are those step
numbers, which is exact for sam2's memory selection with the eval temporal stride of 1 (every
released config). Mask memories are stored in bfloat16 like sam2's predictor stores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .sam2_backend import EncodedClip, Sam2Backend

# track_step reads these from a memory frame's output; everything else is dropped.
_MEMORY_KEYS = ("maskmem_features", "maskmem_pos_enc", "obj_ptr")


@dataclass
class KeyframeMasks:
    """SAM2 on each keyframe with one positive point (no memory: initial conditioning frames).

    low_res: (N, 1, s, s) float32 mask logits at sam2's low resolution (image_size / 4), the
    empty-object value (-1024) where the object score says "absent"; iou: (N,) the decoder's
    predicted IoU of the chosen mask; outputs: sam2's per-row outputs, reused as the prompted
    frame's memory when the candidate is tracked.
    """

    frames: list[int]
    points_xy: list[tuple[float, float]]
    low_res: torch.Tensor
    iou: torch.Tensor
    object_score: torch.Tensor
    outputs: dict


def _vision_inputs(backend: Sam2Backend, enc: EncodedClip, frames: list[int]):
    out = backend.model._prepare_backbone_features(enc.backbone_out(frames, backend.device))
    _, feats, pos, sizes = out
    return feats, pos, sizes


def segment_keyframes(backend: Sam2Backend, enc: EncodedClip, frames: list[int],
                      points_xy: list[tuple[float, float]], batch_size: int = 16) -> KeyframeMasks:
    """One positive click per keyframe → one mask per keyframe, batched. Call inside
    ``backend.running()``."""
    model = backend.model
    h, w = enc.video_size
    scale = torch.tensor([backend.image_size / w, backend.image_size / h], device=backend.device)
    low, ious, scores, outs = [], [], [], []
    for start in range(0, len(frames), batch_size):
        fr = frames[start : start + batch_size]
        pts = torch.tensor(points_xy[start : start + batch_size], dtype=torch.float32,
                           device=backend.device)
        point_inputs = {"point_coords": (pts * scale)[:, None, :],
                        "point_labels": torch.ones(len(fr), 1, dtype=torch.int32, device=backend.device)}
        feats, pos, sizes = _vision_inputs(backend, enc, fr)
        current_out, sam_outputs, _, _ = model._track_step(
            frame_idx=0, is_init_cond_frame=True, current_vision_feats=feats,
            current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=point_inputs,
            mask_inputs=None, output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
            num_frames=enc.num_frames, track_in_reverse=False, prev_sam_mask_logits=None)
        _, _, iou, low_res, _, obj_ptr, obj_score = sam_outputs
        low.append(low_res.float())
        ious.append(iou.float().max(dim=-1).values)
        scores.append(obj_score.float().reshape(-1))
        outs.append({"obj_ptr": obj_ptr, "object_score_logits": obj_score})
    return KeyframeMasks(
        frames=list(frames), points_xy=list(points_xy), low_res=torch.cat(low), iou=torch.cat(ious),
        object_score=torch.cat(scores),
        outputs={k: torch.cat([o[k] for o in outs]) for k in ("obj_ptr", "object_score_logits")})


def _prompted_memory(backend: Sam2Backend, enc: EncodedClip, key: KeyframeMasks,
                     rows: list[int]) -> dict:
    """Memory of the prompted keyframes (what sam2's propagate preflight encodes: the mask
    upsampled to the input size, binarised because it comes from clicks)."""
    model = backend.model
    frames = [key.frames[r] for r in rows]
    feats, _, sizes = _vision_inputs(backend, enc, frames)
    low = key.low_res[rows]
    high = F.interpolate(low, size=(backend.image_size, backend.image_size), mode="bilinear",
                         align_corners=False)
    mem, mem_pos = model._encode_new_memory(
        current_vision_feats=feats, feat_sizes=sizes, pred_masks_high_res=high,
        object_score_logits=key.outputs["object_score_logits"][rows], is_mask_from_pts=True)
    return {"maskmem_features": mem.to(torch.bfloat16), "maskmem_pos_enc": mem_pos,
            "obj_ptr": key.outputs["obj_ptr"][rows]}


def _cat_rows(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    return {"maskmem_features": torch.cat([p["maskmem_features"] for p in parts]),
            "maskmem_pos_enc": [torch.cat(x) for x in zip(*[p["maskmem_pos_enc"] for p in parts], strict=True)],
            "obj_ptr": torch.cat([p["obj_ptr"] for p in parts])}


OnFrames = Callable[[list[int], list[int], torch.Tensor], None]


def track_candidates(backend: Sam2Backend, enc: EncodedClip, key: KeyframeMasks,
                     rows: list[int], on_frames: OnFrames, batch_size: int = 16,
                     progress: Callable[[float], None] | None = None) -> None:
    """Track the keyframe candidates ``rows`` forward and backward through the clip.

    ``on_frames(candidates, frames, low_res)`` receives every result as it is computed:
    candidate positions (indices into ``rows``), clip frame indices and (n, 1, s, s) logits —
    including each candidate's own keyframe mask first. Call inside ``backend.running()``.
    """
    model = backend.model
    if getattr(model, "memory_temporal_stride_for_eval", 1) != 1:
        raise NotImplementedError("batched tracking needs memory_temporal_stride_for_eval == 1")
    T = enc.num_frames
    if not rows:
        return
    on_frames(list(range(len(rows))), [key.frames[r] for r in rows], key.low_res[rows])
    if T == 1:
        return
    cond_all = _prompted_memory(backend, enc, key, rows)
    # sequences: (candidate position, keyframe, direction); longest first, so the sequences still
    # running at any step are a prefix of this order and memories can be sliced, not gathered.
    seqs = [(c, key.frames[r], d) for c, r in enumerate(rows) for d in (1, -1)]
    length = [T - k if d == 1 else k + 1 for _, k, d in seqs]
    order = sorted(range(len(seqs)), key=lambda i: -length[i])
    seqs, length = [seqs[i] for i in order], [length[i] for i in order]
    cond = {"maskmem_features": cond_all["maskmem_features"][[c for c, _, _ in seqs]],
            "maskmem_pos_enc": [p[[c for c, _, _ in seqs]] for p in cond_all["maskmem_pos_enc"]],
            "obj_ptr": cond_all["obj_ptr"][[c for c, _, _ in seqs]]}
    window = max(model.num_maskmem - 1, model.max_obj_ptrs_in_encoder - 1)
    history: dict[int, dict] = {}
    total = max(length) - 1
    for s in range(1, max(length)):
        n = sum(1 for m in length if m > s)
        parts = []
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            frames = [k + d * s for _, k, d in seqs[lo:hi]]
            output_dict = {
                "cond_frame_outputs": {0: _slice(cond, lo, hi)},
                "non_cond_frame_outputs": {t: _slice(history[t], lo, hi)
                                           for t in range(max(1, s - window), s)},
            }
            feats, pos, sizes = _vision_inputs(backend, enc, frames)
            out = model.track_step(
                frame_idx=s, is_init_cond_frame=False, current_vision_feats=feats,
                current_vision_pos_embeds=pos, feat_sizes=sizes, point_inputs=None,
                mask_inputs=None, output_dict=output_dict, num_frames=T, track_in_reverse=False,
                run_mem_encoder=True, prev_sam_mask_logits=None)
            out["maskmem_features"] = out["maskmem_features"].to(torch.bfloat16)
            parts.append({k: out[k] for k in _MEMORY_KEYS})
            on_frames([c for c, _, _ in seqs[lo:hi]], frames, out["pred_masks"].float())
        history[s] = _cat_rows(parts)
        history.pop(s - window, None)
        if progress is not None:
            progress(s / total)


def _slice(out: dict, lo: int, hi: int) -> dict:
    return {"maskmem_features": out["maskmem_features"][lo:hi],
            "maskmem_pos_enc": [p[lo:hi] for p in out["maskmem_pos_enc"]],
            "obj_ptr": out["obj_ptr"][lo:hi]}


def low_res_to_outputs(low_res: torch.Tensor, video_size: tuple[int, int],
                       logit_size: tuple[int, int], logit_clip: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, s, s) sam2 logits → ((n, H, W) bool masks at the clip's resolution, as sam2 thresholds
    them: bilinear upsampling, > 0; (n, h, w) float32 logits clipped to ±logit_clip and
    area-resized to ``logit_size``)."""
    x = low_res.float()
    masks = F.interpolate(x, size=video_size, mode="bilinear", align_corners=False)[:, 0] > 0
    small = F.interpolate(x.clamp(-logit_clip, logit_clip), size=logit_size, mode="bilinear",
                          align_corners=False, antialias=True)[:, 0]
    return masks.cpu().numpy(), small.cpu().numpy().astype(np.float32)

