"""The configuration of a training run (defaults = the paper's recipe) and its LR schedule.

Kept free of torch so the CLI can build its parser cheaply; ``trainer.py`` does the work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import GroundingConfig
from ..errors import InputError
from ..grounding import prompts

# The grounding options a run uses, held in ``TrainConfig.grounding``. Older run folders stored
# them flat at the top of config.json: ``from_dict`` moves them into the grounding part.
GROUNDING_FIELDS = ("backbone", "t_frame", "t_video", "layers", "n_prompts", "frame_max_tokens",
                    "frame_batch_size", "device", "dtype", "use_cot")


def train_grounding(**values: Any) -> GroundingConfig:
    """The grounding configuration of a training run: the paper's, except that the query prompt
    goes without CoT attributes unless asked (``use_cot``)."""
    values.setdefault("use_cot", False)
    if values.get("layers") is not None:
        values["layers"] = tuple(values["layers"])
    return GroundingConfig(**values)


@dataclass
class TrainConfig:
    """Everything a run needs; stored as ``config.json`` in the run folder (resume reads it).

    The backbone, T_f / T_v, layers, N_p, token budget, device, dtype and CoT switch are the
    grounding's own options (``grounding``); ``cfg.backbone`` and the like read them through."""

    data: str = ""
    grounding: GroundingConfig = field(default_factory=train_grounding)
    out: str = "runs/train"
    steps: int = 6500
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    min_lr_ratio: float = 0.0
    batch_size: int = 4  # effective batch: samples per optimizer step over all processes
    max_grad_norm: float | None = 1.0
    seed_frame: str = prompts.SEED_PROMPT_FRAME
    seed_video: str = prompts.SEED_PROMPT_VIDEO
    init_from: str | None = None  # start from an existing soft-prompt checkpoint
    input_frames: int = 16
    max_side: int | None = 1280  # frames larger than this are downscaled when loaded
    branches: tuple[str, ...] = ("frame", "video")
    # The query prompt form trained on is ``grounding.use_cot``: False = plain (no attributes; the
    # paper does not say which form it trains with, and plain needs no CoT generation), True = with
    # CoT attributes as at inference. Where CoT attributes are cached (shared by runs on the same
    # backbone); None = <cache>/cot (STEERSEG_CACHE).
    cot_cache_dir: str | None = None
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    eval_every: int = 250
    val_data: str | None = None
    val_samples: int = 8
    seed: int = 0
    gradient_checkpointing: bool = True
    autocast: bool = True
    export_dir: str | None = None
    name: str | None = None
    lock_file: str | None = None
    run_id: str | None = None
    max_bad_in_a_row: int = 200
    log_every: int = 10

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From ``to_dict`` output, or from the flat config.json of runs written before the
        grounding options were nested (their ``backbone``, ``t_frame`` … move into ``grounding``)."""
        values = dict(data)
        grounding = dict(values.pop("grounding", None) or {})
        for name in GROUNDING_FIELDS:
            if name in values:
                grounding[name] = values.pop(name)
        names = {f.name for f in dataclasses.fields(cls)} - {"grounding"}
        unknown = (set(values) - names) | (set(grounding) - {f.name for f in dataclasses.fields(GroundingConfig)})
        if unknown:
            raise InputError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        if "branches" in values:
            values["branches"] = tuple(values["branches"])
        return cls(grounding=train_grounding(**grounding), **values)

    def validate(self) -> None:
        if self.steps < 1:
            raise InputError("--steps must be at least 1")
        if not self.lr > 0:
            raise InputError("--lr must be positive")
        if self.batch_size < 1 or self.n_prompts < 1 or self.input_frames < 1:
            raise InputError("batch size, N_p and input frames must be at least 1")
        if self.t_frame < 1 or self.t_video < 1:
            raise InputError("T_f and T_v must be at least 1")
        bad = set(self.branches) - {"frame", "video"}
        if bad or not self.branches:
            raise InputError(f"branches must be 'frame' and/or 'video', got {self.branches}")
        if not self.seed_frame.strip() or not self.seed_video.strip():
            raise InputError("seed prompts must not be empty")


def _grounding_view(name: str) -> property:
    return property(lambda self: getattr(self.grounding, name),
                    doc=f"``grounding.{name}`` (read-only here; set it on ``grounding``).")


for _name in GROUNDING_FIELDS:
    setattr(TrainConfig, _name, _grounding_view(_name))


def prompt_form(use_cot: bool) -> str:
    """The recorded name of a query-prompt form: "cot" (with attributes) or "plain"."""
    return "cot" if use_cot else "plain"


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Linear warmup to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


