"""Resumable training state on disk: safetensors for tensors, JSON for the rest, written atomically.

A checkpoint is a folder ``<run>/checkpoints/step_000500/`` holding

    soft_prompts.safetensors + .json   the soft prompts (the format the core loads)
    optimizer.safetensors              AdamW state tensors, keyed ``state.<param>.<name>``
    rng.safetensors                    torch CPU (and CUDA) generator states
    trainer_state.json                 step, data position, skip counts, optimizer param groups
                                       and scalar state, scheduler state, Python/NumPy RNG, metrics

It is written into a temporary sibling folder and renamed into place, then ``latest.json`` is
replaced atomically to point at it, so a SIGKILL at any moment leaves the previous checkpoint
complete and current. Nothing here is ever unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import atomic_write_json, fsync_dir
from ..grounding.soft_prompts import SoftPrompts

STATE_FORMAT = "steerseg-train-state-v1"
LATEST = "latest.json"


# -- optimizer / RNG (de)serialisation --------------------------------------------------------

def optimizer_to_parts(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalar_state": scalars}


def optimizer_from_parts(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in (meta.get("scalar_state") or {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{i}"] = s
    return out


def rng_json() -> dict[str, Any]:
    ver, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    return {"python": [ver, list(internal), gauss],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    if "torch_cpu" in tensors:
        torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if "python" in meta:
        ver, internal, gauss = meta["python"]
        random.setstate((ver, tuple(internal), gauss))
    if "numpy" in meta:
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


# -- checkpoints ------------------------------------------------------------------------------

@dataclass
class LoadedCheckpoint:
    path: Path
    step: int
    soft_prompts: SoftPrompts
    optimizer_tensors: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]
    state: dict[str, Any]


def step_dir(ckpt_root: Path, step: int) -> Path:
    return Path(ckpt_root) / f"step_{step:06d}"


def save_checkpoint(ckpt_root: str | Path, step: int, soft_prompts: SoftPrompts, optimizer: torch.optim.Optimizer,
                    scheduler, state: dict[str, Any], keep_last: int = 2, soft_meta: dict[str, Any] | None = None) -> Path:
    """Write the step's checkpoint folder atomically, point ``latest.json`` at it, prune old ones."""
    from safetensors.torch import save_file

    root = Path(ckpt_root)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(root, step)
    if (final / "trainer_state.json").is_file():  # already saved at this step: state is identical
        _point_latest(root, final, step)
        return final
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    soft_prompts.save(tmp / "soft_prompts.safetensors", **(soft_meta or {}))
    opt_tensors, opt_meta = optimizer_to_parts(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata={"format": STATE_FORMAT})
    save_file(rng_tensors(), str(tmp / "rng.safetensors"), metadata={"format": STATE_FORMAT})
    full = {"format": STATE_FORMAT, "step": step, "optimizer": opt_meta,
            "scheduler": _scheduler_state(scheduler), "rng": rng_json(), **state}
    atomic_write_json(tmp / "trainer_state.json", full)  # written last: marks the folder complete
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)  # an incomplete folder from an interrupted earlier save
    os.replace(tmp, final)
    fsync_dir(root)
    _point_latest(root, final, step)
    _prune(root, keep_last, keep=final)
    return final


def _scheduler_state(scheduler) -> dict[str, Any]:
    if scheduler is None:
        return {}
    sd = scheduler.state_dict()
    # LambdaLR keeps None for plain-function lambdas (they are rebuilt from the config on resume)
    return {k: v for k, v in sd.items() if k != "lr_lambdas" or all(x is None for x in v)}


def _point_latest(root: Path, folder: Path, step: int) -> None:
    atomic_write_json(root / LATEST, {"step": step, "path": folder.name})



def _complete(folder: Path) -> bool:
    return (folder / "trainer_state.json").is_file() and (folder / "soft_prompts.safetensors").is_file()


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Complete checkpoint folders, oldest step first (temporary/incomplete ones are ignored)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.is_dir() and _complete(p)]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(ckpt_root: str | Path) -> Path | None:
    """The folder ``latest.json`` names, else the highest complete step folder, else None."""
    root = Path(ckpt_root)
    try:
        data = json.loads((root / LATEST).read_text())
        folder = root / str(data["path"])
        if _complete(folder):
            return folder
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_newest_intact(ckpt_root: str | Path, fingerprint: dict[str, Any] | None = None
                       ) -> tuple[Path, LoadedCheckpoint, str]:
    """The newest checkpoint that loads: ``latest_checkpoint`` first, then older step folders,
    newest first. Returns (folder, loaded, note); ``note`` says which damaged checkpoints were passed
    over ("" when the latest was intact). ``CheckpointError`` when none loads."""
    root = Path(ckpt_root)
    latest = latest_checkpoint(root)
    candidates = list(dict.fromkeys([*([latest] if latest else []), *reversed(list_checkpoints(root))]))
    damaged: list[str] = []
    for folder in candidates:
        try:
            loaded = load_checkpoint(folder, fingerprint)
        except CheckpointError as err:
            damaged.append(f"{folder.name} ({err})")
            continue
        note = (f"checkpoint {', '.join(damaged)} could not be used; resumed from the newest intact one, "
                f"{folder.name} (step {loaded.step})") if damaged else ""
        return folder, loaded, note
    if not candidates:
        raise CheckpointError(f"no training checkpoint in '{root.name}'")
    raise CheckpointError("no intact training checkpoint to resume from: " + "; ".join(damaged))


def _prune(root: Path, keep_last: int, keep: Path) -> None:
    for tmp in root.glob(".tmp-step_*"):
        if not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)
    if keep_last <= 0:
        return
    found = list_checkpoints(root)
    for old in found[:-keep_last]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: str | Path, fingerprint: dict[str, Any] | None = None) -> LoadedCheckpoint:
    """Read a checkpoint folder (safetensors + JSON only)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not _complete(folder):
        raise CheckpointError(f"'{folder}' is not a complete training checkpoint")
    try:
        state = json.loads((folder / "trainer_state.json").read_text())
        opt = load_file(str(folder / "optimizer.safetensors"))
        rng = load_file(str(folder / "rng.safetensors")) if (folder / "rng.safetensors").exists() else {}
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"training checkpoint '{folder.name}' is damaged ({err})") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"'{folder.name}' is not a {STATE_FORMAT} checkpoint")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"training checkpoint '{folder.name}' is damaged: trainer_state.json has no "
                              f"valid \"step\" (got {step!r})")
    soft = SoftPrompts.load(folder / "soft_prompts.safetensors", fingerprint)
    return LoadedCheckpoint(folder, step, soft, opt, rng, state)
