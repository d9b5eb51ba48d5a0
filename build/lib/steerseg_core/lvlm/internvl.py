"""InternVL3 (``InternVLForConditionalGeneration``, e.g. OpenGVLab/InternVL3-8B-hf).

Each frame is one tile: the processor stretches it to the ViT's input size (448 px; no dynamic
tiling, ``crop_to_patches=False``), InternViT makes (448/14)² patches and a 0.5 pixel shuffle folds
2×2 of them into one LLM token → a 16×16 grid per frame, covering the whole frame (no padding).

Token layout (transformers ``models/internvl``): ``InternVLModel.get_image_features`` drops the CLS
token, reshapes the patches to (rows, cols), ``pixel_shuffle`` groups 2 columns then 2 rows and
swaps back, so LLM token k of a tile is cell (k // n, k % n) in row-major order; the processor
writes ``<img>`` + n² × ``<IMG_CONTEXT>`` + ``</img>`` per tile (``replace_image_token``) and for a
video ``FrameK: <img>…</img>`` per frame joined by newlines (``replace_video_token``); the model
scatters the tiles' features in order into the ``<IMG_CONTEXT>`` positions (``masked_scatter``).

Video branch: InternVL has no temporal merging and no 2× spatial downsampling for video — every
frame is a full tile with the same n×n grid. We keep that (the model was trained on 448-px tiles),
so S_vid has shape (T_v, n, n), the same side length as S_frm.
"""

from __future__ import annotations

import numpy as np
import torch

from ..types import TokenGeometry
from .base import HFAdapter, PreparedInputs


class InternVLAdapter(HFAdapter):
    family = "internvl"
    frames_per_temporal_slot = 1

    # -- geometry ------------------------------------------------------------------------------
    @property
    def tile_size(self) -> int:
        size = self.model.config.vision_config.image_size
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    @property
    def tokens_per_side(self) -> int:
        """image_size / patch_size * downsample_ratio (448 / 14 * 0.5 = 16 for InternVL3)."""
        patch = self.model.config.vision_config.patch_size
        patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        return int(self.tile_size // patch * self.model.config.downsample_ratio)

    @property
    def image_token_id(self) -> int:
        return int(self.model.config.image_token_id)

    # -- prompt structure -----------------------------------------------------------------------
    def _vision_start_id(self) -> int:
        return int(self.processor.start_image_token_id)

    def _soft_insert_position(self, input_ids: torch.Tensor) -> int:
        """Before the first ``<img>``; for a video before the ``Frame1: `` label that precedes it."""
        at = super()._soft_insert_position(input_ids)
        label = self.tokenizer("Frame1: ", add_special_tokens=False)["input_ids"]
        k = len(label)
        if k and at >= k and input_ids[0, at - k:at].tolist() == label:
            at -= k
        return at

    def structural_token_ids(self) -> list[int]:
        ids = set(super().structural_token_ids())
        ids.update({self.image_token_id, int(self.processor.start_image_token_id),
                    int(self.processor.end_image_token_id)})
        video = self.tokenizer.convert_tokens_to_ids(self.processor.video_token)
        if isinstance(video, int) and video != self.tokenizer.unk_token_id:
            ids.add(video)
        return sorted(ids)



    def _positions(self, mi: dict[str, torch.Tensor], expected: int) -> torch.Tensor:
        rows = mi["input_ids"] == self.image_token_id
        if not bool((rows == rows[0:1]).all()):
            raise RuntimeError("visual tokens differ between batch rows")
        pos = rows[0].nonzero().squeeze(1)
        if pos.numel() != expected:
            raise RuntimeError(f"InternVL prompt has {pos.numel()} image tokens, expected {expected}")
        return pos

    def _check_processor(self) -> None:
        n = self.tokens_per_side
        if int(self.processor.image_seq_length) != n * n:
            raise RuntimeError(f"processor image_seq_length={self.processor.image_seq_length} does not match "
                               f"the model's {n}×{n} token grid per tile")

    # -- inputs ---------------------------------------------------------------------------------
    def build_frames(self, frames: np.ndarray, text: str, max_tokens: int) -> PreparedInputs:
        """One tile per frame (stretched to the ViT size); ``max_tokens`` does not apply: the grid
        is fixed by the backbone (16×16 for InternVL3)."""
        self._check_processor()
        h, w = frames.shape[1:3]
        n, s = self.tokens_per_side, self.tile_size
        prompt = self._chat("image", text)
        batch = self.processor(text=[prompt] * len(frames), images=list(frames), crop_to_patches=False,
                               size={"height": s, "width": s}, return_tensors="pt")
        mi = self._to_device(batch)
        if mi["pixel_values"].shape[0] != len(frames):
            raise RuntimeError("InternVL processor split a frame into several tiles")
        pos = self._positions(mi, n * n)
        return PreparedInputs(mi, pos, (1, n, n), TokenGeometry(grid=(n, n), frame_size=(h, w)))

    def build_video(self, frames: np.ndarray, text: str, max_tokens: int, fps: float) -> PreparedInputs:
        """All frames as one video: one full tile per frame → grid (T, n, n) (see module docstring)."""
        self._check_processor()
        h, w = frames.shape[1:3]
        t, n, s = len(frames), self.tokens_per_side, self.tile_size
        prompt = self._chat("video", text)
        batch = self.processor(text=[prompt], videos=[np.asarray(frames)], size={"height": s, "width": s},
                               do_sample_frames=False, return_tensors="pt")
        mi = self._to_device(batch)
        pos = self._positions(mi, t * n * n)
        return PreparedInputs(mi, pos, (t, n, n), TokenGeometry(grid=(n, n), frame_size=(h, w)))
