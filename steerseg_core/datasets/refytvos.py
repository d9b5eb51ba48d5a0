"""Ref-YouTube-VOS valid: expressions from ``meta_expressions/valid/meta_expressions.json``
(``{"videos": {vid: {"expressions": {"0": {"exp"}}, "frames": [...]}}}``), frames
``valid/JPEGImages/<vid>/``. Its masks are withheld: the result is a server submission zip
``Annotations/<vid>/<exp_id>/<frame>.png`` (0/255), one PNG per listed frame
(``eval.submission``).

The valid file also lists the test-phase videos (507 in all); the videos named in
``meta_expressions/test/meta_expressions.json`` are left out, as ReferFormer's preparation does, and
202 remain for the valid server. Without that file the reader stops with a message, unless
``include_test=True`` asks for all listed videos. The dataset
authors' object-level file (``meta_expressions_valid.json``, optional) gives each expression its
object id and category: its full-video expressions, taken in object order, are the benchmark's
"0", "1", ... expressions.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .base import Benchmark, Expression, GroundTruth
from .meta import read_meta


def object_index(original_meta: Path, benchmark_meta: Path | None = None) -> dict[tuple[str, str], tuple[str, str]]:
    """{(video, exp_id): (obj_id, category)} from the object-level release file.

    With ``benchmark_meta`` given, each video's expression texts are checked against it and a
    mismatch is an error (so a wrong pairing never passes silently).
    """
    videos = read_meta(original_meta)
    bench = read_meta(benchmark_meta) if benchmark_meta else None
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for video, v in videos.items():
        texts = {e.exp_id: e.text for e in bench[video].expressions} if bench is not None and video in bench else {}
        for e in v.expressions:
            if bench is not None and texts.get(e.exp_id) != e.text:
                raise InputError(f"{video} expression {e.exp_id}: {texts.get(e.exp_id)!r} != {e.text!r}")
            out[(video, e.exp_id)] = (e.obj_ids[0], str(e.fields.get("category", "")))
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
        if include_test:
            self.options = {"include_test": True}
        # The test file mirrors the valid one: meta_expressions/{valid,test}/meta_expressions.json.
        self._test = (meta.parent.parent / "test" / "meta_expressions.json" if meta.parent.name == "valid"
                      else self.root / "meta_expressions" / "test" / "meta_expressions.json")
        self._images = self.root / "valid" / "JPEGImages"

    @property
    def has_gt(self) -> bool:
        return False

    def frames_dir(self, video: str) -> Path:
        return self._images / video

    def _read(self) -> list[Expression]:
        videos = read_meta(self._meta)
        skip: set[str] = set()
        if not self.include_test:
            if not self._test.is_file():
                raise InputError(
                    f"Ref-YouTube-VOS: {self._test} not found. The valid meta file also lists the test-phase "
                    "videos, which the valid server does not score; put the test meta file there (its video "
                    "names are removed, leaving 202 videos) or ask for every listed video explicitly "
                    "(--include-test-videos / include_test=True)")
            skip = set(read_meta(self._test))
        out = []
        for video in sorted(videos):
            if video in skip:
                continue
            v = videos[video]
            for e in v.expressions:
                out.append(Expression(self.name, video, e.exp_id, e.clean_text, v.frames or ()))
        return out

    def load_gt(self, expr: Expression) -> GroundTruth | None:
        return None
