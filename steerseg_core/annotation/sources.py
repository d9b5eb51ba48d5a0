"""Read the pool of (clip, expression) items a study samples from, and refuse broken inputs.

Three kinds of input:
- a benchmark ``meta_expressions.json`` plus a frames folder: ReasonVOS (``videos → {frames,
  expressions: [{exp_id, exp_text, obj_id, ...}]}``), the Ref-YouTube-VOS / Ref-DAVIS17 / MeViS /
  ReVOS layout (``expressions: {"0": {"exp", "obj_id", ...}}``) and the object-level layout
  (``objects: {obj_id: {"expressions": [...]}}``);
- a CSV list with columns ``video`` (a video file or a frames folder, relative to the list) and
  ``expression`` (optional ``id``, ``obj_id``, ``reasoning``, ``attributes``, ``overlay``);
- the same list as JSON (a list of objects, or ``{"items": [...]}``).

Everything is checked before a study is written — JSON syntax, fields, that every video's frames
exist — and the first problems are reported together, so a broken file writes nothing.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets.meta import MetaVideo, parse_meta
from ..errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg")
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 5


@dataclass(frozen=True)
class SourceItem:
    video_id: str
    exp_id: str
    obj_id: str
    clip_ref: str
    expression: str
    reasoning: str | None = None
    attributes: tuple[str, ...] | None = None
    overlay_ref: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    kind: str  # "reasonvos", "benchmark", "objects", "list-csv", "list-json"
    path: str
    items: tuple[SourceItem, ...]


class _Problems:
    def __init__(self, what: str) -> None:
        self.what = what
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = "; ".join(self.items[:MAX_PROBLEMS_SHOWN])
        more = len(self.items) - MAX_PROBLEMS_SHOWN
        tail = f" (and {more} more)" if more > 0 else ""
        raise InputError(f"{self.what} was refused, nothing was written: {shown}{tail}")


def load_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one clear InputError."""
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text: {err}") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err


def split_attributes(value: Any) -> tuple[str, ...] | None:
    """Attributes given as a list or as 'a, b, c' text; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list | tuple):
        parts = [str(v) for v in value]
    else:
        raise InputError(f"attributes must be a list or comma-separated text, not {type(value).__name__}")
    return tuple(p.strip() for p in parts if p.strip())


def _image_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _frames_dir(root: Path, video: str) -> Path | None:
    if not video or "/" in video or "\\" in video or video in (".", ".."):
        return None
    for cand in (root / video, root / "JPEGImages" / video, root / "JPEGImages" / "480p" / video):
        if cand.is_dir():
            return cand
    return None


def _obj(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _expressions(video: MetaVideo, problems: _Problems) -> list[tuple[str, str, str, dict]]:
    """(exp_id, text, obj_id, extra) of one parsed video entry (``datasets.meta``, any layout).

    In the listed (ReasonVOS) layout each expression keeps its own ``exp_id`` and ``is_sent``; when
    an ``exp_id`` repeats within a video (ids counted per object), every id of that video becomes
    ``<obj_id>-<exp_id>`` so two expressions never share a sample key."""
    ids = [e.exp_id for e in video.expressions]
    per_object = video.shape == "listed" and len(set(ids)) < len(ids)
    out: list[tuple[str, str, str, dict]] = []
    for e in video.expressions:
        obj = ",".join(e.obj_ids)
        exp_id = f"{obj}-{e.exp_id}" if per_object else e.exp_id
        if per_object and exp_id in {x[0] for x in out}:
            problems.add(f"video {video.name}: expression {e.exp_id} of object {obj} appears twice")
            continue
        if not e.text or not e.text.strip():
            problems.add(f"video {video.name}: expression {e.exp_id} has no text")
            continue
        out.append((exp_id, e.text, obj, dict(e.fields)))
    return out


def read_benchmark(meta: Path, frames_root: Path | None = None, data: Any = None) -> Source:
    """A benchmark's ``meta_expressions.json``; frames under ``frames_root`` (default: beside the
    JSON), in ``<root>/<video>``, ``<root>/JPEGImages/<video>`` or ``<root>/JPEGImages/480p/<video>``."""
    meta = Path(meta)
    data = load_json(meta) if data is None else data
    what = f"the study source {meta.name}"
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise InputError(f"{what} was refused: expected an object with a 'videos' object")
    root = Path(frames_root) if frames_root else meta.parent
    if not root.is_dir():
        raise InputError(f"{what} was refused: frames folder {root} does not exist")
    problems = _Problems(what)
    items: list[SourceItem] = []
    kinds: set[str] = set()
    for vid, video in parse_meta(data, what, problems.items).items():
        folder = _frames_dir(root, vid)
        if folder is None:
            problems.add(f"unknown video {vid}: no frames folder {vid}/ under {root} (or JPEGImages/)")
            continue
        present = set(_image_names(folder))
        if video.frames is not None:
            stems = {Path(n).stem for n in present} | present
            missing = [n for n in video.frames if n not in stems]
            if missing:
                problems.add(f"video {vid}: {len(missing)} listed frame(s) missing in {folder} "
                             f"(first: {missing[0]})")
                continue
        if not present:
            problems.add(f"video {vid}: no image files in {folder}")
            continue
        kinds.add(video.shape)
        for exp_id, text, obj_id, extra in _expressions(video, problems):
            items.append(SourceItem(video_id=vid, exp_id=exp_id, obj_id=obj_id,
                                    clip_ref=str(folder.resolve()), expression=text.strip(), extra=extra))
    problems.raise_if_any()
    if not items:
        raise InputError(f"{what} was refused: it has no expressions")
    kind = "reasonvos" if kinds == {"listed"} else "objects" if kinds == {"objects"} else "benchmark"
    return Source(kind=kind, path=str(meta.resolve()), items=tuple(items))


_VIDEO_KEYS = ("video", "clip", "path", "frames", "video_path")
_TEXT_KEYS = ("expression", "exp", "exp_text", "text")


def _pick(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if row.get(k) not in (None, ""):
            return row[k]
    return None


def _list_items(rows: list[Any], base: Path, what: str) -> list[SourceItem]:
    problems = _Problems(what)
    items: list[SourceItem] = []
    seen: set[tuple[str, str]] = set()
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            problems.add(f"item {n} is not an object")
            continue
        video, text = _pick(row, _VIDEO_KEYS), _pick(row, _TEXT_KEYS)
        if video is None or text is None or not str(text).strip():
            problems.add(f"item {n} needs 'video' and 'expression'")
            continue
        clip = Path(str(video)).expanduser()
        clip = clip if clip.is_absolute() else base / clip
        if clip.is_dir():
            if not _image_names(clip):
                problems.add(f"item {n}: no image files in {clip}")
                continue
        elif clip.is_file():
            if clip.suffix.lower() not in VIDEO_EXTS:
                problems.add(f"item {n}: {clip.name} is not a video file ({', '.join(VIDEO_EXTS)})")
                continue
        else:
            problems.add(f"item {n}: unknown video {video} (no such file or folder)")
            continue
        video_id = str(row.get("video_id") or video)
        exp_id = str(row.get("exp_id", row.get("id", n)))
        if (video_id, exp_id) in seen:
            problems.add(f"item {n}: duplicate id {exp_id} for video {video_id}")
            continue
        seen.add((video_id, exp_id))
        try:
            attributes = split_attributes(row.get("attributes") or None)
        except InputError as err:
            problems.add(f"item {n}: {err}")
            continue
        overlay = row.get("overlay")
        overlay_ref = ""
        if overlay:
            ov = Path(str(overlay)).expanduser()
            ov = ov if ov.is_absolute() else base / ov
            if not ov.exists():
                problems.add(f"item {n}: overlay {overlay} does not exist")
                continue
            overlay_ref = str(ov.resolve())
        known = set(_VIDEO_KEYS + _TEXT_KEYS) | {"video_id", "exp_id", "id", "obj_id", "reasoning",
                                                 "attributes", "overlay"}
        items.append(SourceItem(
            video_id=video_id, exp_id=exp_id, obj_id=_obj(row.get("obj_id")), clip_ref=str(clip.resolve()),
            expression=str(text).strip(),
            reasoning=str(row.get("reasoning") or "") if attributes is not None else None,
            attributes=attributes, overlay_ref=overlay_ref,
            extra={k: v for k, v in row.items() if k not in known and v not in (None, "")}))
    problems.raise_if_any()
    if not items:
        raise InputError(f"{what} was refused: it lists no items")
    return items


def read_list(path: Path, data: Any = None) -> Source:
    """A CSV or JSON list of (video file or frames folder, expression); paths relative to the list."""
    path = Path(path)
    what = f"the study list {path.name}"
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise InputError(f"{path} does not exist or is not a file")
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows: list[Any] = list(csv.DictReader(fh))
        except (UnicodeDecodeError, csv.Error) as err:
            raise InputError(f"{what} was refused: not a readable CSV file ({err})") from err
        kind = "list-csv"
    else:
        data = load_json(path) if data is None else data
        rows = data.get("items") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise InputError(f"{what} was refused: expected a list of items or {{'items': [...]}}")
        kind = "list-json"
    return Source(kind=kind, path=str(path.resolve()), items=tuple(_list_items(rows, path.parent, what)))


def read_benchmark_dataset(name: str, root: Path | str, split: str | None = None) -> Source:
    """Any benchmark the evaluation reads (``steerseg_core.datasets``: refdavis, refytvos,
    mevis, revos, reasonvos) in its official layout under ``root``."""
    try:
        from ..datasets import open_benchmark
    except ImportError as err:
        raise InputError(f"benchmark readers are not available ({err})") from err
    bench = open_benchmark(name, root, split)
    what = f"the {bench.title or name} benchmark at {root}"
    problems = _Problems(what)
    present: dict[str, set[str] | None] = {}
    items: list[SourceItem] = []
    exprs = bench.expressions()
    ids: dict[str, list[str]] = {}
    for e in exprs:
        ids.setdefault(e.video, []).append(e.exp_id)
    per_object = {v for v, got in ids.items() if len(set(got)) < len(got)}  # as in _expressions
    for e in exprs:
        folder = bench.frames_dir(e.video)
        if e.video not in present:
            present[e.video] = ({Path(n).stem for n in _image_names(folder)} if folder.is_dir() else None)
        names = present[e.video]
        if names is None:
            problems.add(f"unknown video {e.video}: no frames folder {folder}")
            continue
        missing = [f for f in e.frames if f not in names]
        if missing or not names:
            problems.add(f"video {e.video}: {len(missing)} listed frame(s) missing in {folder}"
                         + (f" (first: {missing[0]})" if missing else ""))
            continue
        if not e.text.strip():
            problems.add(f"video {e.video}: expression {e.exp_id} has no text")
            continue
        obj = ",".join(e.obj_ids)
        items.append(SourceItem(video_id=e.video, exp_id=f"{obj}-{e.exp_id}" if e.video in per_object else e.exp_id,
                                obj_id=obj, clip_ref=str(folder.resolve()), expression=e.text.strip(),
                                extra={k: v for k, v in (("group", e.group),) if v}))
    problems.raise_if_any()
    if not items:
        raise InputError(f"{what} was refused: it has no expressions")
    return Source(kind=f"benchmark:{bench.name}", path=str(Path(root).resolve()), items=tuple(items))


def read_source(path: Path | str, frames_root: Path | str | None = None) -> Source:
    """Any supported input: a benchmark meta JSON (has 'videos') or a CSV / JSON list."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_list(path)
    data = load_json(path)
    if isinstance(data, dict) and "videos" in data:
        return read_benchmark(path, Path(frames_root) if frames_root else None, data=data)
    return read_list(path, data=data)
