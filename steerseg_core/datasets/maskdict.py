"""MeViS and ReVOS: ``meta_expressions*.json`` + ``mask_dict.json`` (COCO RLE per annotation id
and frame), ground truth of an expression = union of its ``anno_id`` masks, scored on every frame
(mean over frames, then over expressions) as their official scripts do.

MeViS layout: ``<root>/<split>/{JPEGImages/<video>/, meta_expressions.json, mask_dict.json}``
(``valid_u`` has masks and is what we score locally; ``valid`` does not — its answers go to the
server, and the paper's MeViS number is on that server split).
ReVOS layout: ``<root>/{JPEGImages/<video>/, meta_expressions_valid_.json, mask_dict.json,
mask_dict_foreground.json}``; ``type_id`` 0 = referring, 1 = reasoning, 2 = no target.
``mask_dict_foreground.json`` is ``{video: {"masks_rle": [RLE or [RLE, ...] per frame]}}``: every
annotated object of the video, the denominator of the robustness score R (``eval.summaries``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..rle import rle_decode
from .base import Benchmark, Expression, GroundTruth
from .meta import read_json, read_meta


class MaskDictBenchmark(Benchmark):
    """Shared reading of the meta + mask_dict layout."""

    def _paths(self) -> tuple[Path, Path, Path]:
        """(meta_expressions file, mask_dict file, JPEGImages folder)."""
        raise NotImplementedError

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        super().__init__(root, split)
        self._meta, self._mask_dict_path, self._images = self._paths()
        if not self._meta.is_file():
            raise InputError(f"{self.title}: expressions file not found: {self._meta}")
        self._mask_dict: dict | None = None

    @property
    def has_gt(self) -> bool:
        return self._mask_dict_path.is_file()

    def frames_dir(self, video: str) -> Path:
        return self._images / video

    def _group(self, fields: dict) -> str:
        return ""

    def _read(self) -> list[Expression]:
        videos = read_meta(self._meta)
        out = []
        for name in sorted(videos):
            v = videos[name]
            for e in v.expressions:
                out.append(Expression(self.name, name, e.exp_id, e.clean_text, v.frames or (),
                                      obj_ids=e.obj_ids, anno_ids=e.anno_ids, group=self._group(e.fields)))
        return out

    def mask_dict(self) -> dict:
        if self._mask_dict is None:
            if not self.has_gt:
                raise InputError(f"{self.title} {self.split}: no mask_dict.json (ground truth is withheld)")
            self._mask_dict = read_json(self._mask_dict_path)
        return self._mask_dict

    def load_gt(self, expr: Expression) -> GroundTruth | None:
        if not self.has_gt:
            return None
        md = self.mask_dict()
        size = None
        per_anno = []
        for a in expr.anno_ids:
            if a not in md:
                raise InputError(f"{self.title}: annotation id {a} of {expr.key} not in mask_dict.json")
            rles = md[a]
            if len(rles) < len(expr.frames):
                raise InputError(f"{self.title}: annotation {a} has {len(rles)} frames, "
                                 f"{expr.video} has {len(expr.frames)}")
            per_anno.append(rles)
            for r in rles:
                if r:
                    size = tuple(int(v) for v in r["size"])
                    break
        if size is None:
            size = self.frame_size(expr)
        masks = np.zeros((len(expr.frames), *size), dtype=bool)
        for rles in per_anno:
            for t in range(len(expr.frames)):
                if rles[t]:
                    masks[t] |= rle_decode(rles[t])
        return GroundTruth(expr.frames, masks)


class MeViS(MaskDictBenchmark):
    name = "mevis"
    title = "MeViS"
    splits = ("valid_u", "valid", "train")
    submission_prefix = ""

    def _paths(self) -> tuple[Path, Path, Path]:
        base = self.root / self.split if (self.root / self.split).is_dir() else self.root
        return base / "meta_expressions.json", base / "mask_dict.json", base / "JPEGImages"


REVOS_TYPES = {0: "referring", 1: "reasoning", 2: "no-target"}


class ReVOS(MaskDictBenchmark):
    name = "revos"
    title = "ReVOS"
    splits = ("valid", "train")
    _foreground: dict | None = None  # mask_dict_foreground.json, read on first use

    def _paths(self) -> tuple[Path, Path, Path]:
        meta = self.root / f"meta_expressions_{self.split}_.json"
        if not meta.is_file() and (self.root / f"meta_expressions_{self.split}.json").is_file():
            meta = self.root / f"meta_expressions_{self.split}.json"
        return meta, self.root / "mask_dict.json", self.root / "JPEGImages"

    def _group(self, fields: dict) -> str:
        t = fields.get("type_id")
        return REVOS_TYPES.get(int(t), str(t)) if t is not None else "referring"

    @property
    def foreground_path(self) -> Path:
        return self.root / "mask_dict_foreground.json"

    def load_foreground_counts(self, expr: Expression) -> np.ndarray:
        """Per frame of ``expr``, the video's foreground pixel count as the official script counts
        it: each frame's RLEs decoded and summed, so pixels of overlapping objects count twice."""
        if self._foreground is None:
            if not self.foreground_path.is_file():
                raise InputError(f"ReVOS: {self.foreground_path} not found (needed for the robustness score R)")
            self._foreground = read_json(self.foreground_path)
        entry = self._foreground.get(expr.video)
        if not isinstance(entry, dict) or not isinstance(entry.get("masks_rle"), list):
            raise InputError(f"ReVOS: video {expr.video} has no 'masks_rle' in {self.foreground_path.name}")
        rles = entry["masks_rle"]
        if len(rles) < len(expr.frames):
            raise InputError(f"ReVOS: {self.foreground_path.name} has {len(rles)} frames of {expr.video}, "
                             f"the video has {len(expr.frames)}")
        counts = np.zeros(len(expr.frames), dtype=np.int64)
        for t in range(len(expr.frames)):
            parts = rles[t] if isinstance(rles[t], list) else [rles[t]]
            counts[t] = sum(int(rle_decode(r).sum()) for r in parts if r)
        return counts
