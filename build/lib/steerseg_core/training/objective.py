"""The training objective: the query token's normalised rollout map against the GT mask.

For each branch (frame: T_f keyframes, one sequence each; video: T_v frames in one sequence), the
query token q is generated under inference mode with the current soft prompts, then a forward pass
over prompt + q with grad gives the rollout row over the visual grid (``Grounder.branch_rollout``).
Maps are min-max normalised exactly as at inference (per keyframe; over the whole video) and
compared with the GT mask area-averaged onto the token grid (a soft target in [0, 1]):
loss = BCE + Dice. Keyframes where the object is absent are left out of the frame-branch loss (the
normalised map always has a maximum of 1, so it cannot match an empty target); the video map is
normalised jointly, so absent frames stay in as zero targets.

``accumulate`` backpropagates keyframe chunk by chunk (``frame_batch_size`` sequences at a time),
so memory is bounded by one chunk whatever T_f is. Losses are computed in float32 outside autocast
(BCE is not autocast-safe).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import prompts, rollout
from ..grounding import Grounder
from ..types import TokenGeometry
from .data import TrainSample

EPS = 1e-6


# -- targets and losses (pure tensor code) ----------------------------------------------------

def mask_to_grid(masks: np.ndarray | torch.Tensor, geometry: TokenGeometry) -> torch.Tensor:
    """(T, H, W) masks → (T, rows, cols) float32: the fraction of each token cell's pixels that are
    object. Letterboxed grids (``content_box``) get zeros outside the image."""
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks).float()
    rows, cols = geometry.grid
    if geometry.content_box is None:
        return F.interpolate(m[:, None], size=(rows, cols), mode="area")[:, 0]
    y0, x0, y1, x1 = geometry.content_box
    # render at 4× the grid, place the image inside its box, then average down to the grid; the box
    # may extend past the grid (LLaVA-OV's base grid stops short of the image edge): crop it back.
    s = 4
    ty0, tx0 = round(y0 * s), round(x0 * s)
    ty1, tx1 = max(ty0 + 1, round(y1 * s)), max(tx0 + 1, round(x1 * s))
    canvas = torch.zeros(m.shape[0], max(rows * s, ty1), max(cols * s, tx1))
    canvas[:, ty0:ty1, tx0:tx1] = F.interpolate(m[:, None], size=(ty1 - ty0, tx1 - tx0), mode="area")[:, 0]
    return F.avg_pool2d(canvas[:, None, : rows * s, : cols * s], s)[:, 0]


def slot_targets(frame_targets: torch.Tensor, slots: int, per_slot: int) -> torch.Tensor:
    """(T, h, w) per-frame targets → (slots, h, w): the mean over the frames each temporal slot
    merges (``per_slot`` consecutive frames; the last frame repeats when T is short)."""
    t = frame_targets.shape[0]
    idx = torch.arange(slots * per_slot).clamp_max(t - 1)
    return frame_targets[idx].view(slots, per_slot, *frame_targets.shape[1:]).mean(dim=1)


def bce_dice(pred: torch.Tensor, target: torch.Tensor, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-map BCE and soft Dice loss over the last ``dims`` dims. ``pred`` in [0, 1]."""
    p = pred.float().flatten(-dims)
    t = target.float().flatten(-dims)
    pc = p.clamp(EPS, 1 - EPS)
    bce = -(t * pc.log() + (1 - t) * (1 - pc).log()).mean(dim=-1)
    dice = 1 - (2 * (p * t).sum(-1) + 1.0) / (p.sum(-1) + t.sum(-1) + 1.0)
    return bce, dice


def pearson(a: torch.Tensor, b: torch.Tensor, dims: int) -> torch.Tensor:
    """Pearson correlation per map over the last ``dims`` dims; 0 where either side is constant."""
    x = a.float().flatten(-dims)
    y = b.float().flatten(-dims)
    x = x - x.mean(dim=-1, keepdim=True)
    y = y - y.mean(dim=-1, keepdim=True)
    den = x.norm(dim=-1) * y.norm(dim=-1)
    return torch.where(den > 1e-12, (x * y).sum(-1) / den.clamp_min(1e-12), torch.zeros_like(den))


# -- gradient checkpointing of the frozen LVLM ------------------------------------------------

def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Non-reentrant activation checkpointing for the decoder layers (no input-grad hook needed:
    gradients enter through the soft-prompt embeddings)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable({"use_reentrant": False})
    else:  # older transformers
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "disable_input_require_grads"):
        with suppress(AttributeError):  # no input-grad hook was registered
            model.disable_input_require_grads()


@contextmanager
def checkpointing_active(layers, enabled: bool) -> Iterator[None]:
    """transformers checkpoints a layer only when ``layer.training``; flip that flag on the
    decoder-layer modules alone (their attention/MLP submodules stay in eval mode, so dropout is
    still off) for the differentiable forward, and restore it afterwards."""
    if not enabled:
        yield
        return
    prev = [layer.training for layer in layers]
    for layer in layers:
        layer.training = True
    try:
        yield
    finally:
        for layer, p in zip(layers, prev, strict=True):
            layer.training = p


# -- the per-sample objective -----------------------------------------------------------------

@dataclass
class BranchResult:
    """One branch on one sample: scalar floats (already backpropagated if with grad), plus the
    normalised maps and targets for display."""

    loss: float
    bce: float
    dice: float
    corr: float
    maps: np.ndarray
    targets: np.ndarray
    finite: bool


class Objective:
    """BCE + Dice of the normalised query-token rollout vs the mask, per branch."""

    def __init__(self, grounder: Grounder, t_frame: int = 16, t_video: int = 8, frame_batch_size: int = 4,
                 gradient_checkpointing: bool = False, autocast: bool = True,
                 branches: tuple[str, ...] = ("frame", "video")) -> None:
        self.grounder = grounder
        self.adapter = grounder.adapter
        self.t_frame = t_frame
        self.t_video = t_video
        self.frame_batch_size = max(1, frame_batch_size)
        self.branches = tuple(branches)
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:
            enable_gradient_checkpointing(self.adapter.model)
        self.autocast = autocast and self.adapter.device.type == "cuda"

    @property
    def max_tokens(self) -> int:
        return self.grounder.config.frame_max_tokens

    def _autocast(self):
        if self.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _maps(self, prepared, soft: torch.Tensor, grad: bool) -> torch.Tensor:
        """Raw rollout maps (B, t, h, w) for the first generated token; grad only w.r.t. ``soft``."""
        spliced = self.adapter.splice_placeholders(prepared, soft.shape[0])
        with self._autocast():
            tokens, _ = self.adapter.generate(spliced, 1, soft.detach())
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx, self._autocast(), checkpointing_active(self.adapter.decoder_layers(), grad and self.gradient_checkpointing):
            out = self.grounder.branch_rollout(prepared, soft, tokens=tokens[:, :1].clone())
        return out.maps

    def frame_branch(self, sample: TrainSample, text: str, soft: torch.Tensor, scale: float,
                     grad: bool) -> BranchResult:
        idx = branch_frame_indices(len(sample.frames), self.t_frame)
        frames, masks = sample.frames[idx], sample.masks[idx]
        keep = masks.reshape(len(idx), -1).any(axis=1)
        n_keep = max(1, int(keep.sum()))
        totals = {"loss": 0.0, "bce": 0.0, "dice": 0.0}
        finite = True
        all_maps, all_targets = [], []
        for start in range(0, len(idx), self.frame_batch_size):
            sl = slice(start, start + self.frame_batch_size)
            prepared = self.adapter.build_frames(frames[sl], text, self.max_tokens)
            maps = self._maps(prepared, soft, grad)[:, 0]
            pred = rollout.normalise_maps(maps.float(), 2)
            target = mask_to_grid(masks[sl], prepared.geometry).to(pred.device)
            w = torch.as_tensor(keep[sl], dtype=torch.float32, device=pred.device)
            with torch.autocast(pred.device.type, enabled=False):
                bce, dice = bce_dice(pred, target, 2)
                loss = ((bce + dice) * w).sum() / n_keep
            finite = finite and bool(torch.isfinite(loss))
            if grad and finite and loss.requires_grad:
                (loss * scale).backward()
            totals["loss"] += float(loss.detach())
            totals["bce"] += float((bce.detach() * w).sum() / n_keep)
            totals["dice"] += float((dice.detach() * w).sum() / n_keep)
            all_maps.append(pred.detach().cpu())
            all_targets.append(target.cpu())
        maps_t, targets_t = torch.cat(all_maps), torch.cat(all_targets)
        corr = float(pearson(maps_t, targets_t, 3))
        return BranchResult(totals["loss"], totals["bce"], totals["dice"], corr, maps_t.numpy(),
                            targets_t.numpy(), finite)

    def video_branch(self, sample: TrainSample, text: str, soft: torch.Tensor, scale: float,
                     grad: bool) -> BranchResult:
        idx = branch_frame_indices(len(sample.frames), self.t_video)
        frames, masks = sample.frames[idx], sample.masks[idx]
        fps = _effective_fps(sample, len(idx))
        prepared = self.adapter.build_video(frames, text, self.max_tokens, fps)
        maps = self._maps(prepared, soft, grad)  # (1, t, h, w)
        pred = rollout.normalise_maps(maps.float(), 3)[0]
        per_slot = int(getattr(self.adapter, "frames_per_temporal_slot", 1))
        frame_t = mask_to_grid(masks, prepared.geometry)
        target = slot_targets(frame_t, pred.shape[0], per_slot).to(pred.device)
        with torch.autocast(pred.device.type, enabled=False):
            bce, dice = bce_dice(pred, target, 3)
            loss = bce + dice
        finite = bool(torch.isfinite(loss))
        if grad and finite and loss.requires_grad:
            (loss * scale).backward()
        corr = float(pearson(pred.detach(), target, 3))
        return BranchResult(float(loss.detach()), float(bce.detach()), float(dice.detach()), corr,
                            pred.detach().cpu().numpy(), target.cpu().numpy(), finite)

    def run(self, sample: TrainSample, soft_prompts, text: str | None = None, scale: float = 1.0,
            grad: bool = True) -> dict[str, BranchResult]:
        """Both branches on one sample; with ``grad`` their losses (× ``scale``) are backpropagated
        into the soft prompts. ``text`` defaults to the no-CoT query prompt."""
        text = text if text is not None else prompts.query_prompt(sample.expression, None)
        out = {}
        if "frame" in self.branches:
            out["frame"] = self.frame_branch(sample, text, soft_prompts.frame, scale / len(self.branches), grad)
        if "video" in self.branches:
            out["video"] = self.video_branch(sample, text, soft_prompts.video, scale / len(self.branches), grad)
        return out


def summarise(results: dict[str, BranchResult]) -> dict[str, float]:
    """Flat metrics of one sample: loss/bce/dice/corr averaged over branches, plus per branch."""
    out: dict[str, float] = {}
    for key in ("loss", "bce", "dice", "corr"):
        out[key] = float(np.mean([getattr(r, key) for r in results.values()]))
    for name, r in results.items():
        out[f"loss_{name}"] = r.loss
        out[f"corr_{name}"] = r.corr
    return out


def branch_frame_indices(n: int, k: int) -> np.ndarray:
    """Which of a sample's n input frames a branch with k frames uses (uniform; all if k >= n)."""
    from ..video import sample_indices

    return sample_indices(n, min(k, n)) if k < n else np.arange(n)


def _effective_fps(sample: TrainSample, k: int) -> float:
    """Frame rate of k frames spread over the sampled span (as the grounder computes it)."""
    span = (int(sample.indices.max()) - int(sample.indices.min()) + 1) if len(sample.indices) else 1
    duration = max(span, 1) / max(sample.fps, 1e-6)
    return k / duration
