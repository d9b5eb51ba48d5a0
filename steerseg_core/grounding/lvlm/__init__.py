"""LVLM backbones behind one protocol; ``load_adapter`` picks the family from the model config.

A backbone is a hub id (``Qwen/Qwen2.5-VL-7B-Instruct``) or a local folder with the same files
(what ``make-tiny-models`` writes). Missing weights never surface as a raw hub traceback: the
error names the model and says how to get it.
"""

from __future__ import annotations

from pathlib import Path

from ...config import service_from_env
from ...errors import ModelLoadError
from ...files import has_tiny_marker
from .base import HFAdapter, PreparedInputs, pick_device, pick_dtype
from .qwen import QwenVLAdapter

KNOWN_BACKBONES = {
    "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2_5_vl",
    "Qwen/Qwen2-VL-7B-Instruct": "qwen2_vl",
    "OpenGVLab/InternVL3-8B-hf": "internvl",
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": "llava_onevision",
}

_FAMILIES: dict[str, type[HFAdapter]] = {
    "qwen2_5_vl": QwenVLAdapter,
    "qwen2_vl": QwenVLAdapter,
}


def _register_optional() -> None:
    from .internvl import InternVLAdapter
    from .llava_ov import LlavaOneVisionAdapter

    _FAMILIES["internvl"] = InternVLAdapter
    _FAMILIES["llava_onevision"] = LlavaOneVisionAdapter


def _missing_message(spec: str, err: Exception, offline: bool) -> str:
    if Path(spec).expanduser().exists():
        return (f"backbone folder '{Path(spec).name}' cannot be loaded ({type(err).__name__}): it must "
                "hold config.json, the weights (safetensors) and the processor/tokenizer files")
    how = (f"download it where the hub is reachable (`hf download {spec}`, huggingface_hub's CLI) and copy the "
           f"Hugging Face cache here, or pass a local folder with --backbone / STEERSEG_BACKBONE")
    where = "the hub is offline here and it is not in the local cache" if offline else (
        "it is neither a local folder nor reachable on the hub")
    return f"backbone '{spec}' is not available: {where}. To get it: {how}."


def load_adapter(spec: str, device: str = "auto", dtype: str = "auto", *,
                 hub_offline: bool | None = None) -> HFAdapter:
    """Load a backbone (hub id or folder) and wrap it in its family's adapter. ``hub_offline``
    (default ``ServiceConfig.hub_offline``, i.e. HF_HUB_OFFLINE) only shapes the error message.

    Every transformers call passes ``trust_remote_code=False``: a folder or repo whose config has an
    ``auto_map`` would otherwise make transformers ask on the terminal whether to run its code (and
    run it on "y"). Such a model is refused with a ``ModelLoadError`` instead."""
    if hub_offline is None:
        hub_offline = service_from_env().hub_offline
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    local = Path(spec).expanduser()
    source = str(local) if local.exists() else spec
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if not local.exists() and looks_local:
        raise ModelLoadError(f"backbone folder '{Path(spec).name}' does not exist")
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
    except Exception as err:  # hub/network/file errors all mean "not available"
        raise ModelLoadError(_missing_message(spec, err, hub_offline)) from err
    model_type = str(config.model_type)
    if model_type not in _FAMILIES:
        _register_optional()
    family = _FAMILIES.get(model_type)
    if family is None:
        shown = Path(spec).name if local.exists() else spec  # a folder by its name, never its server path
        raise ModelLoadError(f"backbone '{shown}' is a '{model_type}' model; supported: "
                             f"{', '.join(sorted(_FAMILIES))}")
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    try:
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=False)
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=dt, attn_implementation="sdpa",
                                                            trust_remote_code=False)
    except Exception as err:
        raise ModelLoadError(_missing_message(spec, err, hub_offline)) from err
    model.to(dev)
    return family(model, processor, name=spec, is_tiny=local.exists() and has_tiny_marker(local))


__all__ = ["HFAdapter", "KNOWN_BACKBONES", "PreparedInputs", "QwenVLAdapter", "load_adapter"]
