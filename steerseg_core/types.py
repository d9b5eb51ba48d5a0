"""The small frozen dataclasses that flow through SteerSeg: clip → grounding → tracklets → result.

Every stage takes and returns these, so the UI, the CLI, evaluation and export all read the same
objects and none of them recomputes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Clip:
    """A decoded video: RGB uint8 frames (T, H, W, 3), frame rate and where it came from."""

    frames: np.ndarray
    fps: float
    source: str
    frame_names: tuple[str, ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    def names(self) -> tuple[str, ...]:
        """Output file stems per frame: the source names for frame folders, else 00000, 00001, ..."""
        if len(self.frame_names) == self.num_frames:
            return self.frame_names
        return tuple(f"{i:05d}" for i in range(self.num_frames))


@dataclass(frozen=True)
class TokenGeometry:
    """How a visual token grid covers the original frame.

    ``grid`` is (rows, cols) of the map; ``content_box`` (y0, x0, y1, x1), in grid-cell units, is the
    part of the grid that shows the image (the whole grid unless the backbone letterboxes/pads).
    ``frame_size`` is the original (H, W).
    """

    grid: tuple[int, int]
    frame_size: tuple[int, int]
    content_box: tuple[float, float, float, float] | None = None

    def cell_to_pixel(self, row: float, col: float) -> tuple[float, float]:
        """Centre of token cell (row, col) in original-frame pixel coordinates (x, y)."""
        gh, gw = self.grid
        y0, x0, y1, x1 = self.content_box or (0.0, 0.0, float(gh), float(gw))
        h, w = self.frame_size
        x = (col + 0.5 - x0) / (x1 - x0) * w
        y = (row + 0.5 - y0) / (y1 - y0) * h
        return float(min(max(x, 0.0), w - 1)), float(min(max(y, 0.0), h - 1))


@dataclass(frozen=True)
class CoTResult:
    """The chain-of-thought step: raw answer, parsed reasoning and attributes, and parse notes."""

    raw: str
    reasoning: str
    attributes: tuple[str, ...]
    issues: tuple[str, ...] = ()
    # The attributes as the model (or the user) wrote them: what the query prompt receives. The
    # parsed tuple is for display and statistics ("black and white" stays one phrase here).
    attributes_written: str = ""

    @property
    def attributes_text(self) -> str:
        return self.attributes_written or ", ".join(self.attributes)


@dataclass(frozen=True)
class GroundingResult:
    """What the steered LVLM says and where it looked.

    s_frm: (T_f, H_v, W_v) frame-modality maps in [0, 1] at ``keyframes``;
    s_vid: (T_v, H_v', W_v') video-modality maps in [0, 1] at ``video_frames`` (H_v' ≈ H_v / 2).
    layer_summaries: per rollout layer, the mean attention mass the query gives to visual tokens
    (frame branch, video branch) — for the UI's "where did it look, layer by layer" view.
    """

    expression: str
    cot: CoTResult | None
    query_word: str
    query_words_frames: tuple[str, ...]
    keyframes: np.ndarray
    video_frames: np.ndarray
    s_frm: np.ndarray
    s_vid: np.ndarray
    frame_geometry: TokenGeometry
    video_geometry: TokenGeometry
    use_cot: bool
    use_soft_prompts: bool
    backbone: str
    layers: tuple[int, int]
    layer_summaries: dict[str, list[float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    soft_prompts_label: str = "none"
    # Where the soft prompts came from (result.json's "soft_prompts"): source "none" | "seed" | a
    # path or hub id, trained, steps, trained_with_cot.
    soft_prompts_info: dict[str, Any] = field(default_factory=lambda: {
        "source": "none", "trained": False, "steps": None, "trained_with_cot": None})
    # Fig. 4b: per CoT attribute, the share of the query row's attribute-token mass it receives
    # ({"attribute", "share"}; frame branch averaged over keyframes, video branch apart), and how
    # the row splits between visual tokens, text and soft prompts ({"frame": {...}, "video": {...}}).
    # Where the attributes came from: "cot" (the model's CoT step), "user" (edited, counterfactual
    # attributes: the CoT step did not run again) or None (no attributes step).
    attributes_source: str | None = None
    attribute_attention: tuple[dict[str, Any], ...] = ()
    attribute_attention_video: tuple[dict[str, Any], ...] = ()
    row_split: dict[str, dict[str, float]] = field(default_factory=dict)
    # Things the user should know about this grounding (e.g. a soft-prompt / prompt-form mismatch).
    warnings: tuple[str, ...] = ()

    @property
    def reasoning(self) -> str:
        return self.cot.reasoning if self.cot else ""

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.cot.attributes if self.cot else ()


@dataclass(frozen=True)
class Tracklet:
    """One candidate: the keyframe point it started from and its masks on every frame.

    masks: (T, H, W) bool at original resolution. logits: (T, h, w) float32 SAM2 mask logits for
    *every* clip frame, clipped to ±logit_clip and area-resized to a small grid with the frame's
    aspect ratio (long side ``segment.LOGIT_SIDE`` = 64); None for tracklets built without SAM2,
    which scoring then reads from their masks (±logit_clip). Scores are filled by the scorer;
    ``clicks`` are the (frame, x, y, label) corrections a refinement added.
    """

    source_keyframe: int
    point_xy: tuple[float, float]
    masks: np.ndarray
    logits: np.ndarray | None = None
    s_frm: float = float("nan")
    s_vid: float = float("nan")
    s: float = float("nan")
    clicks: tuple[tuple[int, float, float, int], ...] = ()


@dataclass(frozen=True)
class SegmentationResult:
    """The whole answer: grounding, every candidate with its scores, the chosen one, timings."""

    clip_source: str
    expression: str
    grounding: GroundingResult
    tracklets: tuple[Tracklet, ...]
    chosen: int
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    # True when a random-weight test model produced it (the tools label such outputs).
    tiny_models: bool = False
    # On-demand diagnostics, written as top-level keys of result.json: "evaluation" (ground-truth
    # mode), "readouts" (the readout comparison).
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def masks(self) -> np.ndarray:
        """(T, H, W) bool masks of the chosen tracklet, original resolution."""
        return self.tracklets[self.chosen].masks
