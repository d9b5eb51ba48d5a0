"""Building SAM2 for SteerSeg: from a size name, a hub id, a checkpoint file or a folder.

Kept apart from the run-time object (``sam2_backend.py``), as sam2's own ``build_sam.py`` is.
Loading never unpickles arbitrary objects: ``.pt`` files go through
``torch.load(weights_only=True)``, and configs may only instantiate classes of the ``sam2``
package (an allow-list checked before hydra sees them).
"""


from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelLoadError
from ..files import has_tiny_marker
from .sam2_backend import Sam2Backend

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
    spec = check_sam2_spec(spec)
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
        repo, filename, packaged = SIZES[key] if key in SIZES else _hub_entry(spec)  # type: ignore[misc]
        weights = _hub_download(repo, filename)
        config_file, name = packaged_config(packaged), key if key in SIZES else spec
    state_dict = load_weights(weights)
    if config_file is None:
        config_file = packaged_config(_inferpackaged_config(state_dict, weights))
    model = _instantiate(_read_config(config_file))
    _load_state_dict(model, state_dict, weights, config_file)
    model = model.to(dev).eval()
    return Sam2Backend(model, dev, name, is_tiny=has_tiny_marker(weights))


def check_sam2_spec(spec: str) -> str:
    """``spec`` (stripped) if it names a SAM2 model ``build_sam2`` knows how to get — an existing
    file or folder, a size name or a known hub id — else ``ModelLoadError``. Cheap (no download,
    no weights read), so runs call it before any model work."""
    spec = str(spec or "").strip()
    path = Path(spec).expanduser()
    if spec and (path.is_dir() or path.is_file()):
        return spec
    key = ALIASES.get(spec.lower(), spec.lower())
    if key in SIZES or _hub_entry(spec) is not None:
        return spec
    if spec.lower().endswith(WEIGHT_SUFFIXES) or os.sep in spec or spec.startswith("."):
        raise ModelLoadError(
            f"SAM2 checkpoint not found: {spec}. Pass an existing .pt/.safetensors file or folder, "
            f"or a size name ({', '.join(SIZES)}).")
    raise ModelLoadError(
        f"unknown SAM2 model {spec!r}: use a size name ({', '.join(SIZES)}), a hub id such "
        "as facebook/sam2-hiera-large, a checkpoint file or a folder with config + weights.")


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


def packaged_config(relative: str) -> Path:
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


def _inferpackaged_config(sd: dict[str, torch.Tensor], path: Path) -> str:
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
