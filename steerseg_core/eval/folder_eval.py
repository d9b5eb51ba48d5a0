"""Score a folder of predicted masks against a folder of ground truth (DAVIS layout), in the three
protocols the benchmarks use, in parallel over sequences. This is what ``eval-masks`` runs.

* ``semi-supervised``: DAVIS-2017 semi-supervised — first and last frames excluded, prediction
  object k scored against GT object k, no void handling (as the official code).
* ``unsupervised``: every frame, void (255) pixels ignored, up to 20 predicted objects matched to
  GT objects by the Hungarian method on mean (J + F) / 2.
* ``all-frames``: MeViS / ReVOS / ReasonVOS — every frame, foreground = any non-zero value, one
  score per sequence (a sequence may be nested, e.g. ``<video>/<expression>/<frame>.png``).

Dataset numbers are means over objects (sequences in all-frames mode); J&F-Mean = (J-Mean +
F-Mean) / 2, i.e. the mean over objects of (J + F) / 2.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets.masks_io import VOID, read_label_sequence
from ..errors import InputError
from .metrics import BOUND_TH, frame_scores, statistics

MODES = ("semi-supervised", "unsupervised", "all-frames")
MAX_PROPOSALS = 20
# Distinct ground-truth labels one sequence may have (DAVIS palettes hold 255 ids).
MAX_GT_OBJECTS = 255
KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")


@dataclass
class SequenceScores:
    """Per-frame J and F of each scored object of one sequence (keyed by GT object id)."""

    name: str
    frames: list[str]
    j: dict[str, np.ndarray] = field(default_factory=dict)
    f: dict[str, np.ndarray] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def find_sequences(gt_dir: Path) -> list[str]:
    """Relative paths (posix) of every folder under ``gt_dir`` that holds PNG files, sorted."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise InputError(f"ground-truth folder not found: {gt_dir}")
    seqs = sorted({p.parent.relative_to(gt_dir).as_posix() for p in gt_dir.rglob("*.png")})
    if not seqs:
        raise InputError(f"no PNG masks under {gt_dir} (expected <sequence>/<frame>.png)")
    return seqs


def object_scores(gt_labels: np.ndarray, pred_labels: np.ndarray, mode: str, void: np.ndarray | None,
                  gt_ids: Sequence[int], bound_th: float = BOUND_TH, name: str = "") -> tuple[
                      dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-frame J and F per GT object id for (T, H, W) label arrays in ``semi-supervised`` or
    ``unsupervised`` mode."""
    t_len = gt_labels.shape[0]
    n_gt = len(gt_ids)
    n_pred = int(pred_labels.max(initial=0))
    if mode == "semi-supervised":
        if n_pred > max(gt_ids):
            raise InputError(f"{name}: prediction has object id {n_pred} but the ground truth has "
                             f"{n_gt} object(s)")
        pred_ids = list(gt_ids)
    else:
        if n_pred > MAX_PROPOSALS:
            raise InputError(f"{name}: prediction has object id {n_pred}; at most {MAX_PROPOSALS} "
                             "proposals are allowed")
        pred_ids = list(range(1, max(n_pred, n_gt) + 1))
    m = len(pred_ids)
    j = np.zeros((m, n_gt, t_len))
    f = np.zeros((m, n_gt, t_len))
    gid = np.asarray(gt_ids)[:, None, None]
    pid = np.asarray(pred_ids)[:, None, None]
    for t in range(t_len):
        g = gt_labels[t][None] == gid
        p = pred_labels[t][None] == pid
        if mode == "semi-supervised":
            jt, ft = frame_scores(g, p, None, bound_th, pairs="diag")
            j[np.arange(n_gt), np.arange(n_gt), t], f[np.arange(n_gt), np.arange(n_gt), t] = jt, ft
        else:
            j[:, :, t], f[:, :, t] = frame_scores(g, p, None if void is None else void[t], bound_th)
    if mode == "semi-supervised":
        rows = cols = np.arange(n_gt)
    else:
        from scipy.optimize import linear_sum_assignment  # heavy: only when matching objects

        rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    js = {str(gt_ids[c]): j[r, c] for r, c in zip(rows, cols, strict=True)}
    fs = {str(gt_ids[c]): f[r, c] for r, c in zip(rows, cols, strict=True)}
    return js, fs


def ground_truth_ids(gt_labels: np.ndarray, name: str = "") -> list[int]:
    """The object ids of a sequence: the labels present in its first annotated frame (all frames
    when the first is empty). Taken from the labels present, never ``range(1, max + 1)``: a 16-bit
    mask whose largest value is 65,535 must not plan 65,535 objects. For DAVIS data (ids 1..n in the
    first frame) this is davis2017-evaluation's 1..n."""
    first = np.unique(gt_labels[0]) if len(gt_labels) else np.zeros(0, dtype=np.int64)
    ids = first[first != 0]
    if ids.size == 0:
        ids = np.unique(gt_labels)
        ids = ids[ids != 0]
    if ids.size > MAX_GT_OBJECTS:
        raise InputError(f"{name}: the ground truth has {ids.size} different labels; at most "
                         f"{MAX_GT_OBJECTS} objects are supported (save masks as 0/255 or indexed PNGs)")
    return [int(i) for i in ids]
def all_frames_jf(gt_labels: np.ndarray, pred_labels: np.ndarray,
                  bound_th: float = BOUND_TH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of the ``all-frames`` protocol for (T, H, W) label arrays: foreground =
    any non-zero value on either side."""
    gt_fg, pred_fg = np.asarray(gt_labels) != 0, np.asarray(pred_labels) != 0
    j = np.empty(len(gt_fg))
    f = np.empty(len(gt_fg))
    for t in range(len(gt_fg)):
        jt, ft = frame_scores(gt_fg[t][None], pred_fg[t][None], None, bound_th, pairs="diag")
        j[t], f[t] = jt[0], ft[0]
    return j, f


def stats_row(j: np.ndarray, f: np.ndarray) -> dict[str, float]:
    """The eval-masks row of one object from its per-frame J and F."""
    return _stats_row(j, f)


def evaluate_sequence(gt_dir: Path, pred_dir: Path, seq: str, mode: str,
                      bound_th: float = BOUND_TH) -> SequenceScores:
    """Read one sequence's GT and predictions and score it (runs in a worker process)."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    gt_seq, pred_seq = Path(gt_dir) / seq, Path(pred_dir) / seq
    gt_paths = sorted(gt_seq.glob("*.png"))
    names = [p.stem for p in gt_paths]
    gt_raw, gt_binary = read_label_sequence(gt_paths)
    eval_idx = list(range(1, len(names) - 1)) if mode == "semi-supervised" else list(range(len(names)))
    frames = [names[i] for i in eval_idx]
    pred_paths: list[Path | None] = []
    missing: list[str] = []
    for name in frames:
        p = pred_seq / f"{name}.png"
        if p.is_file():
            pred_paths.append(p)
        else:
            pred_paths.append(None)
            missing.append(f"{seq}/{name}.png")
    size = gt_raw.shape[1:]
    if frames:
        pred_raw, _ = read_label_sequence(pred_paths, size, [str(gt_paths[i]) for i in eval_idx])
    else:
        pred_raw = np.zeros((0, *size), dtype=np.uint8)
    out = SequenceScores(seq, frames, missing=missing)
    if mode == "all-frames":
        out.j["1"], out.f["1"] = all_frames_jf(gt_raw[eval_idx], pred_raw, bound_th)
        return out
    void = None if gt_binary else (gt_raw == VOID)
    gt_labels = np.where(void, 0, gt_raw) if void is not None else gt_raw
    gt_ids = ground_truth_ids(gt_labels, name=seq)
    if not gt_ids:
        return out  # no object to score: the sequence contributes nothing
    gt_eval = gt_labels[eval_idx]
    v_eval = void[eval_idx] if (void is not None and mode == "unsupervised") else None
    pred_labels = np.where(pred_raw == VOID, 0, pred_raw) if mode == "unsupervised" else pred_raw
    out.j, out.f = object_scores(gt_eval, pred_labels, mode, v_eval, gt_ids, bound_th, name=seq)
    return out


def _stats_row(j: np.ndarray, f: np.ndarray) -> dict[str, float]:
    sj, sf = statistics(j), statistics(f)
    return {"J&F-Mean": (sj.mean + sf.mean) / 2, "J-Mean": sj.mean, "J-Recall": sj.recall,
            "J-Decay": sj.decay, "F-Mean": sf.mean, "F-Recall": sf.recall, "F-Decay": sf.decay}


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {k: float("nan") for k in KEYS}
    out = {k: float(np.mean([r[k] for r in rows])) for k in KEYS if k != "J&F-Mean"}
    out = {"J&F-Mean": (out["J-Mean"] + out["F-Mean"]) / 2, **out}
    return out


def summarize_sequences(results: Sequence[SequenceScores], mode: str) -> dict:
    """Dataset metrics and the per-sequence (per-object) table, as the ``eval-masks`` JSON."""
    object_rows: list[dict[str, float]] = []
    sequences: dict[str, dict] = {}
    missing: list[str] = []
    for res in results:
        rows = {oid: _stats_row(res.j[oid], res.f[oid]) for oid in res.j}
        object_rows.extend(rows.values())
        missing.extend(res.missing)
        if not rows:
            sequences[res.name] = {"objects": {}, "frames": len(res.frames)}
            continue
        entry = dict(next(iter(rows.values()))) if len(rows) == 1 else _mean_rows(list(rows.values()))
        if len(rows) > 1:
            entry["objects"] = rows
        entry["frames"] = len(res.frames)
        sequences[res.name] = entry
    report = {"mode": mode, **_mean_rows(object_rows), "num_sequences": len(results),
              "num_objects": len(object_rows), "missing_predictions": missing, "sequences": sequences}
    return report


def evaluate_folders(gt_dir: Path, pred_dir: Path, mode: str = "semi-supervised",
                     sequences: Sequence[str] | None = None, workers: int | None = None,
                     bound_th: float = BOUND_TH,
                     progress: Callable[[int, int, str], None] | None = None) -> dict:
    """Score every sequence of ``gt_dir`` against ``pred_dir``; returns the report dict."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not Path(pred_dir).is_dir():
        raise InputError(f"prediction folder not found: {pred_dir}")
    seqs = list(sequences) if sequences else find_sequences(gt_dir)
    for s in seqs:
        if not (Path(gt_dir) / s).is_dir():
            raise InputError(f"sequence {s!r} not found in {gt_dir}")
    workers = workers or min(len(seqs), os.cpu_count() or 1, 8)
    results: list[SequenceScores] = []
    if workers <= 1 or len(seqs) == 1:
        for i, s in enumerate(seqs):
            results.append(evaluate_sequence(gt_dir, pred_dir, s, mode, bound_th))
            if progress:
                progress(i + 1, len(seqs), s)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(evaluate_sequence, gt_dir, pred_dir, s, mode, bound_th) for s in seqs]
            for i, fut in enumerate(futures):
                results.append(fut.result())
                if progress:
                    progress(i + 1, len(seqs), seqs[i])
    report = summarize_sequences(results, mode)
    report["gt_dir"], report["pred_dir"] = str(gt_dir), str(pred_dir)
    missing_seqs = [s for s in seqs if not (Path(pred_dir) / s).is_dir()]
    report["missing_sequences"] = missing_seqs
    return report
