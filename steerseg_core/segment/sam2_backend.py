"""SAM2 at run time: encode a clip's frames once and hand out sam2 inference states built from
those in-memory features.

Why it exists: sam2's own ``init_state`` reads JPEGs from a folder and keeps the encoder output of
only the most recent frame, so every candidate tracklet would re-encode the whole clip. Here a
clip is encoded once (``Sam2Backend.encode``), kept for the last clip seen, and shared by the
batched candidate tracker (``propagation.py``) and by standard sam2 inference states
(``Sam2Backend.init_state``, used for click refinement). Building the model from a size name,
a checkpoint or a folder lives apart, in ``build_sam.py``.
"""


from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..types import Clip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Keep the encoded clip on the accelerator while it uses at most this share of free memory.
DEVICE_CACHE_SHARE = 0.4


# --------------------------------------------------------------------------------------------
# The encoded clip


@dataclass
class EncodedClip:
    """Image-encoder output for every frame of one clip.

    ``feats[level]`` is (T, C, h, w) per feature level (sam2's ``backbone_fpn``, high-res levels
    already projected by the mask decoder's conv_s0/conv_s1, as ``forward_image`` returns them);
    ``pos[level]`` is (1, C, h, w) — sam2's positional encoding depends on the size only, so one
    copy serves every frame. Tensors live on ``storage`` (the compute device, or the CPU for
    clips too long to keep there).
    """

    key: str
    num_frames: int
    video_size: tuple[int, int]
    feats: list[torch.Tensor]
    pos: list[torch.Tensor]
    storage: torch.device

    def backbone_out(self, frames: torch.Tensor | list[int], device: torch.device) -> dict:
        """sam2's ``backbone_out`` dict for a batch of (possibly different) frames."""
        idx = torch.as_tensor(frames, dtype=torch.long, device=self.storage)
        fpn = [f.index_select(0, idx).to(device, non_blocking=True) for f in self.feats]
        pos = [p.to(device).expand(len(idx), -1, -1, -1) for p in self.pos]
        return {"backbone_fpn": fpn, "vision_pos_enc": pos}


class _SharedFeatureCache(dict):
    """Stands in for an inference state's ``cached_features``: sam2 looks frames up with
    ``.get(frame_idx, (None, None))``; every frame is answered from the encoded clip, so sam2
    never re-runs the image encoder (and never replaces this object, which it does on a miss)."""

    def __init__(self, enc: EncodedClip, device: torch.device):
        super().__init__()
        self._enc, self._device = enc, device
        self._image = torch.zeros(1, 3, 1, 1, device=device)  # sam2 only expands and ignores it

    def get(self, frame_idx, default=None):  # noqa: D102 - dict protocol
        if not 0 <= int(frame_idx) < self._enc.num_frames:
            return default
        return self._image, self._enc.backbone_out([int(frame_idx)], self._device)


class _LazyImages:
    """``inference_state["images"]``: its length is the clip length; items are only needed on a
    feature-cache miss, which ``_SharedFeatureCache`` rules out — preprocess on demand anyway."""

    def __init__(self, backend: Sam2Backend, frames: np.ndarray):
        self._backend, self._frames = backend, frames

    def __len__(self) -> int:
        return int(self._frames.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._backend.preprocess(self._frames[i : i + 1])[0]


# --------------------------------------------------------------------------------------------
# The backend


class Sam2Backend:
    """A loaded SAM2 video predictor plus what SteerSeg needs around it (device, dtype,
    preprocessing from memory, one encoded clip kept for reuse)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, name: str, *, is_tiny: bool = False):
        self.model = model
        self.device = device
        self.name = name
        # True for a random-weight test model (``steerseg_core.testing``): outputs are meaningless.
        self.is_tiny = is_tiny
        self.image_size = int(model.image_size)
        # frames per image-encoder forward (each frame goes through the encoder exactly once)
        self.encode_batch_size = 4 if device.type == "cuda" else 1
        self._last: EncodedClip | None = None
        if device.type != "cuda":
            # sam2 stores mask memories in bfloat16 expecting CUDA autocast; without autocast the
            # memory attention would mix dtypes ("mat1 and mat2 must have the same dtype").
            model.memory_attention.register_forward_pre_hook(_cast_memories, with_kwargs=True)

    def __repr__(self) -> str:
        return f"Sam2Backend({self.name!r}, device={self.device}, image_size={self.image_size})"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.device.type == "cuda" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast on CUDA (as sam2 is meant to run), nothing elsewhere (fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """inference_mode + autocast: wrap every public entry point that runs the model."""
        with torch.inference_mode(), self.autocast():
            yield

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W, 3) uint8 RGB → (n, 3, S, S) float on the device: resized to the model's square
        input and normalised with the ImageNet mean/std, as sam2's frame loader does."""
        # resize on the GPU when there is one; elsewhere on the CPU (antialiased bicubic is not
        # implemented on every backend)
        work = self.device if self.device.type == "cuda" else torch.device("cpu")
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(work)
        x = x.permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic",
                          align_corners=False, antialias=True).clamp_(0.0, 1.0)
        mean = torch.tensor(IMAGENET_MEAN, device=work).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=work).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def encode(self, clip: Clip, progress: Callable[[float], None] | None = None) -> EncodedClip:
        """Run the image encoder once per frame of ``clip``; reuses the last clip's features
        when called again with the same frames (e.g. a click refinement after the candidates)."""
        key = _fingerprint(clip.frames, self.image_size)
        if self._last is not None and self._last.key == key:
            return self._last
        self._last = None  # free the previous clip first
        with self.running():
            enc = self._encode(clip.frames, key, progress)
        self._last = enc
        return enc

    def clear_cache(self) -> None:
        """Forget the encoded clip (frees its memory)."""
        self._last = None

    def _encode(self, frames: np.ndarray, key: str,
                progress: Callable[[float], None] | None) -> EncodedClip:
        n = int(frames.shape[0])
        feats: list[torch.Tensor] | None = None
        pos: list[torch.Tensor] = []
        storage = self.device
        bs = max(1, int(self.encode_batch_size))
        for start in range(0, n, bs):
            out = self.model.forward_image(self.preprocess(frames[start : start + bs]))
            fpn = out["backbone_fpn"][-self.model.num_feature_levels :]
            if feats is None:
                pos = [p[:1].clone() for p in out["vision_pos_enc"][-self.model.num_feature_levels :]]
                per_frame = sum(f[0].numel() * f.element_size() for f in fpn)
                storage = self._storage_for(per_frame * n)
                feats = [torch.empty((n, *f.shape[1:]), dtype=f.dtype, device=storage) for f in fpn]
            for dst, src in zip(feats, fpn, strict=True):
                dst[start : start + src.shape[0]].copy_(src)
            if progress is not None:
                progress(min(start + bs, n) / n)
        assert feats is not None
        return EncodedClip(key=key, num_frames=n, video_size=(int(frames.shape[1]), int(frames.shape[2])),
                           feats=feats, pos=pos, storage=storage)

    def _storage_for(self, nbytes: int) -> torch.device:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if nbytes > DEVICE_CACHE_SHARE * free:
                return torch.device("cpu")
        return self.device

    def init_state(self, clip: Clip) -> dict:
        """A standard sam2 ``SAM2VideoPredictor`` inference state for ``clip``, built from memory.

        Same keys as ``init_state(video_path)`` builds, but frames come from the clip and image
        features from ``encode`` (shared, never recomputed). Use it with the predictor's own API
        (``add_new_points_or_box``, ``add_new_mask``, ``propagate_in_video``) inside ``running()``.
        """
        enc = self.encode(clip)
        return {
            "images": _LazyImages(self, clip.frames),
            "num_frames": enc.num_frames,
            "offload_video_to_cpu": False,
            "offload_state_to_cpu": False,
            "video_height": enc.video_size[0],
            "video_width": enc.video_size[1],
            "device": self.device,
            "storage_device": self.device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": _SharedFeatureCache(enc, self.device),
            "constants": {},
            "obj_id_to_idx": {},
            "obj_idx_to_id": {},
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }


def _cast_memories(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook on ``memory_attention``: memories to the dtype of the current features."""
    curr = kwargs.get("curr", args[0] if args else None)
    dtype = (curr[0] if isinstance(curr, (list, tuple)) else curr).dtype
    for name in ("memory", "memory_pos"):
        value = kwargs.get(name)
        if isinstance(value, torch.Tensor) and value.dtype != dtype:
            kwargs[name] = value.to(dtype)
    if len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dtype != dtype:
        args = (args[0], args[1].to(dtype), *args[2:])
    return args, kwargs


def _fingerprint(frames: np.ndarray, image_size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{frames.shape}|{frames.dtype}|{image_size}".encode())
    h.update(np.ascontiguousarray(frames).data)
    return h.hexdigest()
