"""Statistics of a study: per-annotator accuracy with a Wilson interval, agreement (Cohen's kappa
for a pair, Fleiss' kappa for all), and the paper's cross-table of reasoning correctness against
segmentation accuracy (docs/method.md §10: 115/132 correct; 55.7 % of those segmented accurately, 2 of
the 17 incorrect ones).

The formulas are pure functions over plain lists so the tests can check them against textbook
values; ``study_statistics`` reads the store and assembles everything the tab and export show.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import store
from .records import FALSE, LABELS, REASONING, SEGMENTATION, SKIP, TRUE, Judgement, Sample

Z95 = 1.959963984540054
DEFAULT_JF_THRESHOLD = 0.5


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95 % by default); NaNs when n = 0.

    scipy computes it (``binomtest(...).proportion_ci(method="wilson")``); ``z`` picks the
    two-sided confidence level ``2·Φ(z) − 1``."""
    if n <= 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest, norm

    level = float(2 * norm.cdf(z) - 1)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two raters' labels on the same items; NaN when undefined (no items, or
    both raters used one and the same category throughout)."""
    if len(a) != len(b):
        raise ValueError("both raters must label the same items")
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[c] * cb[c] for c in set(ca) | set(cb)) / (n * n)
    if pe >= 1.0:
        return float("nan")
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an (items × categories) count matrix with the same number of ratings
    (≥ 2) per item; NaN when undefined."""
    m = np.asarray(counts, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0:
        return float("nan")
    raters = m.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (≥ 2) of ratings for every item")
    n, items = raters[0], m.shape[0]
    p_i = ((m * m).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_j = m.sum(axis=0) / (items * n)
    pe = float((p_j * p_j).sum())
    if pe >= 1.0:
        return float("nan")
    return float((p_bar - pe) / (1 - pe))


def fleiss_kappa_labels(ratings: Sequence[Sequence[str]], categories: Sequence[str] = LABELS) -> float:
    """Fleiss' kappa from per-item label lists (every item rated by the same number of raters)."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros((len(ratings), len(categories)), dtype=int)
    for r, labels in enumerate(ratings):
        for label in labels:
            counts[r, index[label]] += 1
    return fleiss_kappa(counts)


def consensus(labels: Sequence[str]) -> str | None:
    """One verdict from several annotators: the majority of True/False answers; Skip when everybody
    skipped; None for a tie or no answers."""
    votes = Counter(label for label in labels if label in (TRUE, FALSE))
    if not votes:
        return SKIP if labels else None
    if votes[TRUE] == votes[FALSE]:
        return None
    return TRUE if votes[TRUE] > votes[FALSE] else FALSE


# ---------------------------------------------------------------- assembled statistics

@dataclass(frozen=True)
class LabelCounts:
    who: str  # an annotator's name, or "consensus"
    n_items: int
    n_labelled: int
    n_true: int
    n_false: int
    n_skip: int
    accuracy: float  # true / (true + false)
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, who: str, n_items: int, labels: Sequence[str]) -> LabelCounts:
        c = Counter(labels)
        t, f = c[TRUE], c[FALSE]
        lo, hi = wilson_interval(t, t + f)
        return cls(who=who, n_items=n_items, n_labelled=len(labels), n_true=t, n_false=f, n_skip=c[SKIP],
                   accuracy=t / (t + f) if t + f else float("nan"), ci_low=lo, ci_high=hi)


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    n_items: int
    percent_agreement: float
    kappa: float


@dataclass(frozen=True)
class CrossTable:
    """Reasoning verdict (rows) against segmentation accuracy (columns), counts per cell."""

    seg_source: str  # "evaluation run (J&F ≥ t)", "annotators", "evaluation run + annotators" or "none"
    jf_threshold: float
    cells: dict[str, dict[str, int]]  # {"True"|"False": {"accurate"|"inaccurate"|"unknown": n}}

    def rate(self, reasoning: str) -> tuple[int, int, float]:
        """(accurate, known, accurate / known) for the samples whose reasoning was ``reasoning``."""
        row = self.cells.get(reasoning, {})
        acc, known = row.get("accurate", 0), row.get("accurate", 0) + row.get("inaccurate", 0)
        return acc, known, acc / known if known else float("nan")


@dataclass(frozen=True)
class StudyStats:
    study_id: int
    study_name: str
    n_items: int
    n_ready: int
    annotators: tuple[LabelCounts, ...]
    consensus: LabelCounts
    pairs: tuple[PairAgreement, ...]
    fleiss_kappa: float
    fleiss_items: int
    cross_table: CrossTable
    segmentation_annotators: tuple[LabelCounts, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    def summary_lines(self) -> list[str]:
        """The headline numbers, as the paper states them."""
        c = self.consensus
        lines = [f"{c.n_true}/{c.n_true + c.n_false} correct ({_pct(c.accuracy)}, 95 % CI "
                 f"{_pct(c.ci_low)}–{_pct(c.ci_high)}); {c.n_skip} skipped; "
                 f"{self.n_items - c.n_labelled} without a verdict"]
        for verdict, word in ((TRUE, "correct"), (FALSE, "incorrect")):
            acc, known, rate = self.cross_table.rate(verdict)
            if known:
                lines.append(f"segmentation accurate for {acc} of {known} {word} cases ({_pct(rate)})")
        return lines


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def compute_statistics(
    study_id: int, study_name: str, samples: Sequence[Sample], judgements: Sequence[Judgement],
    seg_scores: dict[int, float] | None = None, jf_threshold: float = DEFAULT_JF_THRESHOLD,
) -> StudyStats:
    """Everything the tab and the export show, from the rows alone (no database access)."""
    seg_scores = seg_scores or {}
    ids = {s.id for s in samples}
    by_q: dict[str, dict[str, dict[int, str]]] = {REASONING: {}, SEGMENTATION: {}}
    for j in judgements:
        if j.sample_id in ids:
            by_q[j.question].setdefault(j.annotator, {})[j.sample_id] = j.label
    reasoning = by_q[REASONING]
    names = sorted(reasoning)
    per_annotator = tuple(LabelCounts.of(a, len(samples), list(reasoning[a].values())) for a in names)

    verdicts: dict[int, str] = {}
    for s in samples:
        v = consensus([reasoning[a][s.id] for a in names if s.id in reasoning[a]])
        if v is not None:
            verdicts[s.id] = v
    cons = LabelCounts.of("consensus", len(samples), list(verdicts.values()))

    pairs = []
    for a, b in itertools.combinations(names, 2):
        common = sorted(set(reasoning[a]) & set(reasoning[b]))
        la, lb = [reasoning[a][i] for i in common], [reasoning[b][i] for i in common]
        agree = sum(x == y for x, y in zip(la, lb, strict=True)) / len(common) if common else float("nan")
        pairs.append(PairAgreement(a=a, b=b, n_items=len(common), percent_agreement=agree,
                                   kappa=cohen_kappa(la, lb)))
    fk, fk_items = float("nan"), 0
    if len(names) >= 2:
        common = set.intersection(*(set(reasoning[a]) for a in names))
        fk_items = len(common)
        if common:
            fk = fleiss_kappa_labels([[reasoning[a][i] for a in names] for i in sorted(common)])

    seg_ann = by_q[SEGMENTATION]
    seg_verdict: dict[int, str] = {}
    used: set[str] = set()
    for s in samples:
        if s.id in seg_scores:
            seg_verdict[s.id] = "accurate" if seg_scores[s.id] >= jf_threshold else "inaccurate"
            used.add("run")
            continue
        v = consensus([seg_ann[a][s.id] for a in seg_ann if s.id in seg_ann[a]])
        if v in (TRUE, FALSE):
            seg_verdict[s.id] = "accurate" if v == TRUE else "inaccurate"
            used.add("annotators")
    cells = {r: {"accurate": 0, "inaccurate": 0, "unknown": 0} for r in (TRUE, FALSE)}
    for sid, v in verdicts.items():
        if v in cells:
            cells[v][seg_verdict.get(sid, "unknown")] += 1
    source = {frozenset(): "none", frozenset({"run"}): f"evaluation run (J&F ≥ {jf_threshold:g})",
              frozenset({"annotators"}): "annotators"}.get(
        frozenset(used), f"evaluation run (J&F ≥ {jf_threshold:g}) + annotators")
    notes = []
    if len(names) > 1:
        notes.append("consensus = majority of True/False answers per item (ties have no verdict); "
                     "kappa is over the items both (all) annotators labelled, Skip counted as a category")
    return StudyStats(
        study_id=study_id, study_name=study_name, n_items=len(samples),
        n_ready=sum(1 for s in samples if s.ready), annotators=per_annotator, consensus=cons,
        pairs=tuple(pairs), fleiss_kappa=fk, fleiss_items=fk_items,
        cross_table=CrossTable(seg_source=source, jf_threshold=jf_threshold, cells=cells),
        segmentation_annotators=tuple(LabelCounts.of(a, len(samples), list(seg_ann[a].values()))
                                      for a in sorted(seg_ann)),
        notes=tuple(notes))


def study_statistics(db_path: Path | str, study_id: int,
                     jf_threshold: float = DEFAULT_JF_THRESHOLD) -> StudyStats:
    study = store.get_study(db_path, study_id)
    return compute_statistics(
        study.id, study.name, store.get_samples(db_path, study_id), store.get_judgements(db_path, study_id),
        store.get_seg_scores(db_path, study_id), jf_threshold)
