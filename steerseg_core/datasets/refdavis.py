"""Ref-DAVIS17 (Khoreva et al.): DAVIS-2017 val with referring expressions from two annotators,
each writing a first-frame and a full-video expression per object — four "annotator" runs.

Layouts read:
* converted (ReferFormer and most successors): ``meta_expressions/valid/meta_expressions.json``
  (per video, four consecutive expressions per object: annot1, annot1 full video, annot2, annot2
  full video, each with ``obj_id``), frames ``valid/JPEGImages/<video>``, GT ``valid/Annotations``;
* original: ``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`` (lines
  ``<video> <obj_id> "<expression>"``) with ``DAVIS/JPEGImages/480p``,
  ``DAVIS/Annotations_unsupervised/480p`` and ``DAVIS/ImageSets/2017/val.txt``.

The text files are read as the reference preparation (ReferFormer's conversion) reads them:
``annot1`` files as UTF-8, ``annot2`` files as Latin-1, the expression = the words after the object
id joined by single spaces with the enclosing quotes cut off. The ground truth is the
*unsupervised* annotation (its objects are the ones the expressions name); the semi-supervised
``Annotations/480p`` masks number other objects and are never used in its place.

Scoring (as the converted-layout papers do) is in ``eval.summaries``: per annotator run, each
video's per-object predictions are combined into one indexed mask and scored with the DAVIS-2017
unsupervised protocol, and the four runs' J, F, J&F are averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .base import Benchmark, Expression, GroundTruth, list_frames
from .masks_io import VOID, read_label_sequence
from .meta import read_meta

ANNOTATORS = ("annot1", "annot1_full_video", "annot2", "annot2_full_video")
TEXT_FILES = {a: f"Davis17_{a}.txt" for a in ANNOTATORS}
# Known misspellings of video names in the original text files.
VIDEO_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}


def text_encoding(path: Path) -> str:
    """The encoding the reference preparation reads a text file with (annot2: Latin-1)."""
    return "latin-1" if "annot2" in Path(path).name else "utf-8"


def parse_text_annotations(path: Path, encoding: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """{video: [(obj_id, expression), ...] sorted by obj_id} from one Davis17_annot*.txt file."""
    encoding = encoding or text_encoding(path)
    try:
        text = Path(path).read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not {encoding} text: {err}") from err
    videos: dict[str, list[tuple[str, str]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) < 3 or not words[1].isdigit():
            raise InputError(f"{path}:{n}: expected '<video> <obj_id> \"<expression>\"'")
        video, obj = words[0], words[1]
        exp = " ".join(words[2:])[1:-1]  # the reference cuts the enclosing quotes this way
        videos.setdefault(VIDEO_FIXES.get(video, video), []).append((str(int(obj)), exp))
    for v in videos.values():
        v.sort(key=lambda e: int(e[0]))
    return videos


class RefDavis17(Benchmark):
    name = "refdavis"
    title = "Ref-DAVIS17"
    splits = ("valid",)
    protocol = "davis-unsupervised x4 annotators"

    def __init__(self, root: Path | str, split: str | None = None) -> None:
        super().__init__(root, split)
        meta = self.root / "meta_expressions" / "valid" / "meta_expressions.json"
        if meta.is_file():
            self.layout = "converted"
            self._meta = meta
            self._images = self.root / "valid" / "JPEGImages"
            self._gt = self.root / "valid" / "Annotations"
        elif (self.root / "davis_text_annotations").is_dir():
            self.layout = "original"
            davis = self.root / "DAVIS" if (self.root / "DAVIS").is_dir() else self.root
            self._images = davis / "JPEGImages" / "480p"
            self._gt = davis / "Annotations_unsupervised" / "480p"
            if not self._gt.is_dir():
                raise InputError(f"Ref-DAVIS17: {self._gt} not found. The expressions name the objects of the "
                                 "DAVIS-2017 unsupervised annotations (DAVIS-2017-Unsupervised-trainval-480p); "
                                 "the semi-supervised Annotations/480p number other objects")
            self._val_list = davis / "ImageSets" / "2017" / "val.txt"
        else:
            raise InputError(f"{self.root}: no Ref-DAVIS17 layout found (expected "
                             "meta_expressions/valid/meta_expressions.json or davis_text_annotations/)")

    def frames_dir(self, video: str) -> Path:
        return self._images / video

    def _read(self) -> list[Expression]:
        return self._read_converted() if self.layout == "converted" else self._read_original()

    def _read_converted(self) -> list[Expression]:
        videos = read_meta(self._meta)
        out = []
        for video in sorted(videos):
            v = videos[video]
            frames = v.frames or list_frames(self.frames_dir(video))
            for i, e in enumerate(v.expressions):
                if len(e.obj_ids) != 1:
                    raise InputError(f"Ref-DAVIS17: {video} expression {e.exp_id} needs one obj_id")
                out.append(Expression(self.name, video, e.exp_id, e.clean_text, frames,
                                      obj_ids=e.obj_ids, group=ANNOTATORS[i % 4]))
        return out

    def _read_original(self) -> list[Expression]:
        folder = self.root / "davis_text_annotations"
        per_annot = {a: parse_text_annotations(folder / f) for a, f in TEXT_FILES.items()}
        if self._val_list.is_file():
            videos = [v.strip() for v in self._val_list.read_text().splitlines() if v.strip()]
        else:
            videos = sorted(set().union(*per_annot.values()))
        out = []
        for video in videos:
            lists = [per_annot[a].get(video, []) for a in ANNOTATORS]
            n_obj = min(len(x) for x in lists)
            if n_obj == 0:
                continue
            frames = list_frames(self.frames_dir(video))
            for k in range(n_obj):
                for a_idx, a in enumerate(ANNOTATORS):
                    obj, exp = lists[a_idx][k]
                    out.append(Expression(self.name, video, str(4 * k + a_idx), exp, frames,
                                          obj_ids=(obj,), group=a))
        return out

    def gt_labels(self, video: str, frames: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
        """(T, H, W) object ids (void removed) and the void mask of a video's GT."""
        paths = [self._gt / video / f"{f}.png" for f in frames]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputError(f"ground truth missing: {missing[0]}")
        raw, binary = read_label_sequence(paths)
        if binary:
            return raw, None
        void = raw == VOID
        return np.where(void, 0, raw), void

    def load_gt(self, expr: Expression) -> GroundTruth:
        labels, _ = self.gt_labels(expr.video, expr.frames)
        return GroundTruth(expr.frames, labels == int(expr.obj_ids[0]))

    def object_count(self, labels: np.ndarray) -> int:
        """Objects of a video as the DAVIS-2017 evaluation counts them: the largest id in frame 0."""
        return int(labels[0].max(initial=0))
