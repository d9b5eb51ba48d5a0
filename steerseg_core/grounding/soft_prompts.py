"""Learnable soft prompts: one set for the frame branch, one for the video branch.

N_p vectors of the backbone's hidden size each, initialised from the token embeddings of a
natural-language seed prompt (repeated and truncated to N_p), prepended to the query step's input.
A checkpoint is tiny: ``NAME.safetensors`` (tensors ``frame``, ``video``) plus ``NAME.json`` with the
backbone fingerprint, N_p, seed prompts, steps and metrics. Loading never unpickles anything and
refuses a checkpoint made for another backbone or size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .prompts import SEED_PROMPT_FRAME, SEED_PROMPT_VIDEO

BRANCHES = ("frame", "video")


def repeat_truncate(embeddings: torch.Tensor, n: int) -> torch.Tensor:
    """(k, d) token embeddings → (n, d) by repeating the sequence and cutting it to n rows."""
    if embeddings.shape[0] == 0:
        raise ValueError("seed prompt has no tokens")
    reps = -(-n // embeddings.shape[0])
    return embeddings.repeat(reps, 1)[:n].clone()


class SoftPrompts(nn.Module):
    def __init__(self, frame: torch.Tensor, video: torch.Tensor, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if frame.shape != video.shape or frame.dim() != 2:
            raise CheckpointError(f"soft prompts must be two (N_p, d) tensors; got {tuple(frame.shape)} "
                                  f"and {tuple(video.shape)}")
        if frame.shape[0] < 1 or frame.shape[1] < 1:  # zero prompts steer nothing: never "in use"
            raise CheckpointError(f"soft prompts must have at least one row of at least one value; got "
                                  f"{tuple(frame.shape)}")
        self.frame = nn.Parameter(frame.float().clone())
        self.video = nn.Parameter(video.float().clone())
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def n_prompts(self) -> int:
        return int(self.frame.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.frame.shape[1])

    def branch(self, name: str) -> nn.Parameter:
        if name not in BRANCHES:
            raise ValueError(f"unknown branch {name!r}")
        return self.frame if name == "frame" else self.video

    @classmethod
    def from_seed(cls, adapter, n_prompts: int = 64, seed_frame: str = SEED_PROMPT_FRAME,
                  seed_video: str = SEED_PROMPT_VIDEO) -> SoftPrompts:
        """Initialise both sets from the backbone's token embeddings of the seed prompts."""
        if n_prompts < 1:
            raise ValueError("N_p must be at least 1")
        frame = repeat_truncate(adapter.token_embeddings(seed_frame), n_prompts)
        video = repeat_truncate(adapter.token_embeddings(seed_video), n_prompts)
        meta = {"backbone": adapter.name, "fingerprint": adapter.fingerprint, "n_prompts": n_prompts,
                "hidden_size": adapter.hidden_size, "seed_prompts": {"frame": seed_frame, "video": seed_video},
                "steps": 0, "trained": False}
        return cls(frame, video, meta)

    def save(self, path: str | Path, **meta_updates: Any) -> Path:
        """Write ``path`` (.safetensors) and its JSON sidecar; returns the safetensors path."""
        from safetensors.torch import save_file

        st = _st_path(path)
        st.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, **meta_updates, "n_prompts": self.n_prompts, "hidden_size": self.hidden_size,
                "format": "steerseg-soft-prompts-v1"}
        tmp = st.with_suffix(".safetensors.tmp")
        save_file({"frame": self.frame.detach().cpu().contiguous(),
                   "video": self.video.detach().cpu().contiguous()}, str(tmp),
                  metadata={"format": "steerseg-soft-prompts-v1"})
        tmp.replace(st)
        side = st.with_suffix(".json")
        side.write_text(json.dumps(meta, indent=2, default=str))
        return st

    @classmethod
    def load(cls, path: str | Path, fingerprint: dict[str, Any] | None = None) -> SoftPrompts:
        """Load a checkpoint; if ``fingerprint`` is given, refuse one made for another backbone."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        st = _st_path(path)
        if not st.exists():
            raise CheckpointError(f"soft-prompt checkpoint '{st.name}' not found")
        try:
            tensors = load_file(str(st))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"'{st.name}' is not a valid safetensors soft-prompt file ({err})") from err
        if set(tensors) != set(BRANCHES):
            raise CheckpointError(f"'{st.name}' must hold tensors 'frame' and 'video'; found {sorted(tensors)}")
        for name, t in tensors.items():
            if not t.is_floating_point() or t.dim() != 2:
                raise CheckpointError(f"'{st.name}': tensor '{name}' must be a 2-D float tensor, "
                                      f"got {t.dtype} {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise CheckpointError(f"'{st.name}': tensor '{name}' contains NaN or infinite values")
        meta = _read_meta(st)
        sp = cls(tensors["frame"], tensors["video"], meta)
        if fingerprint is not None:
            sp.check_compatible(fingerprint, st.name)
        return sp

    def check_compatible(self, fingerprint: dict[str, Any], label: str = "soft prompts") -> None:
        if self.hidden_size != int(fingerprint["hidden_size"]):
            raise CheckpointError(f"{label} have hidden size {self.hidden_size} but the backbone has "
                                  f"{fingerprint['hidden_size']}: they were trained for another model")
        theirs = self.meta.get("fingerprint") or {}
        for key in ("model_type", "num_layers", "vocab_size"):
            if key in theirs and theirs[key] != fingerprint.get(key):
                raise CheckpointError(f"{label} were trained for a different backbone "
                                      f"({key} {theirs[key]} vs {fingerprint.get(key)}; trained on "
                                      f"'{self.meta.get('backbone', '?')}')")


def _st_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix in (".pt", ".pth", ".bin", ".pkl", ".ckpt"):
        raise CheckpointError(f"'{p.name}': soft prompts load only from .safetensors (pickle-based files "
                              "are never opened)")
    return p if p.suffix == ".safetensors" else p.with_name(p.name + ".safetensors")


def _read_meta(st: Path) -> dict[str, Any]:
    side = st.with_suffix(".json")
    if not side.exists():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"'{side.name}' is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"'{side.name}' must hold a JSON object")
    return meta


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Soft-prompt checkpoints (``*.safetensors``) in a folder, newest first."""
    f = Path(folder)
    if not f.is_dir():
        return []
    return sorted(f.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
