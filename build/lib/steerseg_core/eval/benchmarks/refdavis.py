"""Ref-DAVIS17 (Khoreva et al.): DAVIS-2017 val with referring expressions from two annotators,
each writing a first-frame and a full-video expression per object — four "annotator" runs.

Layouts read:
* converted (ReferFormer and most successors): ``meta_expressions/valid/meta_expressions.json``
  (per video, four consecutive expressions per object: annot1, annot1 full video, annot2, annot2
  full video, each with ``obj_id``), frames ``valid/JPEGImages/<video>``, GT ``valid/Annotations``;
* original: ``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`` (lines
  ``<video> <obj_id> "<expression>"``) with ``DAVIS/JPEGImages/480p``,
  ``DAVIS/Annotations_unsupervised/480p`` and ``DAVIS/ImageSets/2017/val.txt``.

Scoring (as the converted-layout papers do): for each annotator run, each video's per-object
predictions are combined into one indexed mask (overlaps go to the lower object id), scored with
the DAVIS-2017 *unsupervised* protocol against the GT, and the four runs' J, F, J&F are averaged.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..folder_eval import object_scores
from ..masks_io import VOID, read_binary_masks, read_label_sequence
from ..metrics import statistics
from .base import Benchmark, Expression, GroundTruth, list_frames, load_json, sorted_ids

ANNOTATORS = ("annot1", "annot1_full_video", "annot2", "annot2_full_video")
TEXT_FILES = {a: f"Davis17_{a}.txt" for a in ANNOTATORS}
# Known misspellings of video names in the original text files.
VIDEO_FIXES = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
_LINE = re.compile(r'^(\S+)\s+(\d+)\s+(.*)$')


def parse_text_annotations(path: Path) -> dict[str, list[tuple[str, str]]]:
    """{video: [(obj_id, expression), ...] sorted by obj_id} from one Davis17_annot*.txt file."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    videos: dict[str, list[tuple[str, str]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise InputError(f"{path}:{n}: expected '<video> <obj_id> \"<expression>\"'")
        video, obj, exp = m.group(1), m.group(2), m.group(3).strip()
        if len(exp) >= 2 and exp[0] == exp[-1] == '"':
            exp = exp[1:-1]
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
            unsup = davis / "Annotations_unsupervised" / "480p"
            self._gt = unsup if unsup.is_dir() else davis / "Annotations" / "480p"
            self._val_list = davis / "ImageSets" / "2017" / "val.txt"
        else:
            raise InputError(f"{self.root}: no Ref-DAVIS17 layout found (expected "
                             "meta_expressions/valid/meta_expressions.json or davis_text_annotations/)")

    def frames_dir(self, video: str) -> Path:
        return self._images / video

    def _read(self) -> list[Expression]:
        return self._read_converted() if self.layout == "converted" else self._read_original()

    def _read_converted(self) -> list[Expression]:
        videos = load_json(self._meta).get("videos", {})
        out = []
        for video in sorted(videos):
            info = videos[video]
            frames = tuple(info.get("frames") or list_frames(self.frames_dir(video)))
            for i, exp_id in enumerate(sorted_ids(info.get("expressions", {}))):
                e = info["expressions"][exp_id]
                out.append(Expression(self.name, video, str(exp_id), e["exp"], frames,
                                      obj_ids=(str(e["obj_id"]),), group=ANNOTATORS[i % 4]))
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

    def annotator_scores(self, mask_root: Path, annotator: str,
                         exprs: list[Expression] | None = None) -> tuple[dict, list[str]]:
        """Official-style score of one annotator run from the masks written under ``mask_root``
        (``<video>/<exp_id>/<frame>.png``): J, F, J&F over GT objects, and the missing files."""
        exprs = [e for e in (exprs or self.expressions()) if e.group == annotator]
        by_video: dict[str, list[Expression]] = {}
        for e in exprs:
            by_video.setdefault(e.video, []).append(e)
        j_means, f_means, missing = [], [], []
        for video, items in sorted(by_video.items()):
            frames = items[0].frames
            gt, void = self.gt_labels(video, frames)
            n_obj = int(gt[0].max(initial=0)) or int(gt.max(initial=0))
            if n_obj == 0:
                continue
            pred = np.zeros(gt.shape, dtype=np.uint8)
            for e in sorted(items, key=lambda x: -int(x.obj_ids[0])):  # lower ids painted last: win overlaps
                masks, miss = read_binary_masks(Path(mask_root) / e.video / e.exp_id, frames, gt.shape[1:])
                missing.extend(miss)
                pred[masks] = int(e.obj_ids[0])
            js, fs = object_scores(gt, pred, "unsupervised", void, list(range(1, n_obj + 1)), name=video)
            for oid in js:
                j_means.append(statistics(js[oid]).mean)
                f_means.append(statistics(fs[oid]).mean)
        j = float(np.mean(j_means)) if j_means else float("nan")
        f = float(np.mean(f_means)) if f_means else float("nan")
        return {"J&F": (j + f) / 2, "J": j, "F": f, "n": len(j_means)}, missing

    def summarize(self, records: list[dict], run_dir: Path | None = None) -> dict:
        from ..tables import correlation_summary, mean_of_groups, score_records

        keys = {r["key"] for r in records}
        exprs = [e for e in self.expressions() if e.key in keys]
        groups = []
        notes = []
        masks = Path(run_dir) / "Annotations" if run_dir is not None else None
        if masks is not None and masks.is_dir():
            for a in ANNOTATORS:
                if any(e.group == a for e in exprs):
                    score, missing = self.annotator_scores(masks, a, exprs)
                    if missing:
                        notes.append(f"{a}: {len(missing)} mask files missing, scored as empty")
                    groups.append({"name": a, "label": a, **score})
            notes.insert(0, "per annotator run: DAVIS-2017 unsupervised protocol on combined masks")
        else:
            for a in ANNOTATORS:
                groups.append({"name": a, "label": a, **score_records(records, lambda r, a=a: r.get("group") == a)})
            notes.insert(0, "approximate: mean of per-expression scores (no masks to combine)")
        groups = [g for g in groups if g["n"]]
        if groups:
            groups.append({"name": "overall", "label": "mean of annotators", **mean_of_groups(groups)})
        return {**self.describe(), "groups": groups, "headline": "overall", "table": ["overall"],
                "correlation": correlation_summary(records), "notes": notes}
