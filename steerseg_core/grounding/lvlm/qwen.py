"""Qwen2-VL and Qwen2.5-VL: the first-class backbones of SteerSeg.

Both tokenise 14-px patches and merge 2×2 of them into one LLM token (28 px); videos also merge 2
frames per temporal patch. We resize each frame ourselves to an exact multiple of 28 px chosen so
the token grid has even sides; the processor is told that exact pixel budget so it leaves the size
alone. The grid→pixel mapping is then a pure scale (no padding), and the video branch runs at
exactly half the frame branch's grid.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from ...types import TokenGeometry
from .base import HFAdapter, PreparedInputs

PX_PER_TOKEN = 28


def even_grid(height: int, width: int, max_tokens: int) -> tuple[int, int]:
    """Token grid (rows, cols), both even and ≥ 2, near the frame's aspect, rows·cols ≤ max_tokens.

    Native resolution (one token per 28 px) when that fits the budget, otherwise scaled down.
    """
    if max_tokens < 4:
        raise ValueError("frame token budget must be at least 4")
    scale = min(1.0, math.sqrt(max_tokens * PX_PER_TOKEN**2 / float(height * width)))
    rows = max(2, 2 * round(height * scale / (2 * PX_PER_TOKEN)))
    cols = max(2, 2 * round(width * scale / (2 * PX_PER_TOKEN)))
    while rows * cols > max_tokens:
        if rows >= cols and rows > 2:
            rows -= 2
        elif cols > 2:
            cols -= 2
        else:
            break
    return rows, cols


def _resize(frames: np.ndarray, rows: int, cols: int) -> list[Image.Image]:
    size = (cols * PX_PER_TOKEN, rows * PX_PER_TOKEN)
    return [Image.fromarray(f).resize(size, Image.BICUBIC) for f in frames]


class QwenVLAdapter(HFAdapter):
    family = "qwen"

    def _vision_start_id(self) -> int:
        return int(self.model.config.vision_start_token_id)



    def _visual(self, mi: dict[str, torch.Tensor], token_id: int) -> torch.Tensor:
        rows = mi["input_ids"] == token_id
        pos = rows[0].nonzero().squeeze(1)
        if not bool((rows == rows[0:1]).all()):
            raise RuntimeError("visual tokens differ between batch rows")
        return pos

    def build_frames(self, frames: np.ndarray, text: str, max_tokens: int) -> PreparedInputs:
        h, w = frames.shape[1:3]
        rows, cols = even_grid(h, w, max_tokens)
        images = _resize(frames, rows, cols)
        prompt = self._chat("image", text)
        px = rows * cols * PX_PER_TOKEN**2
        batch = self.processor(text=[prompt] * len(images), images=images, return_tensors="pt",
                               size={"shortest_edge": px, "longest_edge": px})
        mi = self._to_device(batch)
        t, gh, gw = (int(x) for x in batch["image_grid_thw"][0])
        merge = self.model.config.vision_config.spatial_merge_size
        grid = (1, gh // merge, gw // merge)
        if grid[1:] != (rows, cols):
            raise RuntimeError(f"processor produced a {grid[1:]} token grid, expected {(rows, cols)}")
        pos = self._visual(mi, int(self.model.config.image_token_id))
        geo = TokenGeometry(grid=(rows, cols), frame_size=(h, w))
        return PreparedInputs(mi, pos, grid, geo)

    def build_video(self, frames: np.ndarray, text: str, max_tokens: int, fps: float) -> PreparedInputs:
        h, w = frames.shape[1:3]
        rows, cols = even_grid(h, w, max_tokens)
        vrows, vcols = rows // 2, cols // 2
        images = _resize(frames, vrows, vcols)
        video = np.stack([np.asarray(im) for im in images])
        prompt = self._chat("video", text)
        px = vrows * vcols * PX_PER_TOKEN**2
        # The frame rate reaches the model (Qwen2.5-VL's time positions, second_per_grid_ts) only
        # through the video's metadata; a bare ``fps=`` is a sampling option, ignored here, and the
        # processor then assumes 24 fps.
        meta = {"fps": max(fps, 1e-3), "total_num_frames": len(frames), "frames_indices": list(range(len(frames)))}
        batch = self.processor(text=[prompt], videos=[video], return_tensors="pt",
                               size={"shortest_edge": px, "longest_edge": px}, do_sample_frames=False,
                               video_metadata=[meta])
        mi = self._to_device(batch)
        t, gh, gw = (int(x) for x in batch["video_grid_thw"][0])
        merge = self.model.config.vision_config.spatial_merge_size
        grid = (t, gh // merge, gw // merge)
        pos = self._visual(mi, int(self.model.config.video_token_id))
        if pos.numel() != grid[0] * grid[1] * grid[2]:
            raise RuntimeError("video token count does not match its grid")
        geo = TokenGeometry(grid=(grid[1], grid[2]), frame_size=(h, w))
        return PreparedInputs(mi, pos, grid, geo)

    @property
    def frames_per_temporal_slot(self) -> int:
        return int(self.model.config.vision_config.temporal_patch_size)
