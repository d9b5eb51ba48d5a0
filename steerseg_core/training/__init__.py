"""Soft-prompt training: datasets, the rollout–mask objective, a resumable trainer, run management.

    from steerseg_core.config import GroundingConfig
    from steerseg_core.training import TrainConfig, train
    train(TrainConfig(data="data/ref-youtube-vos/train", out="runs/qwen25", export_dir="checkpoints",
                      grounding=GroundingConfig(backbone="Qwen/Qwen2.5-VL-7B-Instruct", use_cot=False)))

CLI: ``python -m steerseg_core train --help``; the run-folder layout is described in trainer.py and
README.md here. Names are imported lazily so that importing the package stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "lr_factor": "config",
    "BadSample": "data", "Dataset": "data", "ExpressionRecord": "data", "SkipCounter": "data",
    "TrainSample": "data", "folder_dataset": "data", "load_sample": "data", "open_dataset": "data",
    "ytvos_dataset": "data",
    "Objective": "objective", "bce_dice": "objective", "mask_to_grid": "objective", "pearson": "objective",
    "Trainer": "trainer", "TrainResult": "trainer", "TrainingDiverged": "trainer", "train": "trainer",
    "RunRequest": "runs", "launch_run": "runs", "stop_run": "runs", "read_status": "runs",
    "read_metrics": "runs", "RunBusyError": "lock",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
