"""Turn per-expression records into the paper's numbers and tables (JSON + markdown).

A record is the JSON the runner writes per expression (``J``, ``F``: that expression's mean over
its annotated frames; ``group``; ``correlation``; ``tracklets``...). Benchmarks choose how records
group (ReVOS: referring / reasoning, overall = mean of the two, as its official script);
everything here is plain arithmetic on those records, so a table can be rebuilt at any time.
Values are stored in [0, 1] and printed ×100 with one decimal, like the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

METRICS = ("J&F", "J", "F")
EXTRA_METRICS = ("A", "R")  # ReVOS accuracy and robustness, averaged like J and F where records have them


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for v in values:
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            out.append(v)
    return out


def score_records(records: Sequence[dict], keep: Callable[[dict], bool] | None = None) -> dict:
    """Mean J and F over the scored records that ``keep`` accepts; J&F = (J + F) / 2."""
    rows = [r for r in records if r.get("J") is not None and (keep is None or keep(r))]
    js, fs = _finite(r["J"] for r in rows), _finite(r["F"] for r in rows)
    j = float(np.mean(js)) if js else float("nan")
    f = float(np.mean(fs)) if fs else float("nan")
    out = {"J&F": (j + f) / 2, "J": j, "F": f, "n": len(rows)}
    for m in EXTRA_METRICS:
        vals = _finite(r.get(m) for r in rows)
        if vals:
            out[m] = float(np.mean(vals))
    return out


def mean_of_groups(groups: Sequence[dict]) -> dict:
    """Unweighted mean of the groups' J, F (and A, R where every group has them)."""
    j = float(np.mean([g["J"] for g in groups]))
    f = float(np.mean([g["F"] for g in groups]))
    out = {"J&F": (j + f) / 2, "J": j, "F": f, "n": int(sum(g["n"] for g in groups))}
    for m in EXTRA_METRICS:
        if all(m in g for g in groups):
            out[m] = float(np.mean([g[m] for g in groups]))
    return out


def correlation_summary(records: Sequence[dict]) -> dict:
    """Mean rollout–mask correlation (frame / video branch) over the expressions that have one."""
    frame = _finite((r.get("correlation") or {}).get("frame") for r in records)
    video = _finite((r.get("correlation") or {}).get("video") for r in records)
    return {"frame": float(np.mean(frame)) if frame else None,
            "video": float(np.mean(video)) if video else None,
            "n": max(len(frame), len(video))}


def summarize_groups(bench: Any, records: Sequence[dict],
                     groups: Sequence[tuple[str, str, Callable[[dict], bool] | None]]) -> dict:
    """Summary with one entry per (name, label, predicate) group; the last is the headline."""
    out_groups = [{"name": name, "label": label, **score_records(records, keep)} for name, label, keep in groups]
    return {**bench.describe(), "groups": out_groups, "headline": out_groups[-1]["name"],
            "correlation": correlation_summary(records), "notes": []}


def method_label(config: dict | None) -> str:
    """A short row label from a run's configuration: backbone and the ablated components."""
    if not config:
        return "SteerSeg"
    g = config.get("grounding", {})
    backbone = str(g.get("backbone", "")).rsplit("/", 1)[-1] or "?"
    parts = [backbone]
    if g.get("use_cot") is False:
        parts.append("no CoT")
    source = str(g.get("soft_prompts") or "").strip().lower()
    if g.get("use_soft_prompts") is False or source in ("", "none", "off"):
        parts.append("no soft prompts")
    elif source == "seed":
        parts.append("untrained seed prompts")
    elif g.get("n_prompts") not in (None, 64):
        parts.append(f"N_p={g['n_prompts']}")
    alpha = config.get("segment", {}).get("alpha")
    if alpha is not None and abs(float(alpha) - 0.3) > 1e-9:
        parts.append(f"α={alpha:g}")
    return f"SteerSeg ({', '.join(parts)})"


def pct(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    return "–" if not math.isfinite(v) else f"{100 * v:.1f}"


def _corr(v: Any) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def summary_markdown(summary: dict, label: str | None = None) -> str:
    """The benchmark's table in the paper's layout (J&F, J, F per group), plus run facts."""
    label = label or summary.get("label") or method_label(summary.get("config"))
    shown = summary.get("table")
    groups = [g for g in summary.get("groups", []) if not shown or g["name"] in shown]
    metrics = METRICS + tuple(m for m in EXTRA_METRICS if groups and all(m in g for g in groups))
    lines = [f"## {summary.get('title', summary.get('benchmark'))} ({summary.get('split', '')} split)", ""]
    if not groups:
        lines.append("No ground truth: " + "; ".join(summary.get("notes", [])))
    else:
        multi = len(groups) > 1
        head = ["Method"] + [f"{g['label'] + ' ' if multi and g['label'] else ''}{m}" for g in groups for m in metrics]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        lines.append("| " + " | ".join([label] + [pct(g[m]) for g in groups for m in metrics]) + " |")
        lines.append("")
        lines.append("Scored per group: " + ", ".join(f"{g['label'] or g['name']} {pct(g['J&F'])} (n={g['n']})"
                                                     for g in summary.get("groups", [])))
        for note in summary.get("notes", []):
            lines.append(f"- {note}")
    corr = summary.get("correlation") or {}
    if corr.get("n"):
        lines.append(f"- Rollout–mask correlation (Table 3): frame {_corr(corr.get('frame'))}, "
                     f"video {_corr(corr.get('video'))} over {corr['n']} expressions")
    ex = summary.get("expressions")
    if ex:
        state = "complete" if summary.get("complete") else "PARTIAL"
        lines.append(f"- {state}: {ex.get('done', 0)}/{ex.get('total', 0)} expressions, "
                     f"{ex.get('errors', 0)} errors")
    return "\n".join(lines) + "\n"


def headline(summary: dict) -> dict | None:
    for g in summary.get("groups", []):
        if g["name"] == summary.get("headline"):
            return g
    return None


def grid_markdown(title: str, rows: Sequence[tuple[str, dict[str, dict]]], with_corr: bool = False) -> str:
    """An ablation table: one row per variant, J&F (and optionally the correlations) per benchmark.

    rows: (variant label, {benchmark title: summary}).
    """
    benches: list[str] = []
    for _, by_bench in rows:
        for b in by_bench:
            if b not in benches:
                benches.append(b)
    head = ["Variant"] + [f"{b} J&F" for b in benches]
    if with_corr:
        head += [f"{b} r_frm / r_vid" for b in benches]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, by_bench in rows:
        cells = [label]
        for b in benches:
            s = by_bench.get(b)
            h = headline(s) if s else None
            cells.append(pct(h["J&F"]) if h else "–")
        if with_corr:
            for b in benches:
                c = (by_bench.get(b) or {}).get("correlation") or {}
                cells.append(f"{_corr(c.get('frame'))} / {_corr(c.get('video'))}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main_table_markdown(summaries: Sequence[dict], label: str | None = None) -> str:
    """Several benchmarks' summaries side by side (the paper's main results row)."""
    head = ["Method"]
    cells = [label or method_label(summaries[0].get("config") if summaries else None)]
    for s in summaries:
        shown = [g for g in s.get("groups", []) if not s.get("table") or g["name"] in s["table"]]
        for g in shown:
            name = s.get("title", s.get("benchmark"))
            if s.get("show_split"):
                name += f" {s.get('split', '')}"
            if len(shown) > 1:
                name += f" {g['label']}"
            for m in METRICS:
                head.append(f"{name} {m}")
                cells.append(pct(g[m]))
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      "| " + " | ".join(cells) + " |"]) + "\n"
