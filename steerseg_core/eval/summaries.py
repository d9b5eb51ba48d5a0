"""How each benchmark's per-expression records become its official numbers (the readers in
``steerseg_core.datasets`` only read; the scoring protocols live here).

* Ref-DAVIS17: per annotator run, each video's per-object masks combined into one indexed mask and
  scored with the DAVIS-2017 unsupervised protocol (objects = largest id in frame 0, as the
  official evaluation counts them); the four runs averaged.
* ReVOS: referring (type 0) and reasoning (type 1) groups, each the mean over its expressions of
  J, F, A and R; overall = the unweighted mean of the two groups, for every metric — exactly as
  its official script. No-target expressions are run but not scored.
* ReasonVOS: one mean over all expressions. Its official script skips expressions without a
  prediction folder; we count them as zero (an empty prediction) and, when any are missing, also
  report the official-style number over the predicted ones.
* MeViS, Ref-YouTube-VOS: one mean over expressions (Ref-YouTube-VOS has no public GT).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..datasets import Benchmark, Expression, GroundTruth
from ..datasets.masks_io import read_binary_masks
from ..datasets.refdavis import ANNOTATORS, RefDavis17
from .folder_eval import object_scores
from .metrics import revos_accuracy_robustness, statistics
from .tables import correlation_summary, mean_of_groups, score_records, summarize_groups


def extra_scores(bench: Benchmark, expr: Expression, clip_names: Sequence[str], masks: np.ndarray,
                 gt: GroundTruth | None) -> dict:
    """Benchmark-specific per-expression scores beyond J and F (ReVOS: A and R over all frames)."""
    if bench.name != "revos" or gt is None or not bench.foreground_path.is_file():
        return {}
    index = {n: i for i, n in enumerate(clip_names)}
    pred = np.zeros(gt.masks.shape, dtype=bool)
    for t, name in enumerate(gt.frames):
        if name in index:
            pred[t] = masks[index[name]]
    acc, rob = revos_accuracy_robustness(gt.masks, pred, bench.load_foreground_counts(expr))
    return {"A": float(acc.mean()), "R": float(rob.mean())}


def prediction_missing(record: dict) -> bool:
    """No prediction exists for this expression (failed in a run, or no folder when scoring one)."""
    return record.get("status") != "ok" or bool(record.get("prediction_missing"))


def summarize(bench: Benchmark, records: list[dict], run_dir: Path | None = None) -> dict:
    """The benchmark's numbers from per-expression records (``run_dir``: where the masks are)."""
    if not bench.has_gt:
        return {**bench.describe(), "groups": [], "headline": None, "correlation": correlation_summary(records),
                "notes": ["ground truth withheld: upload submission.zip to the benchmark's server"]}
    if isinstance(bench, RefDavis17):
        return _refdavis(bench, records, run_dir)
    if bench.name == "revos":
        return _revos(bench, records)
    if bench.name == "reasonvos":
        return _reasonvos(bench, records)
    out = summarize_groups(bench, records, [("overall", "", None)])
    if bench.name == "mevis":
        out["show_split"] = True
        out["notes"].append(f"MeViS split {bench.split}" + (
            " (local, public masks); the paper's MeViS number is on the server's valid split"
            if bench.split == "valid_u" else ""))
    return out


def _revos(bench: Benchmark, records: list[dict]) -> dict:
    out = summarize_groups(bench, records, [
        ("referring", "Referring", lambda r: r.get("group") == "referring"),
        ("reasoning", "Reasoning", lambda r: r.get("group") == "reasoning"),
    ])
    parts = [g for g in out["groups"] if g["n"]]
    nan = float("nan")
    overall = mean_of_groups(parts) if parts else {"J&F": nan, "J": nan, "F": nan, "n": 0}
    out["groups"].append({"name": "overall", "label": "Overall", **overall})
    out["headline"] = "overall"
    out["notes"].append("overall = unweighted mean of the referring and reasoning groups, for J, F, A and R "
                        "(ReVOS official script)")
    if any(r.get("J") is not None and "R" not in r for r in records):
        out["notes"].append("R and A not computed for some expressions: mask_dict_foreground.json missing")
    else:
        out["notes"].append("A, R as the official script: predictions read as 0/255 (a false-positive pixel "
                            "weighs 255 in R; A counts only pixels background in both)")
    return out


def _reasonvos(bench: Benchmark, records: list[dict]) -> dict:
    out = summarize_groups(bench, records, [("overall", "", None)])
    missing = [r for r in records if prediction_missing(r)]
    if missing:
        official = score_records(records, lambda r: not prediction_missing(r))
        out["groups"].append({"name": "official", "label": "predicted only", **official})
        out["table"] = ["overall"]
        out["notes"].append(f"{len(missing)} of {len(records)} expressions have no prediction: counted as zero "
                            f"in the headline; the official script skips them, giving J&F "
                            f"{100 * official['J&F']:.1f} over the {official['n']} predicted")
    return out


def annotator_scores(bench: RefDavis17, mask_root: Path, annotator: str,
                     exprs: list[Expression] | None = None) -> tuple[dict, list[str]]:
    """Official-style score of one Ref-DAVIS17 annotator run from the masks under ``mask_root``
    (``<video>/<exp_id>/<frame>.png``): J, F, J&F over GT objects, and the missing files."""
    exprs = [e for e in (exprs or bench.expressions()) if e.group == annotator]
    by_video: dict[str, list[Expression]] = {}
    for e in exprs:
        by_video.setdefault(e.video, []).append(e)
    j_means, f_means, missing = [], [], []
    for video, items in sorted(by_video.items()):
        frames = items[0].frames
        gt, void = bench.gt_labels(video, frames)
        n_obj = bench.object_count(gt)
        if n_obj == 0:
            continue
        pred = np.zeros(gt.shape, dtype=np.uint8)
        for e in sorted(items, key=lambda x: -int(x.obj_ids[0])):  # lower ids painted last: win overlaps
            masks, miss = read_binary_masks(Path(mask_root) / e.key, frames, gt.shape[1:])
            missing.extend(miss)
            pred[masks] = int(e.obj_ids[0])
        js, fs = object_scores(gt, pred, "unsupervised", void, list(range(1, n_obj + 1)), name=video)
        for oid in js:
            j_means.append(statistics(js[oid]).mean)
            f_means.append(statistics(fs[oid]).mean)
    j = float(np.mean(j_means)) if j_means else float("nan")
    f = float(np.mean(f_means)) if f_means else float("nan")
    return {"J&F": (j + f) / 2, "J": j, "F": f, "n": len(j_means)}, missing


def _refdavis(bench: RefDavis17, records: list[dict], run_dir: Path | None) -> dict:
    keys = {r["key"] for r in records}
    exprs = [e for e in bench.expressions() if e.key in keys]
    groups = []
    notes = []
    masks = Path(run_dir) / "Annotations" if run_dir is not None else None
    if masks is not None and masks.is_dir():
        for a in ANNOTATORS:
            if any(e.group == a for e in exprs):
                score, missing = annotator_scores(bench, masks, a, exprs)
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
    return {**bench.describe(), "groups": groups, "headline": "overall", "table": ["overall"],
            "correlation": correlation_summary(records), "notes": notes}
