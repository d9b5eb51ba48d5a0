"""What every benchmark reader provides: its expressions, where their frames are, their ground
truth, and how per-expression results become the paper's numbers.

Readers parse each dataset's *official* layout; the runner only sees ``Expression``,
``GroundTruth`` and ``summarize``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class Expression:
    """One referring expression of a video: the unit the runner segments and scores.

    frames: the frame stems the model sees, in order. group: the benchmark's split of expressions
    (ReVOS: referring / reasoning / no-target; Ref-DAVIS17: the annotator run).
    """

    benchmark: str
    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    obj_ids: tuple[str, ...] = ()
    anno_ids: tuple[str, ...] = ()
    group: str = ""

    @property
    def key(self) -> str:
        return f"{self.video}/{self.exp_id}"


@dataclass(frozen=True)
class GroundTruth:
    """GT masks (T, H, W) bool at ``frames`` (stems; a subset of the expression's frames or all)."""

    frames: tuple[str, ...]
    masks: np.ndarray


def load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise InputError(f"file not found: {path}") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON: {err}") from err


def sorted_ids(keys: Any) -> list[str]:
    """Expression ids in numeric order where they are numbers ("0", "1", ..., "10")."""
    return sorted(keys, key=lambda k: (0, int(k), "") if str(k).isdigit() else (1, 0, str(k)))


def list_frames(folder: Path) -> tuple[str, ...]:
    if not folder.is_dir():
        raise InputError(f"frame folder not found: {folder}")
    return tuple(sorted(p.stem for p in folder.iterdir() if p.suffix in IMAGE_EXTS))


def find_image(folder: Path, stem: str) -> Path:
    for ext in IMAGE_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    raise InputError(f"frame {stem} not found in {folder}")


class Benchmark:
    """Base reader. Subclasses set the class attributes and implement ``_read`` and ``load_gt``."""

    name = ""
    title = ""
    splits: tuple[str, ...] = ()
    protocol = "all-frames"
    # Folder prefix inside a server submission zip (Ref-YouTube-VOS wants Annotations/).
    submission_prefix = "Annotations/"

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split or (self.splits[0] if self.splits else "")
        if self.splits and self.split not in self.splits:
            raise InputError(f"{self.title}: unknown split {self.split!r}; choose one of {', '.join(self.splits)}")
        self._expressions: list[Expression] | None = None

    # --- what subclasses provide -------------------------------------------------------------
    @property
    def has_gt(self) -> bool:
        return True

    def _read(self) -> list[Expression]:
        raise NotImplementedError

    def frames_dir(self, video: str) -> Path:
        raise NotImplementedError

    def load_gt(self, expr: Expression) -> GroundTruth | None:
        raise NotImplementedError

    # --- shared -------------------------------------------------------------------------------
    def expressions(self) -> list[Expression]:
        if self._expressions is None:
            self._expressions = self._read()
        return self._expressions

    def image_paths(self, expr: Expression) -> list[Path]:
        folder = self.frames_dir(expr.video)
        return [find_image(folder, f) for f in expr.frames]

    def frame_size(self, expr: Expression) -> tuple[int, int]:
        with Image.open(self.image_paths(expr)[0]) as im:
            return im.height, im.width

    def summarize(self, records: list[dict], run_dir: Path | None = None) -> dict:
        """Paper numbers from per-expression records (see ``steerseg_core.eval.tables``)."""
        from ..tables import correlation_summary, summarize_groups

        if not self.has_gt:
            return {**self.describe(), "groups": [], "headline": None, "correlation": correlation_summary(records),
                    "notes": ["ground truth withheld: upload submission.zip to the benchmark's server"]}
        return summarize_groups(self, records, [("overall", "", None)])

    def describe(self) -> dict:
        return {"benchmark": self.name, "title": self.title, "split": self.split, "root": str(self.root),
                "protocol": self.protocol}
