"""Soft-prompt training: datasets, the rollout–mask objective, a resumable trainer, run management.

    from steerseg_core.training import TrainConfig, train
    train(TrainConfig(data="data/ref-youtube-vos/train", backbone="Qwen/Qwen2.5-VL-7B-Instruct",
                      out="runs/qwen25", export_dir="checkpoints"))

CLI: ``python -m steerseg_core train --help``. See trainer.py for the run-folder layout.
"""

from .data import (
    BadSample,
    Dataset,
    ExpressionRecord,
    SkipCounter,
    TrainSample,
    folder_dataset,
    load_sample,
    open_dataset,
    ytvos_dataset,
)
from .objective import Objective, bce_dice, mask_to_grid, pearson
from .synthetic import make_synthetic_dataset
from .trainer import TrainConfig, Trainer, TrainingDiverged, TrainResult, lr_factor, train

__all__ = [
    "BadSample",
    "Dataset",
    "ExpressionRecord",
    "Objective",
    "SkipCounter",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainSample",
    "TrainingDiverged",
    "bce_dice",
    "folder_dataset",
    "load_sample",
    "lr_factor",
    "make_synthetic_dataset",
    "mask_to_grid",
    "open_dataset",
    "pearson",
    "train",
    "ytvos_dataset",
]
