"""Ref-YouTube-VOS valid: expressions from ``meta_expressions/valid/meta_expressions.json``
(``{"videos": {vid: {"expressions": {"0": {"exp"}}, "frames": [...]}}}``), frames
``valid/JPEGImages/<vid>/``. Its masks are withheld: the result is a server submission zip
``Annotations/<vid>/<exp_id>/<frame>.png`` (0/255), one PNG per listed frame.

The valid file also lists the test-phase videos; when ``meta_expressions/test/meta_expressions.json``
is present they are left out (the valid server scores the remaining 202 videos). The dataset
authors' object-level file (``meta_expressions_valid.json``, optional) gives each expression its
object id and category: its full-video expressions, taken in object order, are the benchmark's
"0", "1", ... expressions.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..masks_io import binary_png
from .base import Benchmark, Expression, GroundTruth, load_json, sorted_ids


def object_index(original_meta: Path, benchmark_meta: Path | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """{(video, exp_id): (obj_id, category)} from the object-level release file.

    With ``benchmark_meta`` given, each video's expression texts are checked against it and a
    mismatch is an error (so a wrong pairing never passes silently).
    """
    videos = load_json(original_meta).get("videos", {})
    bench = load_json(benchmark_meta).get("videos", {}) if benchmark_meta else None
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for video, info in videos.items():
        i = 0
        for obj_id in sorted_ids(info.get("objects", {})):
            obj = info["objects"][obj_id]
            for text in obj.get("expressions", []):
                exp_id = str(i)
                if bench is not None:
                    got = bench.get(video, {}).get("expressions", {}).get(exp_id, {}).get("exp")
                    if got != text:
                        raise InputError(f"{video} expression {exp_id}: {got!r} != {text!r}")
                out[(video, exp_id)] = (str(obj_id), str(obj.get("category", "")))
                i += 1
    return out


class RefYouTubeVOS(Benchmark):
    name = "refytvos"
    title = "Ref-YouTube-VOS"
    splits = ("valid",)
    protocol = "server submission"

    def __init__(self, root: Path | str, split: str | None = None, include_test: bool = False) -> None:
        super().__init__(root, split)
        candidates = [self.root / "meta_expressions" / "valid" / "meta_expressions.json",
                      self.root / "valid" / "meta_expressions.json", self.root / "meta_expressions.json"]
        if self.root.is_file():
            candidates.insert(0, self.root)
            self.root = self.root.parent
        meta = next((c for c in candidates if c.is_file()), None)
        if meta is None:
            raise InputError(f"Ref-YouTube-VOS: meta_expressions.json not found under {self.root}")
        self._meta = meta
        self.include_test = include_test
        self._test = self.root / "meta_expressions" / "test" / "meta_expressions.json"
        self._images = self.root / "valid" / "JPEGImages"

    @property
    def has_gt(self) -> bool:
        return False

    def frames_dir(self, video: str) -> Path:
        return self._images / video

    def _read(self) -> list[Expression]:
        videos = load_json(self._meta).get("videos", {})
        skip: set[str] = set()
        if not self.include_test and self._test.is_file():
            skip = set(load_json(self._test).get("videos", {}))
        out = []
        for video in sorted(videos):
            if video in skip:
                continue
            info = videos[video]
            frames = tuple(str(f) for f in info.get("frames", []))
            for exp_id in sorted_ids(info.get("expressions", {})):
                text = info["expressions"][exp_id]["exp"]
                out.append(Expression(self.name, video, str(exp_id), " ".join(text.split()), frames))
        return out

    def load_gt(self, expr: Expression) -> GroundTruth | None:
        return None


def write_submission_zip(bench: Benchmark, mask_root: Path, out_zip: Path,
                         expressions: list[Expression] | None = None) -> dict:
    """Zip ``<prefix><vid>/<exp_id>/<frame>.png`` for every expression and listed frame (prefix
    ``Annotations/`` for Ref-YouTube-VOS, none for MeViS).

    Masks not found under ``mask_root`` (``<vid>/<exp_id>/<frame>.png``) are written empty, at the
    frame's size, and counted, so the server always gets a complete submission.
    """
    exprs = expressions if expressions is not None else bench.expressions()
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(out_zip.name + ".tmp")
    filled = 0
    written = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for e in exprs:
            empty: bytes | None = None
            for f in e.frames:
                src = Path(mask_root) / e.video / e.exp_id / f"{f}.png"
                arc = f"{bench.submission_prefix}{e.video}/{e.exp_id}/{f}.png"
                if src.is_file():
                    zf.write(src, arc)
                else:
                    if empty is None:
                        empty = binary_png(np.zeros(bench.frame_size(e), dtype=bool))
                    zf.writestr(arc, empty)
                    filled += 1
                written += 1
    tmp.replace(out_zip)
    return {"path": str(out_zip), "files": written, "filled_empty": filled}
