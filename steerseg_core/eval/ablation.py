"""The paper's ablations as named grids: each variant is a configuration change, run as an
ordinary (resumable, shardable) benchmark run under ``OUT/<benchmark>/<variant>/``; the table
reads the runs' summaries, so adding a benchmark later just adds a column.

* ``components`` — CoT on/off × soft prompts on/off (Table 3, with the rollout–mask correlation).
* ``n-prompts`` — N_p ∈ {4, 8, 16, 32, 64, 128}, one soft-prompt checkpoint each (Table 4).
* ``normalisation`` — S_frm min-max per keyframe vs jointly over the keyframes (not in the paper).
* ``alpha`` — s = α·s_frm + (1−α)·s_vid swept over stored runs: every tracklet's scores and J/F
  are in the records, so no model runs again.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SteerSegConfig
from ..datasets import open_benchmark
from ..errors import InputError
from .runner import PredictorFactory, RunDir, RunOptions, run_benchmark
from .summaries import summarize
from .tables import METRICS, grid_markdown, headline, pct

N_PROMPTS = (4, 8, 16, 32, 64, 128)
GRIDS = ("components", "n-prompts", "alpha", "normalisation")


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


def component_variants() -> list[Variant]:
    def v(name: str, label: str, cot: bool, sp: bool) -> Variant:
        return Variant(name, label, {"grounding": {"use_cot": cot, "use_soft_prompts": sp}})

    return [v("none", "none", False, False), v("cot", "CoT", True, False),
            v("soft-prompts", "soft prompts", False, True), v("both", "CoT + soft prompts", True, True)]


def normalisation_variants() -> list[Variant]:
    """S_frm min-max normalisation per keyframe vs jointly over the keyframes (the paper is silent)."""
    return [Variant("per-keyframe", "S_frm per keyframe", {"grounding": {"frame_normalisation": "per_keyframe"}}),
            Variant("joint", "S_frm joint", {"grounding": {"frame_normalisation": "joint"}})]


def n_prompt_variants(checkpoints: dict[int, str]) -> list[Variant]:
    if not checkpoints:
        raise InputError("n-prompts needs --checkpoints N=PATH for each N_p to compare")
    return [Variant(f"np{n}", f"N_p = {n}", {"grounding": {"n_prompts": n, "soft_prompts": str(path),
                                                           "use_soft_prompts": True}})
            for n, path in sorted(checkpoints.items())]


def parse_checkpoints(items: Sequence[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items:
        n, sep, path = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise InputError(f"--checkpoints {item!r}: expected N=PATH, e.g. 64=checkpoints/np64.safetensors")
        out[int(n)] = path
    return out


def apply_overrides(config: SteerSegConfig, overrides: dict[str, dict[str, Any]]) -> SteerSegConfig:
    data = copy.deepcopy(config.to_dict())
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return SteerSegConfig.from_dict(data)


def run_grid(variants: Sequence[Variant], benchmark: str, data_root: Path | str, out: Path | str,
             base: SteerSegConfig | None = None, predictor: PredictorFactory | None = None,
             options: RunOptions | None = None, split: str | None = None) -> dict[str, dict]:
    """Run each variant on the benchmark (resuming what is done); {variant name: summary}."""
    from ..grounding.soft_prompts import NONE_SOURCES

    base = base or SteerSegConfig()
    for v in variants:  # a "soft prompts" row without prompts would silently repeat the "none" row
        g = apply_overrides(base, v.overrides).grounding
        if g.use_soft_prompts and (g.soft_prompts or "").strip().lower() in NONE_SOURCES:
            raise InputError(f"variant '{v.name}' uses soft prompts but no checkpoint is given: pass "
                             "--soft-prompts FILE.safetensors or a hub reference (or --soft-prompts seed "
                             "for untrained seed prompts, labelled as such)")
    bench = open_benchmark(benchmark, data_root, split)
    out_summaries = {}
    for v in variants:
        run_dir = Path(out) / bench.name / v.name
        out_summaries[v.name] = run_benchmark(bench, run_dir, apply_overrides(base, v.overrides),
                                              predictor, options)
    return out_summaries


def collect_grid(out: Path | str, variants: Sequence[Variant]) -> list[tuple[str, dict[str, dict]]]:
    """Rows (variant label, {benchmark title: summary}) from every ``OUT/<bench>/<variant>/summary.json``."""
    rows = []
    for v in variants:
        by_bench = {}
        for p in sorted(Path(out).glob(f"*/{v.name}/summary.json")):
            s = json.loads(p.read_text(encoding="utf-8"))
            by_bench[s.get("title", s.get("benchmark"))] = s
        rows.append((v.label, by_bench))
    return rows


def grid_table(name: str, out: Path | str, variants: Sequence[Variant]) -> str:
    title = {"components": "Ablation: CoT × soft prompts (J&F; rollout–mask correlation r)",
             "n-prompts": "Ablation: number of soft prompts N_p (J&F)",
             "normalisation": "Ablation: S_frm normalisation (J&F; rollout–mask correlation r)"}.get(name, name)
    return grid_markdown(title, collect_grid(out, variants), with_corr=name in ("components", "normalisation"))


# --- α sweep -----------------------------------------------------------------------------------

def pick_tracklet(tracklets: Sequence[dict], alpha: float) -> int:
    """Index of the best tracklet under s = α·s_frm + (1−α)·s_vid (missing scores rank last)."""
    best, best_s = 0, -math.inf
    for i, t in enumerate(tracklets):
        sf, sv = t.get("s_frm"), t.get("s_vid")
        s = alpha * sf + (1 - alpha) * sv if sf is not None and sv is not None else -math.inf
        if not math.isfinite(s):
            s = -math.inf
        if s > best_s:
            best, best_s = i, s
    return best


def reselect(records: Sequence[dict], alpha: float) -> list[dict]:
    """Records with J/F of the tracklet α would choose (records without tracklets unchanged)."""
    out = []
    for r in records:
        tr = r.get("tracklets") or []
        if r.get("status") == "ok" and tr and r.get("J") is not None:
            k = pick_tracklet(tr, alpha)
            was = r.get("chosen")
            r = {**r, "chosen": k, "J": tr[k]["J"], "F": tr[k]["F"],
                 "JF": None if tr[k]["J"] is None else (tr[k]["J"] + tr[k]["F"]) / 2}
            if k != was:  # A / R (ReVOS) were scored for the run's pick only
                r.pop("A", None)
                r.pop("R", None)
        out.append(r)
    return out


def alpha_sweep(run_dirs: Sequence[Path | str], alphas: Sequence[float],
                data_root: Path | str | None = None) -> list[tuple[float, dict[str, dict]]]:
    """[(α, {benchmark title: summary})] recomputed from stored records (no model runs)."""
    loaded = []
    for d in run_dirs:
        run = RunDir(d)
        meta = run.meta()
        if meta is None:
            raise InputError(f"not a run directory (no run.json): {d}")
        bench = open_benchmark(meta["benchmark"], data_root or meta["data_root"], meta.get("split"),
                               **meta.get("options", {}))
        records = list(run.load_records().values())
        if not any(r.get("tracklets") for r in records):
            raise InputError(f"{d}: no per-tracklet scores stored; an α sweep needs runs of the pipeline")
        loaded.append((bench, records))
    rows = []
    for a in alphas:
        rows.append((float(a), {b.title: summarize(b, reselect(recs, a), None) for b, recs in loaded}))
    return rows


def alpha_markdown(rows: Sequence[tuple[float, dict[str, dict]]]) -> str:
    benches: list[str] = []
    for _, by in rows:
        benches.extend(b for b in by if b not in benches)
    head = ["α"] + [f"{b} {m}" for b in benches for m in METRICS]
    lines = ["## Ablation: frame / video score weight α (re-picked from stored tracklets)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a, by in rows:
        cells = [f"{a:g}"]
        for b in benches:
            h = headline(by[b]) if b in by else None
            cells.extend(pct(h[m]) if h else "–" for m in METRICS)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
