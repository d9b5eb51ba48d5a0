"""LLaVA-OneVision (``LlavaOnevisionForConditionalGeneration``, e.g. llava-hf/llava-onevision-qwen2-7b-ov-hf).

Frame branch: each keyframe is one image, processed exactly as the model expects (base image plus
its any-res tiles); the map is read from the *base image* tokens only. Video branch: the T frames
as one video; each frame's features are 2× pooled.

Token layout, from transformers ``models/llava_onevision``:

* Image. ``LlavaOnevisionImageProcessor._get_image_patches`` puts first the whole frame stretched
  to the tower size S (384 px), then the any-res tiles. ``LlavaOnevisionModel.get_image_features``
  runs SigLIP (no CLS; strategy "full" keeps all g×g patches, g = S // patch = 27 — the last
  S - g·patch = 6 px of the stretched frame fall outside the patch grid), projects them, and
  ``pack_image_features`` returns ``cat(base_image_feature, tiles-with-newlines)``: the first g·g
  ``<image>`` tokens of a prompt are the base grid in row-major order, then the unpadded any-res
  grid with one ``image_newline`` per row. The processor writes that many ``<image>`` tokens
  (``_get_number_of_features`` = base + unpadded + newlines).
* Video. ``get_video_features`` projects each frame's g×g grid, ``apply_pooling`` bilinearly resizes
  it to ceil(g/2)² (27 → 14), flattens frame-major / row-major, and appends ONE ``image_newline``
  after all frames; the processor writes T·ceil(g/2)² + 1 ``<video>`` tokens
  (``replace_video_token``). The visual grid is the first T·ceil(g/2)² of them; the newline is skipped.

Geometry: no padding, but the grid covers only g·patch of the S pixels, so ``content_box`` extends
past the grid by S / patch − g cells (scaled by ceil(g/2)/g for the pooled video grid).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..types import TokenGeometry
from .base import HFAdapter, PreparedInputs


class LlavaOneVisionAdapter(HFAdapter):
    family = "llava_onevision"
    frames_per_temporal_slot = 1

    # -- geometry ------------------------------------------------------------------------------
    @property
    def tower_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def patch_size(self) -> int:
        return int(self.model.config.vision_config.patch_size)

    @property
    def base_side(self) -> int:
        """g: tokens per side of the base image (384 // 14 = 27)."""
        return self.tower_size // self.patch_size

    @property
    def video_side(self) -> int:
        """Tokens per side of a pooled video frame (ceil(27 / 2) = 14)."""
        return math.ceil(self.base_side / 2)

    def _geometry(self, side: int, frame_size: tuple[int, int]) -> TokenGeometry:
        """``side``×``side`` cells over g·patch of the S px the frame was stretched to."""
        extent = self.tower_size / self.patch_size * side / self.base_side  # frame size in cells
        box = None if math.isclose(extent, side) else (0.0, 0.0, extent, extent)
        return TokenGeometry(grid=(side, side), frame_size=frame_size, content_box=box)

    # -- prompt structure -----------------------------------------------------------------------
    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    @property
    def video_token_id(self) -> int:
        return int(self.model.config.video_token_id)

    def _vision_start_id(self) -> int:
        return self.image_token_id

    def _soft_insert_position(self, input_ids: torch.Tensor) -> int:
        """Right before the first ``<image>`` / ``<video>`` token (the model has no start marker)."""
        row = input_ids[0]
        hits = ((row == self.image_token_id) | (row == self.video_token_id)).nonzero()
        if hits.numel() == 0:
            raise RuntimeError("no vision block in the prompt to place soft prompts before")
        return int(hits[0])



    @staticmethod
    def _token_positions(mi: dict[str, torch.Tensor], token_id: int) -> torch.Tensor:
        rows = mi["input_ids"] == token_id
        if not bool((rows == rows[0:1]).all()):
            raise RuntimeError("visual tokens differ between batch rows")
        return rows[0].nonzero().squeeze(1)

    def _check_processor(self) -> None:
        if self.processor.vision_feature_select_strategy not in (None, self.model.config.vision_feature_select_strategy):
            raise RuntimeError("processor and model disagree on vision_feature_select_strategy")
        if self.model.config.vision_feature_select_strategy != "full":
            raise RuntimeError("LLaVA-OneVision adapter expects vision_feature_select_strategy='full' (SigLIP, no CLS)")

    # -- inputs ---------------------------------------------------------------------------------
    def build_frames(self, frames: np.ndarray, text: str, max_tokens: int) -> PreparedInputs:
        """One image per frame; the map is the g×g base grid. ``max_tokens`` does not apply: the
        base grid is fixed by the backbone (27×27 for LLaVA-OneVision-7B)."""
        self._check_processor()
        h, w = frames.shape[1:3]
        g, s = self.base_side, self.tower_size
        prompt = self._chat("image", text)
        batch = self.processor(text=[prompt] * len(frames), images=list(frames),
                               size={"height": s, "width": s}, return_tensors="pt")
        mi = self._to_device(batch)
        pos = self._token_positions(mi, self.image_token_id)
        if pos.numel() < g * g or not bool((pos[1:g * g] - pos[:g * g - 1] == 1).all()):
            raise RuntimeError(f"LLaVA-OneVision prompt lacks a contiguous {g}×{g} base image block")
        return PreparedInputs(mi, pos[:g * g], (1, g, g), self._geometry(g, (h, w)))

    def build_video(self, frames: np.ndarray, text: str, max_tokens: int, fps: float) -> PreparedInputs:
        """All frames as one video: grid (T, ceil(g/2), ceil(g/2)); the trailing newline is skipped."""
        self._check_processor()
        h, w = frames.shape[1:3]
        t, v, s = len(frames), self.video_side, self.tower_size
        prompt = self._chat("video", text)
        batch = self.processor(text=[prompt], videos=[np.asarray(frames)], size={"height": s, "width": s},
                               do_sample_frames=False, return_tensors="pt")
        mi = self._to_device(batch)
        pos = self._token_positions(mi, self.video_token_id)
        if pos.numel() != t * v * v + 1:
            raise RuntimeError(f"LLaVA-OneVision prompt has {pos.numel()} video tokens, expected {t * v * v + 1}")
        return PreparedInputs(mi, pos[:-1], (t, v, v), self._geometry(v, (h, w)))
