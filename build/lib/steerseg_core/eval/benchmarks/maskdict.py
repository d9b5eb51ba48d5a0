"""MeViS and ReVOS: ``meta_expressions*.json`` + ``mask_dict.json`` (COCO RLE per annotation id
and frame), ground truth of an expression = union of its ``anno_id`` masks, scored on every frame
(mean over frames, then over expressions) as their official scripts do.

MeViS layout: ``<root>/<split>/{JPEGImages/<video>/, meta_expressions.json, mask_dict.json}``
(``valid_u`` has masks; ``valid`` does not — its answers go to the server).
ReVOS layout: ``<root>/{JPEGImages/<video>/, meta_expressions_valid_.json, mask_dict.json}``;
``type_id`` 0 = referring, 1 = reasoning, 2 = no target. The table reports referring, reasoning
and overall = the mean of those two (as ReVOS's official script); no-target expressions are run
but not in J/F.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import InputError
from ..rle import rle_decode
from .base import Benchmark, Expression, GroundTruth, load_json, sorted_ids


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

    def _group(self, exp: dict) -> str:
        return ""

    def _read(self) -> list[Expression]:
        videos = load_json(self._meta).get("videos", {})
        out = []
        for video in sorted(videos):
            info = videos[video]
            frames = tuple(str(f) for f in info.get("frames", []))
            for exp_id in sorted_ids(info.get("expressions", {})):
                e = info["expressions"][exp_id]
                text = e.get("exp") or e.get("exp_text") or ""
                as_list = lambda v: tuple(str(x) for x in (v if isinstance(v, list) else [v])) if v is not None else ()  # noqa: E731
                out.append(Expression(self.name, video, str(exp_id), " ".join(str(text).split()), frames,
                                      obj_ids=as_list(e.get("obj_id")), anno_ids=as_list(e.get("anno_id")),
                                      group=self._group(e)))
        return out

    def mask_dict(self) -> dict:
        if self._mask_dict is None:
            if not self.has_gt:
                raise InputError(f"{self.title} {self.split}: no mask_dict.json (ground truth is withheld)")
            self._mask_dict = load_json(self._mask_dict_path)
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

    def _paths(self) -> tuple[Path, Path, Path]:
        meta = self.root / f"meta_expressions_{self.split}_.json"
        if not meta.is_file() and (self.root / f"meta_expressions_{self.split}.json").is_file():
            meta = self.root / f"meta_expressions_{self.split}.json"
        return meta, self.root / "mask_dict.json", self.root / "JPEGImages"

    def _group(self, exp: dict) -> str:
        t = exp.get("type_id")
        return REVOS_TYPES.get(int(t), str(t)) if t is not None else "referring"

    def summarize(self, records: list[dict], run_dir: Path | None = None) -> dict:
        from ..tables import mean_of_groups, summarize_groups

        out = summarize_groups(self, records, [
            ("referring", "Referring", lambda r: r.get("group") == "referring"),
            ("reasoning", "Reasoning", lambda r: r.get("group") == "reasoning"),
        ])
        parts = [g for g in out["groups"] if g["n"]]
        overall = mean_of_groups(parts) if parts else {"J&F": float("nan"), "J": float("nan"),
                                                        "F": float("nan"), "n": 0}
        out["groups"].append({"name": "overall", "label": "Overall", **overall})
        out["headline"] = "overall"
        out["notes"].append("overall = mean of referring and reasoning (ReVOS official script)")
        return out
