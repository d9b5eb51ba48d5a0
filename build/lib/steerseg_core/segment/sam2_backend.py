"""SAM2 behind one small object: load it from a size name, a checkpoint or a folder, encode a clip's
frames once, and hand out sam2 inference states built from those in-memory features.

Why it exists: sam2's own ``init_state`` reads JPEGs from a folder and keeps the encoder output of
only the most recent frame, so every candidate tracklet would re-encode the whole clip. Here a
clip is encoded once (``Sam2Backend.encode``), kept for the last clip seen, and shared by the
batched candidate tracker (``propagation.py``) and by standard sam2 inference states
(``Sam2Backend.init_state``, used for click refinement).

Loading never unpickles arbitrary objects: ``.pt`` files go through ``torch.load(weights_only=True)``
and configs may only instantiate classes from the ``sam2`` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ModelLoadError
from ..types import Clip

# size name → (hub repo, checkpoint file in that repo, packaged sam2 config). Facts from the
# official release (facebook/sam2-hiera-*; the sam2 package ships the matching configs).
SIZES: dict[str, tuple[str, str, str]] = {
    "tiny": ("facebook/sam2-hiera-tiny", "sam2_hiera_tiny.pt", "configs/sam2/sam2_hiera_t.yaml"),
    "small": ("facebook/sam2-hiera-small", "sam2_hiera_small.pt", "configs/sam2/sam2_hiera_s.yaml"),
    "base+": ("facebook/sam2-hiera-base-plus", "sam2_hiera_base_plus.pt",
              "configs/sam2/sam2_hiera_b+.yaml"),
    "large": ("facebook/sam2-hiera-large", "sam2_hiera_large.pt", "configs/sam2/sam2_hiera_l.yaml"),
}
SIZES_21: dict[str, tuple[str, str, str]] = {
    name: (repo.replace("sam2-", "sam2.1-"), ckpt.replace("sam2_", "sam2.1_"),
           cfg.replace("sam2/sam2_", "sam2.1/sam2.1_"))
    for name, (repo, ckpt, cfg) in SIZES.items()
}
ALIASES = {"t": "tiny", "s": "small", "b+": "base+", "b": "base+", "base": "base+",
           "base_plus": "base+", "base-plus": "base+", "l": "large"}
# (patch-embed width, number of Hiera blocks) → size: how a bare checkpoint reveals its config.
_TRUNK_SHAPES = {(96, 12): "tiny", (96, 16): "small", (112, 24): "base+", (144, 48): "large"}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
CONFIG_NAMES = ("config.yaml", "config.yml", "config.json")

# What sam2's build_sam2_video_predictor sets on top of a config (facts from sam2 1.1.0), except
# hole filling, which needs sam2's CUDA extension (not built here): fill_hole_area stays 0.
PREDICTOR_OVERRIDES: dict[str, Any] = {
    "_target_": "sam2.sam2_video_predictor.SAM2VideoPredictor",
    "binarize_mask_from_pts_for_mem_enc": True,
    "fill_hole_area": 0,
}
DECODER_OVERRIDES = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}
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

    def __init__(self, model: torch.nn.Module, device: torch.device, name: str):
        self.model = model
        self.device = device
        self.name = name
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


# --------------------------------------------------------------------------------------------
# Loading


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" → cuda, else mps, else cpu; anything else is passed to ``torch.device``."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ModelLoadError(f"unknown device {device!r} for SAM2 (use auto, cuda, mps or cpu)") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested for SAM2 but no CUDA GPU is available "
                             "(use --device auto or cpu)")
    return dev


def build_sam2(spec: str, device: str = "auto") -> Sam2Backend:
    """Load SAM2 for SteerSeg.

    ``spec`` is a size name ("tiny", "small", "base+", "large"; fetched from the hub as
    facebook/sam2-hiera-<size>), a hub id (facebook/sam2-hiera-large, facebook/sam2.1-hiera-tiny,
    ...), a checkpoint file (.pt loaded with ``weights_only=True``, or .safetensors; its config is
    a sibling ``<name>.yaml``/``.json``, ``config.yaml``/``.json`` beside it, or inferred from
    the weights' shapes) or a folder holding a config and one weights file (what
    ``make_tiny_sam2`` writes). Missing or unreachable weights raise ``ModelLoadError`` saying
    how to get them; unsafe or corrupt checkpoints raise ``CheckpointError``.
    """
    spec = str(spec).strip()
    dev = resolve_device(device)
    path = Path(spec).expanduser()
    if path.is_dir():
        config_file, weights = _folder_parts(path)
        name = str(path)
    elif path.is_file():
        config_file, weights = _sibling_config(path), path
        name = str(path)
    else:
        key = ALIASES.get(spec.lower(), spec.lower())
        if key in SIZES or _hub_entry(spec) is not None:
            repo, filename, packaged = SIZES[key] if key in SIZES else _hub_entry(spec)  # type: ignore[misc]
            weights = _hub_download(repo, filename)
            config_file, name = _packaged_config(packaged), key if key in SIZES else spec
        elif spec.lower().endswith(WEIGHT_SUFFIXES) or os.sep in spec or spec.startswith("."):
            raise ModelLoadError(
                f"SAM2 checkpoint not found: {spec}. Pass an existing .pt/.safetensors file or folder, "
                f"or a size name ({', '.join(SIZES)}).")
        else:
            raise ModelLoadError(
                f"unknown SAM2 model {spec!r}: use a size name ({', '.join(SIZES)}), a hub id such "
                "as facebook/sam2-hiera-large, a checkpoint file or a folder with config + weights.")
    state_dict = load_weights(weights)
    if config_file is None:
        config_file = _packaged_config(_infer_packaged_config(state_dict, weights))
    model = _instantiate(_read_config(config_file))
    _load_state_dict(model, state_dict, weights, config_file)
    model = model.to(dev).eval()
    return Sam2Backend(model, dev, name)


def _hub_entry(spec: str) -> tuple[str, str, str] | None:
    for table in (SIZES, SIZES_21):
        for repo, filename, packaged in table.values():
            if spec.lower() == repo.lower():
                return repo, filename, packaged
    return None


def _hub_download(repo: str, filename: str) -> Path:
    how = (f"download it with `hf download {repo} {filename}` (huggingface_hub's CLI) on a machine "
           f"with internet access, or pass --sam2 /path/to/{filename} (or set STEERSEG_SAM2)")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:  # offline, not cached, no access, network errors
        raise ModelLoadError(
            f"SAM2 weights {repo}/{filename} are not available here ({type(err).__name__}): {how}."
        ) from err


def _folder_parts(folder: Path) -> tuple[Path | None, Path]:
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(WEIGHT_SUFFIXES))
    if not weights:
        raise ModelLoadError(f"no SAM2 weights (.safetensors or .pt) in folder {folder}")
    if len(weights) > 1:
        preferred = [p for p in weights if p.suffix == ".safetensors"]
        if len(preferred) != 1:
            raise ModelLoadError(f"several weight files in {folder}; keep one or pass the file itself")
        weights = preferred
    config = next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)
    if config is None:
        yamls = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
        config = yamls[0] if len(yamls) == 1 else None
    return config, weights[0]


def _sibling_config(weights: Path) -> Path | None:
    """``<stem>.yaml|.yml|.json`` beside the weights, else a ``config.*`` there that names sam2
    classes (a stray config of some other model is ignored and the config inferred instead)."""
    own = [weights.with_suffix(s) for s in (".yaml", ".yml", ".json")]
    shared = [weights.parent / n for n in CONFIG_NAMES]
    for p in own + shared:
        if p.is_file() and (p in own or "sam2." in p.read_text(errors="replace")):
            return p
    return None


def _packaged_config(relative: str) -> Path:
    import sam2

    return Path(sam2.__file__).parent / relative


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A flat tensor state dict from .safetensors or a weights-only .pt (sam2's {"model": sd}
    layout or a bare state dict). Never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"SAM2 checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            data: Any = load_file(str(path))
        except Exception as err:
            raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    else:
        try:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"refusing to load {path}: it is not a plain tensor checkpoint ({type(err).__name__}). "
                "SteerSeg only reads weights-only .pt files (torch.load(weights_only=True)) and "
                "safetensors, never arbitrary pickles; re-save the state dict with torch.save or "
                "safetensors.") from err
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise CheckpointError(f"{path} does not hold a SAM2 state dict (name → tensor)")
    return data


def _infer_packaged_config(sd: dict[str, torch.Tensor], path: Path) -> str:
    patch = sd.get("image_encoder.trunk.patch_embed.proj.weight")
    blocks = {k.split(".")[3] for k in sd if k.startswith("image_encoder.trunk.blocks.")}
    size = _TRUNK_SHAPES.get((int(patch.shape[0]), len(blocks))) if patch is not None else None
    if size is None:
        raise ModelLoadError(
            f"cannot tell which SAM2 configuration {path.name} needs; put its config next to it "
            f"as {path.stem}.yaml (or config.yaml) or pass a folder with config + weights.")
    return (SIZES_21 if "no_obj_embed_spatial" in sd else SIZES)[size][2]


def _read_config(path: Path) -> dict:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            from omegaconf import OmegaConf

            data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:
        raise ModelLoadError(f"cannot read SAM2 config {path}: {err}") from err
    model = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(model, dict) or "_target_" not in model:
        raise ModelLoadError(f"{path} is not a SAM2 model config (no model._target_)")
    _check_targets(model, path)
    return model


def _check_targets(node: Any, path: Path) -> None:
    """Configs are instantiated by hydra; allow only sam2's own classes, never arbitrary
    callables (a config could otherwise run any importable function)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not str(target).startswith("sam2."):
            raise ModelLoadError(f"{path}: refusing config target {target!r} (only sam2.* classes)")
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list):
        for value in node:
            _check_targets(value, path)


def _instantiate(model_cfg: dict) -> torch.nn.Module:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = dict(model_cfg)
    cfg.update(PREDICTOR_OVERRIDES)
    cfg["sam_mask_decoder_extra_args"] = {**(cfg.get("sam_mask_decoder_extra_args") or {}),
                                          **DECODER_OVERRIDES}
    try:
        return instantiate(OmegaConf.create(cfg), _recursive_=True)
    except Exception as err:
        raise ModelLoadError(f"the SAM2 config could not be built: {err}") from err


def _load_state_dict(model: torch.nn.Module, sd: dict, weights: Path, config: Path) -> None:
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ModelLoadError(f"{weights.name} does not fit the SAM2 config {config.name}: {err}") from err
    if missing or unexpected:
        raise ModelLoadError(
            f"{weights.name} does not fit the SAM2 config {config.name}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}).")


# --------------------------------------------------------------------------------------------
# A tiny random-weight SAM2 for tests and demos


def make_tiny_sam2(out_dir: Path, image_size: int = 256, *, arch: str = "compact",
                   seed: int = 0) -> Path:
    """Write a random-weight SAM2 folder (``config.yaml`` + ``model.safetensors``, plus
    ``tiny_sam2.json`` and the STEERSEG_TINY.txt label) that ``build_sam2(str(out_dir))`` loads.
    Deterministic: the same arguments write the same bytes.

    ``arch="compact"`` (default) is a shrunken hiera-t layout (narrower trunk, 64-wide neck and
    memory) that runs fast on a CPU for tests; "tiny"/"small"/"base+"/"large" keep the released
    architecture (random weights) for realistic timings. ``image_size`` must be a multiple of 32.
    The object-score head is biased so random masks are non-empty (objects "present").
    Outputs are meaningless: this exists to exercise the real loading and tracking code.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    base = ALIASES.get(arch, arch)
    packaged = SIZES["tiny" if base == "compact" else base][2]
    cfg = OmegaConf.to_container(OmegaConf.load(_packaged_config(packaged)), resolve=True)
    model_cfg = cfg["model"]
    model_cfg["image_size"] = int(image_size)
    feat = image_size // 16
    if base == "compact":
        _shrink(model_cfg)
    for att in ("self_attention", "cross_attention"):
        model_cfg["memory_attention"]["layer"][att]["feat_sizes"] = [feat, feat]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = instantiate(OmegaConf.create(model_cfg), _recursive_=True)
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    head_bias = [k for k in sd if k.startswith("sam_mask_decoder.pred_obj_score_head") and k.endswith("bias")]
    if head_bias:
        sd[sorted(head_bias)[-1]].fill_(4.0)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"model": model_cfg})))
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})  # one key: same bytes
    (out / "tiny_sam2.json").write_text(json.dumps({"arch": arch, "image_size": image_size, "seed": seed}) + "\n")
    from ..tiny_models import TINY_LABEL

    (out / "STEERSEG_TINY.txt").write_text(TINY_LABEL + "\n")
    return out


def _shrink(m: dict) -> None:
    """hiera-t → a much smaller network with the same structure (every module kept)."""
    trunk, neck = m["image_encoder"]["trunk"], m["image_encoder"]["neck"]
    trunk.update(embed_dim=32, num_heads=1, stages=[1, 1, 2, 1], global_att_blocks=[3])
    neck.update(d_model=64, backbone_channel_list=[256, 128, 64, 32])
    neck["position_encoding"]["num_pos_feats"] = 64
    att = m["memory_attention"]
    att.update(d_model=64, num_layers=2)
    att["layer"].update(d_model=64, dim_feedforward=128)
    att["layer"]["self_attention"]["embedding_dim"] = 64
    att["layer"]["cross_attention"].update(embedding_dim=64, kv_in_dim=32)
    enc = m["memory_encoder"]
    enc.update(out_dim=32, in_dim=64)
    enc["mask_downsampler"]["embed_dim"] = 64
    enc["position_encoding"]["num_pos_feats"] = 32
    enc["fuser"].update(num_layers=1)
    enc["fuser"]["layer"]["dim"] = 64
