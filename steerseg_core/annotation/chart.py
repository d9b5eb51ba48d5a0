"""The study's bar chart: True / False / Skip per annotator (and the consensus), and how often the
segmentation was accurate for correct versus incorrect reasoning.

Built on ``matplotlib.figure.Figure`` directly (no pyplot state), so Gradio's worker threads can
draw charts at the same time.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from .records import FALSE, TRUE
from .stats import StudyStats

COLOURS = {"True": "#2e7d32", "False": "#c62828", "Skip": "#9e9e9e", "accurate": "#1565c0",
           "inaccurate": "#ef6c00"}


def study_chart(stats: StudyStats) -> Figure:
    """Reasoning judgements per annotator, and (when segmentation accuracy is known: an evaluation
    run's J&F or annotators' answers) segmentation accuracy by reasoning verdict. Without any
    segmentation accuracy the second panel is left out rather than drawn empty."""
    with_seg = has_segmentation_accuracy(stats)
    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    if with_seg:
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    else:
        ax1, ax2 = fig.subplots(1, 1), None
    rows = list(stats.annotators)
    if len(rows) != 1:
        rows.append(stats.consensus)
    names = [r.who for r in rows] or ["(no answers yet)"]
    left = [0.0] * len(names)
    for key, attr in (("True", "n_true"), ("False", "n_false"), ("Skip", "n_skip")):
        values = [getattr(r, attr) for r in rows] or [0]
        ax1.barh(names, values, left=left, color=COLOURS[key], label=key)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for i, r in enumerate(rows):
        if not math.isnan(r.accuracy):
            ax1.text(left[i], i, f"  {100 * r.accuracy:.1f} %", va="center", fontsize=8)
    ax1.set_xlim(0, max(stats.n_items, 1) * 1.18)
    ax1.invert_yaxis()
    ax1.set_xlabel(f"items (of {stats.n_items})")
    ax1.set_title("Reasoning judgements", fontsize=10)
    ax1.legend(loc="lower right", fontsize=8)
    if ax2 is None:
        return fig

    groups = [("correct", TRUE), ("incorrect", FALSE)]
    acc = [stats.cross_table.cells[v]["accurate"] for _, v in groups]
    inacc = [stats.cross_table.cells[v]["inaccurate"] for _, v in groups]
    labels = [g for g, _ in groups]
    ax2.bar(labels, acc, color=COLOURS["accurate"], label="seg. accurate")
    ax2.bar(labels, inacc, bottom=acc, color=COLOURS["inaccurate"], label="seg. inaccurate")
    for i, (_, v) in enumerate(groups):
        a, known, rate = stats.cross_table.rate(v)
        if known:
            ax2.text(i, known, f"{a}/{known}\n{100 * rate:.1f} %", ha="center", va="bottom", fontsize=8)
    ax2.set_ylim(0, max([a + b for a, b in zip(acc, inacc, strict=True)] + [1]) * 1.3)
    ax2.set_title(f"Segmentation by reasoning\n({stats.cross_table.seg_source})", fontsize=9)
    ax2.legend(loc="upper right", fontsize=8)
    return fig


def has_segmentation_accuracy(stats: StudyStats) -> bool:
    """Whether any item's segmentation accuracy is known (J&F attached or answered)."""
    return stats.cross_table.seg_source != "none"


def save_chart(stats: StudyStats, path: Path | str) -> Path:
    path = Path(path)
    study_chart(stats).savefig(path, format="png")
    return path
