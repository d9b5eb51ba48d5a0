"""Create a study (a seeded random sample of a dataset), fill in its attributes, attach J&F.

Attributes come either from the grounding core's CoT step (``generate_attributes`` — resumable:
each sample is committed on its own and samples that already have attributes are never
recomputed) or from another model's output file (``import_attributes``). Every import is
validated completely before anything is written.
"""

from __future__ import annotations

import csv
import json
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LimitsConfig
from ..errors import InputError, SteerSegError, VideoError
from ..grounding.prompts import PROMPT_VERSION
from ..types import Clip, CoTResult
from . import store
from .records import Study
from .sources import (
    IMAGE_EXTS,
    SourceItem,
    load_json,
    read_benchmark_dataset,
    read_source,
    split_attributes,
)

DEFAULT_N = 132  # the paper's study size
DEFAULT_FOLDER_FPS = 24.0
ProgressFn = Callable[[int, int, str], None]
CoTFn = Callable[[Clip, str], CoTResult]


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def sample_items(items: list[SourceItem] | tuple[SourceItem, ...], n: int, seed: int) -> list[SourceItem]:
    """``n`` items drawn without replacement by ``random.Random(seed)`` from the pool in a canonical
    order (so the same file, reordered, gives the same study); all of them, shuffled, if n ≥ pool."""
    if n <= 0:
        raise InputError(f"the study size must be at least 1, not {n}")
    pool = sorted(items, key=lambda it: (_natural(it.video_id), _natural(it.exp_id)))
    return random.Random(seed).sample(pool, min(n, len(pool)))


# ---------------------------------------------------------------- attribute files

@dataclass(frozen=True)
class AttributeEntry:
    video_id: str
    exp_id: str
    reasoning: str
    attributes: tuple[str, ...]
    raw: str = ""
    backbone: str = ""
    prompt_version: str = ""


def read_attributes_file(path: Path | str) -> list[AttributeEntry]:
    """Another model's CoT output: a JSON list (or ``{"items": [...], "backbone", "prompt_version"}``)
    of ``{video, exp_id, reasoning, attributes}`` (attributes a list or 'a, b, c')."""
    path = Path(path)
    data = load_json(path)
    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        defaults = {k: data.get(k, "") for k in ("backbone", "prompt_version")}
        data = data.get("items")
    what = f"the attributes file {path.name}"
    if not isinstance(data, list):
        raise InputError(f"{what} was refused: expected a list of items or {{'items': [...]}}")
    problems: list[str] = []
    out: list[AttributeEntry] = []
    seen: set[tuple[str, str]] = set()
    for n, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            problems.append(f"item {n} is not an object")
            continue
        video = row.get("video_id", row.get("video"))
        exp_id = row.get("exp_id", row.get("id"))
        if video in (None, "") or exp_id in (None, ""):
            problems.append(f"item {n} needs 'video' and 'exp_id'")
            continue
        try:
            attrs = split_attributes(row.get("attributes"))
        except InputError as err:
            problems.append(f"item {n}: {err}")
            continue
        if not attrs:
            problems.append(f"item {n} has no attributes")
            continue
        key = (str(video), str(exp_id))
        if key in seen:
            problems.append(f"item {n}: video {key[0]} expression {key[1]} appears twice")
            continue
        seen.add(key)
        out.append(AttributeEntry(
            video_id=key[0], exp_id=key[1], reasoning=str(row.get("reasoning") or ""), attributes=attrs,
            raw=str(row.get("raw") or row.get("cot_raw") or ""),
            backbone=str(row.get("backbone") or defaults.get("backbone") or ""),
            prompt_version=str(row.get("prompt_version") or defaults.get("prompt_version") or "")))
    if problems:
        raise InputError(f"{what} was refused, nothing was written: " + "; ".join(problems[:5])
                         + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    if not out:
        raise InputError(f"{what} was refused: it has no items")
    return out


@dataclass(frozen=True)
class ImportReport:
    matched: int
    updated: int
    kept: int  # matched samples that already had attributes (not overwritten)
    ignored: int  # entries for items that are not in the study


def import_attributes(
    db_path: Path | str, study_id: int, path: Path | str, *, overwrite: bool = False, strict: bool = False,
) -> ImportReport:
    """Attach another model's attributes to a study's samples, all in one transaction.

    Entries for items the study did not sample are ignored (a model's output usually covers the
    whole benchmark) unless ``strict``; a file matching none of the samples is refused.
    """
    entries = read_attributes_file(path)
    samples = {s.key: s for s in store.get_samples(db_path, study_id)}
    matched = [(samples[(e.video_id, e.exp_id)], e) for e in entries if (e.video_id, e.exp_id) in samples]
    unknown = [e for e in entries if (e.video_id, e.exp_id) not in samples]
    name = Path(path).name
    if strict and unknown:
        raise InputError(f"the attributes file {name} was refused, nothing was written: "
                         f"{len(unknown)} item(s) are not in study #{study_id} "
                         f"(first: video {unknown[0].video_id} expression {unknown[0].exp_id})")
    if not matched:
        raise InputError(f"the attributes file {name} was refused: none of its {len(entries)} items "
                         f"is in study #{study_id} (match on video id and exp_id)")
    updates = [{"sample_id": s.id, "reasoning": e.reasoning, "attributes": e.attributes, "raw": e.raw,
                "backbone": e.backbone, "prompt_version": e.prompt_version, "source": f"imported:{name}"}
               for s, e in matched]
    updated = store.set_sample_cots(db_path, updates, overwrite=overwrite)
    return ImportReport(matched=len(matched), updated=updated, kept=len(matched) - updated,
                        ignored=len(unknown))


# ---------------------------------------------------------------- creating a study

def create_study(
    db_path: Path | str, source: Path | str, *, name: str, n: int = DEFAULT_N, seed: int | None = None,
    frames_root: Path | str | None = None, attributes: Path | str | None = None,
    segmentation_question: bool = False, description: str = "", benchmark: str | None = None,
    split: str | None = None,
) -> Study:
    """Read and check ``source``, draw ``n`` items with ``seed`` (random and recorded if None) and
    write the study. ``source`` is a meta_expressions.json or a CSV/JSON list — or, with
    ``benchmark`` (refdavis, refytvos, mevis, revos, reasonvos), that benchmark's root folder read
    by the evaluation's reader. With ``attributes``, that file's entries are attached in the same
    transaction."""
    name = re.sub(r"\s+", " ", str(name or "")).strip()
    if not name:
        raise InputError("a study needs a name")
    if len(name) > 120:
        raise InputError("the study name is longer than 120 characters")
    src = (read_benchmark_dataset(benchmark, source, split) if benchmark
           else read_source(source, frames_root))
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    picked = sample_items(src.items, n, seed)
    imported: dict[tuple[str, str], AttributeEntry] = {}
    if attributes is not None:
        imported = {(e.video_id, e.exp_id): e for e in read_attributes_file(attributes)}
        if not any((it.video_id, it.exp_id) in imported for it in picked):
            raise InputError(f"the attributes file {Path(attributes).name} was refused: none of its "
                             f"items is among the {len(picked)} sampled items")
    rows = []
    for it in picked:
        row: dict[str, Any] = {
            "video_id": it.video_id, "exp_id": it.exp_id, "obj_id": it.obj_id, "clip_ref": it.clip_ref,
            "expression": it.expression, "overlay_ref": it.overlay_ref, "extra": it.extra}
        entry = imported.get((it.video_id, it.exp_id))
        if entry is not None:
            row.update(reasoning=entry.reasoning, attributes=entry.attributes, cot_raw=entry.raw,
                       backbone=entry.backbone, prompt_version=entry.prompt_version,
                       attributes_source=f"imported:{Path(str(attributes)).name}", generated_at=store.now())
        elif it.attributes is not None:
            row.update(reasoning=it.reasoning or "", attributes=it.attributes,
                       attributes_source=f"imported:{Path(src.path).name}", generated_at=store.now())
        rows.append(row)
    study_id = store.insert_study(db_path, {
        "name": name, "source_kind": src.kind, "source_path": src.path, "seed": seed, "n_requested": int(n),
        "pool_size": len(src.items), "segmentation_question": segmentation_question,
        "description": description,
        "params": {"frames_root": str(Path(frames_root).resolve()) if frames_root else "",
                   "benchmark": benchmark or "", "split": split or "",
                   "attributes_file": str(Path(attributes).resolve()) if attributes else ""},
    }, rows)
    return store.get_study(db_path, study_id)


# ---------------------------------------------------------------- generating attributes

def load_folder_clip(folder: Path, limits: LimitsConfig | None = None) -> Clip:
    """A frames folder as a Clip (used when steerseg_core.video is not available)."""
    from PIL import Image

    limits = limits or LimitsConfig()
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise VideoError(f"no image files in {folder}")
    if len(files) > limits.max_frames:
        raise VideoError(f"{folder} has {len(files)} frames, more than the limit of {limits.max_frames}")
    frames = []
    for f in files:
        with Image.open(f) as im:
            frames.append(np.asarray(im.convert("RGB")))
    if len({fr.shape for fr in frames}) != 1:
        raise VideoError(f"the frames in {folder} do not all have the same size")
    return Clip(frames=np.stack(frames), fps=DEFAULT_FOLDER_FPS, source=str(folder),
                frame_names=tuple(f.stem for f in files))


def load_sample_clip(clip_ref: str, limits: LimitsConfig | None = None) -> Clip:
    """The clip of a sample, through steerseg_core.video where it exists."""
    try:
        from ..video import load_clip
    except ImportError:
        ref = Path(clip_ref)
        if ref.is_dir():
            return load_folder_clip(ref, limits)
        raise VideoError(f"reading {ref.name} needs steerseg_core.video") from None
    return load_clip(clip_ref, limits=limits)


@dataclass
class GenerateReport:
    done: int = 0
    skipped: int = 0  # written meanwhile by another process
    failed: int = 0
    already: int = 0
    errors: list[str] = field(default_factory=list)


def generate_attributes(
    db_path: Path | str, study_id: int, cot_fn: CoTFn, progress: ProgressFn | None = None, *,
    backbone: str = "", prompt_version: str = PROMPT_VERSION, limits: LimitsConfig | None = None,
    clip_loader: Callable[[str], Clip] | None = None,
) -> GenerateReport:
    """Run ``cot_fn(clip, expression)`` for every sample that has no attributes yet.

    Each result is committed on its own, so a killed run loses at most the sample in flight and a
    rerun continues where it stopped. A sample whose clip or CoT fails — with a user-facing error or
    any other exception from the model code — is marked with the reason, counted as failed and
    retried on the next run; the batch goes on. Only database errors (every later item would fail
    too) and ``MemoryError`` stop it.
    """
    load = clip_loader or (lambda ref: load_sample_clip(ref, limits))
    samples = store.get_samples(db_path, study_id)
    pending = [s for s in samples if not s.ready]
    report = GenerateReport(already=len(samples) - len(pending))
    cached: tuple[str, Clip] | None = None
    for i, s in enumerate(pending):
        if progress:
            progress(i, len(pending), f"{s.video_id} / {s.exp_id}")
        try:
            if cached is None or cached[0] != s.clip_ref:
                cached = (s.clip_ref, load(s.clip_ref))
            result = cot_fn(cached[1], s.expression)
        except (store.StoreError, MemoryError):
            raise
        except Exception as err:  # one bad item (its clip, its text) must not end the batch
            reason = str(err) if isinstance(err, SteerSegError) else f"{type(err).__name__}: {err}"
            store.set_sample_error(db_path, s.id, reason)
            report.failed += 1
            report.errors.append(f"item {s.position + 1} ({s.video_id}): {reason}")
            continue
        wrote = store.set_sample_cot(
            db_path, s.id, reasoning=result.reasoning, attributes=result.attributes, raw=result.raw,
            issues=result.issues, backbone=backbone, prompt_version=prompt_version, source="generated")
        if wrote:
            report.done += 1
        else:
            report.skipped += 1
    if progress:
        progress(len(pending), len(pending), "done")
    return report


# ---------------------------------------------------------------- segmentation scores (J&F)

_JF_KEYS = ("jf", "J&F", "j&f", "J&F-Mean", "jf_mean", "JF")


def _score(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_score_rows(path: Path) -> list[Any]:
    what = f"the scores file {path.name}"
    if path.is_dir():  # an evaluation run folder: expressions/<key>.json, one record each
        records = path / "expressions" if (path / "expressions").is_dir() else path
        rows = [load_json(p) for p in sorted(records.glob("*.json"))]
    elif path.suffix.lower() == ".csv":
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    elif path.suffix.lower() == ".jsonl":
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise InputError(f"{what} was refused: line {n} is not valid JSON ({err.msg})") from err
    else:
        data = load_json(path)
        if isinstance(data, dict):
            data = next((data[k] for k in ("records", "items", "per_sample", "per_expression")
                         if isinstance(data.get(k), list)), data)
        rows = data
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{what} was refused: expected a non-empty list of rows")
    return rows


def import_segmentation_scores(
    db_path: Path | str, study_id: int, path: Path | str, *, strict: bool = False,
) -> int:
    """Per-sample J&F of an evaluation run, for the cross-table. Accepts a CSV, a JSON list (or
    ``{"records": [...]}``), JSONL, or an evaluation run folder (``expressions/<key>.json``
    records, as ``python -m steerseg_core eval`` writes them). Rows name their
    sample by ``video`` + ``exp_id``, ``key`` = ``<video>/<exp_id>`` or ``sequence`` =
    ``<video>_<exp_id>``, and carry ``J&F`` (or ``jf``, or ``J`` and ``F``), in 0–1 or 0–100.
    Replaces the study's previous scores; returns how many samples got one."""
    path = Path(path)
    what = f"the scores file {path.name}"
    rows = _read_score_rows(path)
    samples = store.get_samples(db_path, study_id)
    by_key = {s.key: s for s in samples}
    by_seq = {f"{s.video_id}_{s.exp_id}": s for s in samples}
    problems: list[str] = []
    parsed: list[tuple[Any, float, float | None, float | None]] = []
    unknown = 0
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            problems.append(f"row {n} is not an object")
            continue
        jf_raw = next((row[k] for k in _JF_KEYS if k in row), None)
        j_raw, f_raw = row.get("J", row.get("j")), row.get("F", row.get("f"))
        if all(v in (None, "") for v in (jf_raw, j_raw, f_raw)):
            continue  # an unscored record (e.g. a benchmark without ground truth)
        jf, j, f = _score(jf_raw), _score(j_raw), _score(f_raw)
        if jf is None and j is not None and f is not None:
            jf = (j + f) / 2
        if jf is None or not np.isfinite(jf):
            problems.append(f"row {n} has no usable J&F value")
            continue
        video, exp = row.get("video_id", row.get("video")), row.get("exp_id")
        if video is not None and exp is not None:
            sample = by_key.get((str(video), str(exp)))
        elif isinstance(row.get("key"), str) and "/" in row["key"]:
            sample = by_key.get(tuple(row["key"].rsplit("/", 1)))
        else:
            sample = by_seq.get(str(row.get("sequence", row.get("Sequence", ""))))
        if sample is None:
            unknown += 1
            continue
        parsed.append((sample, jf, j, f))
    if problems:
        raise InputError(f"{what} was refused, nothing was written: " + "; ".join(problems[:5]))
    if strict and unknown:
        raise InputError(f"{what} was refused: {unknown} row(s) are not in study #{study_id}")
    if not parsed:
        raise InputError(f"{what} was refused: none of its rows matches a sample of study #{study_id}")
    percent = max(p[1] for p in parsed) > 1.0
    scale = 0.01 if percent else 1.0
    seen: set[int] = set()
    out = []
    for sample, jf, j, f in parsed:
        if sample.id in seen:
            raise InputError(f"{what} was refused: item {sample.video_id}/{sample.exp_id} appears twice")
        seen.add(sample.id)
        out.append({"sample_id": sample.id, "jf": jf * scale,
                    "j": None if j is None else j * scale, "f": None if f is None else f * scale})
    return store.set_seg_scores(db_path, study_id, out, source=str(path.resolve()))
