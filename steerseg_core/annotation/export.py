"""Export a study's judgements and statistics as CSV and JSON (and the chart as PNG).

File names come from the study id only (``study-<id>-...``), never from its user-given name.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from ..files import spreadsheet_safe
from . import store
from .stats import DEFAULT_JF_THRESHOLD, StudyStats, compute_statistics

JUDGEMENT_COLUMNS = ("study_id", "item", "video_id", "exp_id", "obj_id", "expression", "attributes",
                     "reasoning", "backbone", "prompt_version", "annotator", "question", "label", "note",
                     "revision", "created_at", "updated_at")
STATS_COLUMNS = ("who", "n_items", "n_labelled", "n_true", "n_false", "n_skip", "accuracy", "ci_low",
                 "ci_high")


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def export_study(
    db_path: Path | str, study_id: int, out_dir: Path | str, jf_threshold: float = DEFAULT_JF_THRESHOLD,
    chart: bool = True,
) -> dict[str, Path]:
    """Write judgements (CSV, JSON with samples and answer history), statistics (JSON, CSV) and the
    chart (PNG) into ``out_dir``; returns {kind: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = store.get_study(db_path, study_id)
    samples = store.get_samples(db_path, study.id)
    judgements = store.get_judgements(db_path, study.id)
    history = store.get_history(db_path, study.id)
    scores = store.get_seg_scores(db_path, study.id)
    stats: StudyStats = compute_statistics(study.id, study.name, samples, judgements, scores, jf_threshold)
    by_id = {s.id: s for s in samples}
    stem = f"study-{int(study.id)}"
    paths: dict[str, Path] = {}

    rows = []
    for j in sorted(judgements, key=lambda j: (by_id[j.sample_id].position, j.annotator, j.question)):
        s = by_id[j.sample_id]
        rows.append({
            "study_id": study.id, "item": s.position + 1, "video_id": s.video_id, "exp_id": s.exp_id,
            "obj_id": s.obj_id, "expression": s.expression, "attributes": ", ".join(s.attributes or ()),
            "reasoning": s.reasoning or "", "backbone": s.backbone, "prompt_version": s.prompt_version,
            "annotator": j.annotator, "question": j.question, "label": j.label, "note": j.note,
            "revision": j.revision, "created_at": j.created_at, "updated_at": j.updated_at})
    paths["judgements_csv"] = out / f"{stem}-judgements.csv"
    with paths["judgements_csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=JUDGEMENT_COLUMNS)
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)

    paths["judgements_json"] = out / f"{stem}-judgements.json"
    _dump(paths["judgements_json"], {
        "study": asdict(study),
        "samples": [{**asdict(s), "jf": scores.get(s.id)} for s in samples],
        "judgements": [asdict(j) for j in judgements],
        "history": history,
    })

    paths["stats_json"] = out / f"{stem}-stats.json"
    _dump(paths["stats_json"], {**stats.to_dict(), "summary": stats.summary_lines()})

    paths["stats_csv"] = out / f"{stem}-stats.csv"
    with paths["stats_csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(("section",) + STATS_COLUMNS)
        for r in (*stats.annotators, stats.consensus):
            writer.writerow(("reasoning",) + tuple(_cell(getattr(r, c)) for c in STATS_COLUMNS))
        for r in stats.segmentation_annotators:
            writer.writerow(("segmentation",) + tuple(_cell(getattr(r, c)) for c in STATS_COLUMNS))
        writer.writerow(())
        writer.writerow(("agreement", "a", "b", "n_items", "percent_agreement", "kappa"))
        for p in stats.pairs:
            writer.writerow(("cohen", _cell(p.a), _cell(p.b), p.n_items, _cell(p.percent_agreement), _cell(p.kappa)))
        if len(stats.annotators) > 2:
            writer.writerow(("fleiss", "all", "", stats.fleiss_items, "", _cell(stats.fleiss_kappa)))
        writer.writerow(())
        writer.writerow(("cross_table", "reasoning", "seg_accurate", "seg_inaccurate", "seg_unknown",
                         "accurate_rate", _cell(stats.cross_table.seg_source)))
        for verdict, cells in stats.cross_table.cells.items():
            writer.writerow(("cross_table", verdict, cells["accurate"], cells["inaccurate"], cells["unknown"],
                             _cell(stats.cross_table.rate(verdict)[2])))

    if chart:
        from .chart import save_chart  # matplotlib only when a chart is wanted

        paths["chart_png"] = save_chart(stats, out / f"{stem}-chart.png")
    return paths


def _cell(x: object) -> object:
    """A CSV cell: floats compactly, text made spreadsheet-safe (user text — expressions, notes,
    names — may start with = + - @), other values as they are."""
    if isinstance(x, float):
        return "" if x != x else f"{x:.6g}"
    if isinstance(x, str):
        return spreadsheet_safe(x)
    return x
