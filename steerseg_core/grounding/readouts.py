"""Readout comparison (the paper's Fig. 1b) on the user's clip: how each way of reading the frozen
model's attention places the target on one keyframe.

Five maps over the same keyframe's visual tokens, each min-max normalised, with its argmax point:

* ``raw``          — the plain query, no soft prompts, no CoT (equals a ``--no-cot --no-soft-prompts``
                     run's S_frm at that keyframe);
* ``contrast``     — the raw rollout row of the query minus that of a neutral expression, negative
                     part dropped: the contrast-based readout DecAF (ICLR 2026) builds on, which cancels
                     the attention any question draws regardless of what it refers to;
* ``soft_prompts`` — soft prompts, no CoT;
* ``cot``          — the CoT attributes in the query, no soft prompts;
* ``both``         — CoT attributes and soft prompts (SteerSeg).

Maps that need soft prompts are absent (None) when the run has none loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..types import Clip, CoTResult, TokenGeometry
from . import prompts, rollout

READOUTS = ("raw", "contrast", "soft_prompts", "cot", "both")
READOUT_TITLES = {"raw": "raw attention", "contrast": "contrast (query − neutral)",
                  "soft_prompts": "soft prompts only", "cot": "CoT only", "both": "CoT + soft prompts"}
NEUTRAL_EXPRESSION = "the object"


@dataclass(frozen=True)
class ReadoutComparison:
    """The five normalised (h, w) maps of one clip frame (None where unavailable) and their argmax
    points (x, y) in clip pixels."""

    frame: int
    maps: dict[str, np.ndarray | None]
    points: dict[str, tuple[float, float] | None]
    geometry: TokenGeometry
    neutral_expression: str = NEUTRAL_EXPRESSION
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """result.json's ``"readouts"``: the frame, the neutral expression and the five points."""
        return {"frame": self.frame, "neutral_expression": self.neutral_expression,
                "points": {k: (list(v) if v is not None else None) for k, v in self.points.items()},
                "notes": list(self.notes)}


def _argmax_xy(heat: np.ndarray, geometry: TokenGeometry) -> tuple[float, float]:
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return geometry.cell_to_pixel(float(row), float(col))


def compare_readouts(grounder, clip: Clip, expression: str, frame: int,
                     cot: CoTResult | None = None) -> ReadoutComparison:
    """The five readouts at clip frame ``frame``. ``cot`` is the run's CoT answer (generated here
    once when not given)."""
    if not 0 <= frame < clip.num_frames:
        raise ValueError(f"frame {frame} is outside the clip (0..{clip.num_frames - 1})")
    if cot is None:
        cot = grounder.cot(clip, expression)
    image = clip.frames[frame:frame + 1]
    soft = grounder.soft_prompts.frame if grounder.soft_prompts is not None else None

    def raw_map(text: str, prompt_soft: torch.Tensor | None) -> tuple[torch.Tensor, TokenGeometry]:
        maps, _, geometry, _ = grounder.frame_maps(image, text, prompt_soft)
        return maps[0], geometry

    plain = prompts.query_prompt(expression, None)
    with_attrs = prompts.query_prompt(expression, cot.attributes_text)
    raw, geometry = raw_map(plain, None)
    neutral, _ = raw_map(prompts.query_prompt(NEUTRAL_EXPRESSION, None), None)
    unnormalised: dict[str, torch.Tensor | None] = {
        "raw": raw, "contrast": (raw - neutral).clamp_min(0.0),
        "soft_prompts": raw_map(plain, soft)[0] if soft is not None else None,
        "cot": raw_map(with_attrs, None)[0],
        "both": raw_map(with_attrs, soft)[0] if soft is not None else None,
    }
    notes = () if soft is not None else ("no soft prompts loaded: the soft-prompt readouts are absent",)
    maps = {k: (rollout.normalise_maps(v, 2).numpy().astype(np.float32) if v is not None else None)
            for k, v in unnormalised.items()}
    points = {k: (_argmax_xy(m, geometry) if m is not None else None) for k, m in maps.items()}
    return ReadoutComparison(frame, maps, points, geometry, NEUTRAL_EXPRESSION, notes)
