"""ReasonVOS (VideoLISA), in the official layout:

* ``meta_expressions.json``: ``videos[v] = {"source", "frames", "expressions"}`` where
  ``expressions`` is a *list* of ``{"obj_id", "exp_id", "exp_text", "is_sent"}`` — ``is_sent``
  belongs to each expression, and one object may carry several expressions;
* frames ``JPEGImages/<v>/<frame>.jpg``;
* ground truth ``Annotations/<source>_<v>_<obj_id>/<frame>.png`` (0/255), on a subset of frames;
* predictions ``<pred>/<source>_<v>_<obj_id>/<exp_id>/<frame>.png`` — that path is each
  expression's key (``Expression.out_dir``), so two expressions never share a folder.

J and F are averaged over the ground-truth frames of each expression, then over all expressions
(no groups). How a missing prediction counts is evaluation (``eval.summaries``).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import InputError
from .base import Benchmark, Expression, GroundTruth, list_frames
from .masks_io import read_binary_masks
from .meta import read_meta


class ReasonVOS(Benchmark):
    name = "reasonvos"
    title = "ReasonVOS"
    splits = ("valid",)

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        super().__init__(root, split)
        self._meta = self.root / "meta_expressions.json"
        if not self._meta.is_file():
            raise InputError(f"ReasonVOS: expressions file not found: {self._meta}")

    def frames_dir(self, video: str) -> Path:
        return self.root / "JPEGImages" / video

    def _read(self) -> list[Expression]:
        videos = read_meta(self._meta)
        out = []
        for name in sorted(videos):
            v = videos[name]
            if v.shape != "listed":
                raise InputError(f"ReasonVOS: video {name} in {self._meta.name}: 'expressions' must be a list "
                                 "of {obj_id, exp_id, exp_text, is_sent} (the official layout)")
            source = v.fields.get("source")
            if not source:
                raise InputError(f"ReasonVOS: video {name} has no 'source'")
            frames = v.frames if v.frames else list_frames(self.frames_dir(name))
            for e in v.expressions:
                if len(e.obj_ids) != 1:
                    raise InputError(f"ReasonVOS: video {name} expression {e.exp_id} needs one obj_id")
                kind = "sentence" if e.fields.get("is_sent") else "phrase"
                out.append(Expression(self.name, name, e.exp_id, e.clean_text, frames, obj_ids=e.obj_ids,
                                      group=kind, out_dir=f"{self.gt_name(str(source), name, e.obj_ids[0])}/{e.exp_id}"))
        return out

    @staticmethod
    def gt_name(source: str, video: str, obj_id: str) -> str:
        """The official folder name of one object: ``<source>_<video>_<obj_id>``."""
        return f"{source}_{video}_{obj_id}"

    def gt_dir(self, expr: Expression) -> Path:
        folder = self.root / "Annotations" / expr.key.rsplit("/", 1)[0]
        if not folder.is_dir():
            raise InputError(f"ReasonVOS: ground truth folder not found: {folder}")
        return folder

    def load_gt(self, expr: Expression) -> GroundTruth:
        folder = self.gt_dir(expr)
        names = tuple(sorted(p.stem for p in folder.glob("*.png")))
        if not names:
            raise InputError(f"ReasonVOS: no masks in {folder}")
        with Image.open(folder / f"{names[0]}.png") as im:
            size = (im.height, im.width)
        masks, _ = read_binary_masks(folder, names, size)
        return GroundTruth(names, masks)
