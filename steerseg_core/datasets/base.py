"""What every benchmark reader provides: its expressions, where their frames are and their ground
truth. Readers parse each dataset's *official* layout; how results become the paper's numbers is
evaluation (``steerseg_core.eval.summaries``), not reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class Expression:
    """One referring expression of a video: the unit the runner segments and scores.

    frames: the frame stems the model sees, in order. group: the benchmark's split of expressions
    (ReVOS: referring / reasoning / no-target; Ref-DAVIS17: the annotator run). out_dir: where its
    predictions go inside a submission / run folder when that is not ``<video>/<exp_id>``
    (ReasonVOS: ``<source>_<video>_<obj_id>/<exp_id>``); it is also the expression's key, unique
    within a benchmark.
    """

    benchmark: str
    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    obj_ids: tuple[str, ...] = ()
    anno_ids: tuple[str, ...] = ()
    group: str = ""
    out_dir: str = ""

    @property
    def key(self) -> str:
        return self.out_dir or f"{self.video}/{self.exp_id}"


@dataclass(frozen=True)
class GroundTruth:
    """GT masks (T, H, W) bool at ``frames`` (stems; a subset of the expression's frames or all)."""

    frames: tuple[str, ...]
    masks: np.ndarray


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
    # Reader options a run must reopen the benchmark with (stored in run.json).
    options: dict = {}

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
            exprs = self._read()
            seen: set[str] = set()
            for e in exprs:
                if e.key in seen:
                    raise InputError(f"{self.title}: two expressions share the key {e.key}")
                seen.add(e.key)
            self._expressions = exprs
        return self._expressions

    def image_paths(self, expr: Expression) -> list[Path]:
        folder = self.frames_dir(expr.video)
        return [find_image(folder, f) for f in expr.frames]

    def frame_size(self, expr: Expression) -> tuple[int, int]:
        with Image.open(self.image_paths(expr)[0]) as im:
            return im.height, im.width

    def describe(self) -> dict:
        out = {"benchmark": self.name, "title": self.title, "split": self.split, "root": str(self.root),
               "protocol": self.protocol}
        if self.options:
            out["options"] = dict(self.options)
        return out
