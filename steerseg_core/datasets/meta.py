"""The one parser of the ``meta_expressions*.json`` files that every benchmark ships, used by the
benchmark readers, the training data index and the annotation study sources.

Three shapes of ``{"videos": {video: entry}}`` exist in the official releases:

* keyed (Ref-YouTube-VOS, converted Ref-DAVIS17, MeViS, ReVOS): ``entry["expressions"]`` is an
  object ``{exp_id: {"exp", "obj_id", "anno_id", ...}}``;
* listed (ReasonVOS): ``entry["expressions"]`` is a list of ``{"obj_id", "exp_id", "exp_text",
  "is_sent"}``, and ``entry["source"]`` names the dataset the clip came from;
* object-level (Ref-YouTube-VOS authors' ``meta_expressions_<split>.json``): ``entry["objects"]``
  is ``{obj_id: {"category", "expressions": [text, ...], "frames"}}``; its expressions, taken in
  object order, are the keyed file's "0", "1", ...

All three become ``MetaVideo`` / ``MetaExpression`` values with the entry's other fields kept, so
each consumer applies its own checks without reparsing. Structural problems either raise at once or,
when a ``problems`` list is given, are appended there and the bad part is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

TEXT_KEYS = ("exp", "exp_text", "expression")


@dataclass(frozen=True)
class MetaExpression:
    """One expression entry. ``text`` is the raw text (None when absent or not a string)."""

    exp_id: str
    text: str | None
    obj_ids: tuple[str, ...] = ()
    anno_ids: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_text(self) -> str:
        """Whitespace runs collapsed to one space, ends stripped ("" when there is no text)."""
        return " ".join(self.text.split()) if self.text else ""


@dataclass(frozen=True)
class MetaVideo:
    """One video entry: its listed frames (None when the entry has no list) and expressions."""

    name: str
    frames: tuple[str, ...] | None
    expressions: tuple[MetaExpression, ...]
    shape: str  # "keyed", "listed" or "objects"
    fields: dict[str, Any] = field(default_factory=dict)


def sorted_ids(keys: Any) -> list[str]:
    """Ids in numeric order where they are numbers ("0", "1", ..., "10")."""
    return sorted((str(k) for k in keys), key=lambda k: (0, int(k), "") if k.isdigit() else (1, 0, k))


def read_json(path: Path | str) -> Any:
    """Parse a JSON file; a missing or malformed file is one clear InputError."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as err:
        raise InputError(f"file not found: {path}") from err
    except UnicodeDecodeError as err:
        raise InputError(f"{path} is not UTF-8 text: {err}") from err
    except json.JSONDecodeError as err:
        raise InputError(f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from err


def id_tuple(value: Any) -> tuple[str, ...]:
    """An id or a list of ids as strings (None and "" give none)."""
    if value is None or value == "":
        return ()
    return tuple(str(v) for v in (value if isinstance(value, list | tuple) else [value]))


def _text(entry: dict[str, Any]) -> str | None:
    for k in TEXT_KEYS:
        if isinstance(entry.get(k), str):
            return entry[k]
    return None


def _expression(exp_id: str, entry: dict[str, Any]) -> MetaExpression:
    rest = {k: v for k, v in entry.items() if k not in (*TEXT_KEYS, "exp_id", "obj_id", "anno_id")}
    return MetaExpression(exp_id, _text(entry), id_tuple(entry.get("obj_id")), id_tuple(entry.get("anno_id")), rest)


def _fail(problems: list[str] | None, text: str) -> None:
    if problems is None:
        raise InputError(text)
    problems.append(text)


def parse_video(name: str, entry: Any, problems: list[str] | None = None) -> MetaVideo | None:
    """One ``videos`` entry in any of the three shapes (None when it is unusable)."""
    if not isinstance(entry, dict):
        _fail(problems, f"video {name}: entry is not an object")
        return None
    frames = entry.get("frames")
    if frames is not None and not isinstance(frames, list):
        _fail(problems, f"video {name}: 'frames' is not a list")
        return None
    exps = entry.get("expressions")
    out: list[MetaExpression] = []
    if isinstance(exps, list):
        shape = "listed"
        for i, e in enumerate(exps):
            if not isinstance(e, dict):
                _fail(problems, f"video {name}: expression {i} is not an object")
                continue
            out.append(_expression(str(e.get("exp_id", i)), e))
    elif isinstance(exps, dict):
        shape = "keyed"
        for exp_id in sorted_ids(exps):
            e = exps[exp_id]
            if isinstance(e, str):  # a bare text is accepted as {"exp": text}
                e = {"exp": e}
            if not isinstance(e, dict):
                _fail(problems, f"video {name}: expression {exp_id} is not an object")
                continue
            out.append(_expression(exp_id, e))
    elif isinstance(entry.get("objects"), dict):
        shape = "objects"
        counter = 0
        for obj_id in sorted_ids(entry["objects"]):
            obj = entry["objects"][obj_id]
            texts = obj.get("expressions") if isinstance(obj, dict) else None
            if not isinstance(texts, list):
                _fail(problems, f"video {name}: object {obj_id} has no expressions list")
                continue
            rest = {"category": obj["category"]} if obj.get("category") else {}
            for text in texts:
                out.append(MetaExpression(str(counter), text if isinstance(text, str) else None, (obj_id,), (),
                                          dict(rest)))
                counter += 1
    else:
        _fail(problems, f"video {name}: no 'expressions' (list or object) or 'objects'")
        return None
    rest = {k: v for k, v in entry.items() if k not in ("frames", "expressions", "objects")}
    return MetaVideo(str(name), tuple(str(f) for f in frames) if frames is not None else None, tuple(out), shape,
                     rest)


def parse_meta(data: Any, what: str = "meta_expressions.json",
               problems: list[str] | None = None) -> dict[str, MetaVideo]:
    """{video: MetaVideo} of a parsed ``meta_expressions*.json`` (file order kept)."""
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise InputError(f"{what}: expected an object with a 'videos' object")
    out: dict[str, MetaVideo] = {}
    for name, entry in videos.items():
        video = parse_video(str(name), entry, problems)
        if video is not None:
            out[video.name] = video
    return out


def read_meta(path: Path | str, problems: list[str] | None = None) -> dict[str, MetaVideo]:
    """``parse_meta`` of a file."""
    return parse_meta(read_json(path), Path(path).name, problems)
