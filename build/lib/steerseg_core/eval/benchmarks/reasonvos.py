"""ReasonVOS (VideoLISA): ``meta_expressions.json`` (per video: ``source``, ``is_sent``, optional
``frames``, ``expressions`` with ``exp_text`` and ``obj_id``), frames ``JPEGImages/<video>/``, GT
``Annotations/<source>_<video>_<obj_id>/<frame>.png`` (0/255). Scored on every GT frame (mean over
frames, then over expressions) as its official script.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ..masks_io import read_binary_masks
from .base import Benchmark, Expression, GroundTruth, list_frames, load_json, sorted_ids


class ReasonVOS(Benchmark):
    name = "reasonvos"
    title = "ReasonVOS"
    splits = ("valid",)

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        super().__init__(root, split)
        self._meta = self.root / "meta_expressions.json"
        if not self._meta.is_file():
            raise InputError(f"ReasonVOS: expressions file not found: {self._meta}")
        self._sources: dict[str, str] = {}

    def frames_dir(self, video: str) -> Path:
        return self.root / "JPEGImages" / video

    def _read(self) -> list[Expression]:
        videos = load_json(self._meta).get("videos", {})
        out = []
        for video in sorted(videos):
            info = videos[video]
            self._sources[video] = str(info.get("source", ""))
            frames = tuple(str(f) for f in info["frames"]) if info.get("frames") else list_frames(
                self.frames_dir(video))
            kind = "sentence" if info.get("is_sent") else "phrase"
            for exp_id in sorted_ids(info.get("expressions", {})):
                e = info["expressions"][exp_id]
                text = e.get("exp_text") or e.get("exp") or ""
                out.append(Expression(self.name, video, str(exp_id), " ".join(str(text).split()), frames,
                                      obj_ids=(str(e.get("obj_id")),), group=kind))
        return out

    def gt_dir(self, expr: Expression) -> Path:
        if not self._sources:
            self.expressions()
        src = self._sources.get(expr.video, "")
        base = self.root / "Annotations"
        for s in (src, src.lower()):
            p = base / f"{s}_{expr.video}_{expr.obj_ids[0]}"
            if p.is_dir():
                return p
        raise InputError(f"ReasonVOS: ground truth folder not found: {base / f'{src}_{expr.video}_{expr.obj_ids[0]}'}")

    def load_gt(self, expr: Expression) -> GroundTruth:
        folder = self.gt_dir(expr)
        names = tuple(sorted(p.stem for p in folder.glob("*.png")))
        if not names:
            raise InputError(f"ReasonVOS: no masks in {folder}")
        from PIL import Image

        with Image.open(folder / f"{names[0]}.png") as im:
            size = (im.height, im.width)
        masks, _ = read_binary_masks(folder, names, size)
        return GroundTruth(names, masks)
