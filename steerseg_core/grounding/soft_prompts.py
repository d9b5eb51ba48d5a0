"""Learnable soft prompts: one set for the frame branch, one for the video branch.

N_p vectors of the backbone's hidden size each, initialised from the token embeddings of a
natural-language seed prompt (repeated and truncated to N_p), prepended to the query step's input.
A checkpoint is tiny: ``NAME.safetensors`` (tensors ``frame``, ``video``) plus ``NAME.json`` with the
backbone fingerprint, N_p, seed prompts, steps and metrics. Loading never unpickles anything and
refuses a checkpoint made for another backbone or size, or one with no prompt rows.

Which soft prompts a run uses is one string (``GroundingConfig.soft_prompts``, ``--soft-prompts``,
``STEERSEG_SOFT_PROMPTS``, the app's choice), resolved by ``resolve_soft_prompts``: nothing /
``"none"`` = no soft prompts; ``"seed"`` = the untrained seed initialisation, only when asked for by
name; a local ``.safetensors`` file; or a Hugging Face hub reference (``user/repo`` or
``user/repo/file.safetensors``), downloaded with huggingface_hub. A run never falls back to
untrained prompts silently: ``provenance`` says what it used (result.json's ``soft_prompts``).
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ModelLoadError
from .prompts import SEED_PROMPT_FRAME, SEED_PROMPT_VIDEO

BRANCHES = ("frame", "video")
# The spellings of "no soft prompts" and of "the untrained seed initialisation, on purpose".
NONE_SOURCES = ("", "none", "off")
SEED_SOURCE = "seed"
HUB_FILENAME = "soft_prompts.safetensors"  # the file a bare ``user/repo`` reference loads
_HUB_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_REF = re.compile(rf"^({_HUB_PART}/{_HUB_PART})(?:/((?:{_HUB_PART}/)*{_HUB_PART}\.safetensors))?$")


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
            raise CheckpointError(f"soft prompts have zero prompt rows or zero width: need at least one row "
                                  f"of at least one value; got "
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

    @property
    def trained(self) -> bool:
        """False for a seed initialisation (or a checkpoint saved before any training step)."""
        return bool(self.meta.get("trained", True)) and self.meta.get("steps") != 0

    def provenance(self, source: str) -> dict[str, Any]:
        """result.json's ``soft_prompts`` block for prompts loaded from ``source``."""
        steps = self.meta.get("steps")
        training = self.meta.get("training")
        with_cot = training.get("use_cot") if isinstance(training, dict) else None
        if "prompt_form" in self.meta:
            with_cot = self.meta["prompt_form"] == "cot"
        return {"source": source, "trained": self.trained,
                "steps": int(steps) if isinstance(steps, int | float) and not isinstance(steps, bool) else None,
                "trained_with_cot": bool(with_cot) if with_cot is not None and self.trained else None}

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


def no_soft_prompts_provenance() -> dict[str, Any]:
    """result.json's ``soft_prompts`` block of a run without soft prompts."""
    return {"source": "none", "trained": False, "steps": None, "trained_with_cot": None}


def hub_reference(spec: str) -> tuple[str, str] | None:
    """``user/repo`` → (repo, ``soft_prompts.safetensors``); ``user/repo/dir/f.safetensors`` →
    (repo, ``dir/f.safetensors``); None for anything that is not a hub reference (an existing
    local path, ``./x``, ``/x``, ``~/x``, a bare name)."""
    text = spec.strip()
    if text.startswith((".", "/", "~")) or Path(text).expanduser().exists():
        return None
    m = _HUB_REF.match(text)
    if m is None:
        return None
    return m.group(1), m.group(2) or HUB_FILENAME


def _hub_download(repo: str, filename: str) -> Path:
    """Checkpoint + sidecar from the hub (or its local cache); a clear message when unavailable."""
    from ..config import service_from_env

    offline = service_from_env().hub_offline
    how = (f"download it where the hub is reachable (`hf download {repo} {filename}`) and copy the "
           "Hugging Face cache here, or pass the local .safetensors file with --soft-prompts / "
           "STEERSEG_SOFT_PROMPTS")
    where = ("the hub is offline here and it is not in the local cache" if offline
             else "it is not reachable on the hub")
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as err:  # offline, not cached, no such repo/file, no access, network errors
        raise ModelLoadError(f"soft-prompt checkpoint '{repo}/{filename}' is not available: {where} "
                             f"({type(err).__name__}). To get it: {how}.") from err
    # The JSON sidecar is optional: without it the checkpoint counts as trained, steps unknown.
    with contextlib.suppress(Exception):
        hf_hub_download(repo_id=repo, filename=str(Path(filename).with_suffix(".json")))
    return path


def resolve_soft_prompts(spec: str | None, adapter, n_prompts: int = 64) -> tuple[SoftPrompts | None, dict[str, Any]]:
    """The soft prompts a run uses and their provenance block, from one source string (see the
    module docstring). Refuses a checkpoint for another backbone or with zero prompt rows."""
    text = (spec or "").strip()
    if text.lower() in NONE_SOURCES:
        return None, no_soft_prompts_provenance()
    if text.lower() == SEED_SOURCE:
        sp = SoftPrompts.from_seed(adapter, n_prompts)
        return sp, sp.provenance(SEED_SOURCE)
    ref = hub_reference(text)
    if ref is not None:
        repo, filename = ref
        sp = SoftPrompts.load(_hub_download(repo, filename), adapter.fingerprint)
        source = repo if filename == HUB_FILENAME else f"{repo}/{filename}"
        return sp, sp.provenance(source)
    sp = SoftPrompts.load(text, adapter.fingerprint)
    return sp, sp.provenance(text)
