"""Write what a segmentation produces: DAVIS palette PNGs, a zip, an overlay MP4, COCO RLE, JSON.

The app's download buttons, the CLI and the benchmark runners all save results through this file,
so every output has one format: masks as DAVIS-layout indexed PNGs (what davis2017-evaluation and
the Ref-YouTube-VOS server read), an H.264 overlay that browsers play, COCO run-length encoding
(implemented here, no pycocotools needed) and a result JSON with a checked schema.
``export_all`` writes into a hidden temporary folder and moves the files in at the end, so a
failure never leaves half an export behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write_bytes, safe_name, temp_path
from .rle import rle_decode, rle_encode
from .types import Clip, SegmentationResult

SCHEMA_VERSION = 1
RESULT_SCHEMA_KEYS = (
    "schema_version",
    "expression",
    "reasoning",
    "attributes",
    "cot_raw",
    "cot_issues",
    "query_word",
    "soft_prompts",
    "keyframes",
    "video_frames",
    "tracklets",
    "chosen",
    "timings",
    "config",
    "backbone",
    "versions",
    "created",
)
# Optional top-level keys a result carries when asked for (SegmentationResult.diagnostics).
DIAGNOSTIC_KEYS = ("evaluation", "readouts")
EVALUATION_KEYS = ("J&F", "J", "F", "alignment_frame", "alignment_video")
TRACKLET_KEYS = ("source_keyframe", "point_xy", "s_frm", "s_vid", "s", "clicks")
VERSION_PACKAGES = ("steerseg", "torch", "transformers", "sam2", "gradio")
POSITIVE_COLOR = (0, 220, 0)
NEGATIVE_COLOR = (230, 0, 0)


# --------------------------------------------------------------------------- names and files


def davis_palette() -> np.ndarray:
    """The 256-entry VOC/DAVIS palette, (256, 3) uint8: 0 black, 1 (128,0,0), 2 (0,128,0), ...

    Index i spreads its bits over the channels: bit 3k+c of i sets bit 7-k of channel c.
    """
    idx = np.arange(256)
    pal = np.zeros((256, 3), np.int64)
    for k in range(8):
        for c in range(3):
            pal[:, c] |= ((idx >> (3 * k + c)) & 1) << (7 - k)
    return pal.astype(np.uint8)


def _safe_names(names: Sequence[str] | None, count: int) -> list[str]:
    defaults = [f"{i:05d}" for i in range(count)]
    if names is None:
        return defaults
    if len(names) != count:
        raise ValueError(f"got {len(names)} names for {count} frames")
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        stem = safe_name(name, defaults[i])
        while stem.lower() in seen:  # two names that sanitise alike must not overwrite each other
            stem = f"{stem}_{i:05d}"
        seen.add(stem.lower())
        out.append(stem)
    return out


def _inside(path: Path, folder: Path) -> Path:
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ValueError(f"output name {path.name!r} would leave its folder")
    return path


def _temp_dir(folder: Path, name: str, tag: str) -> Path:
    path = temp_path(folder, name, f".{tag}")
    path.mkdir()
    return path


def _label_maps(masks: np.ndarray, object_id: int) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    if masks.dtype == bool:
        if not 0 <= object_id <= 255:
            raise ValueError(f"object_id must be in 0..255, got {object_id}")
        return masks.astype(np.uint8) * np.uint8(object_id)
    if not np.issubdtype(masks.dtype, np.integer):
        raise ValueError(f"masks must be bool or integer label maps, got {masks.dtype}")
    if masks.size and (masks.min() < 0 or masks.max() > 255):
        raise ValueError("label maps must hold values 0..255")
    return masks.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------- PNG masks and zip


def write_palette_pngs(masks: np.ndarray, out_dir: Path, names: Sequence[str] | None = None,
                       object_id: int = 1) -> list[Path]:
    """One DAVIS-layout indexed PNG ('P' mode, DAVIS palette) per frame: ``<name>.png``.

    ``masks`` is (T, H, W) bool (written as 0 / ``object_id``) or an integer label map (written
    as is, values 0..255). ``names`` default to 00000, 00001, ...; they are sanitised so that no
    name can point outside ``out_dir``.
    """
    from PIL import Image

    labels = _label_maps(masks, object_id)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().tobytes()
    paths = []
    for stem, label in zip(_safe_names(names, len(labels)), labels, strict=True):
        path = _inside(out_dir / f"{stem}.png", out_dir)
        img = Image.fromarray(np.ascontiguousarray(label), mode="L").convert("P")
        img.putpalette(palette)
        img.save(path, format="PNG", optimize=False)
        paths.append(path)
    return paths


def zip_dir(src_dir: Path, zip_path: Path) -> Path:
    """Zip a folder (deflate); entries keep the folder's own name on top: ``masks/00000.png``.

    Symbolic links are skipped and the zip itself is never packed into itself. Written to a
    temporary file and renamed, so a reader never sees half a zip.
    """
    src_dir, zip_path = Path(src_dir), Path(zip_path)
    if not src_dir.is_dir():
        raise ValueError(f"not a folder: {src_dir.name}")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(zip_path.parent, zip_path.name)
    skip = {zip_path.resolve(), tmp.resolve()}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(src_dir.rglob("*")):
                if path.is_symlink() or not path.is_file() or path.resolve() in skip:
                    continue
                zf.write(path, arcname=str(Path(src_dir.name) / path.relative_to(src_dir)))
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return zip_path


# --------------------------------------------------------------------------- overlay video


def _draw_overlay(frame: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], alpha: float,
                  points: Sequence[tuple[float, float, int]]) -> np.ndarray:
    import cv2

    out = frame.copy()
    if mask.any():
        tint = np.asarray(color, np.float32)
        sel = out[mask].astype(np.float32)
        out[mask] = np.clip(sel * (1.0 - alpha) + tint * alpha, 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        thickness = max(1, round(min(mask.shape) / 240))
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), thickness, cv2.LINE_AA)
    radius = max(3, round(min(frame.shape[:2]) / 60))
    for x, y, label in points:
        centre = (int(round(x)), int(round(y)))
        fill = POSITIVE_COLOR if int(label) > 0 else NEGATIVE_COLOR
        cv2.circle(out, centre, radius + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, fill, -1, cv2.LINE_AA)
    return out


def _frame_rate(fps: float) -> Fraction:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(value).limit_denominator(1001)


def write_overlay_mp4(frames: np.ndarray, masks: np.ndarray, path: Path, fps: float,
                      points: Mapping[int, Sequence[tuple[float, float, int]]] | None = None,
                      color: tuple[int, int, int] = (255, 64, 64), alpha: float = 0.5) -> Path:
    """An H.264 MP4 (yuv420p, +faststart, plays in browsers) of the frames with the mask tinted
    and outlined. ``points`` maps frame index → [(x, y, label)], drawn as green (label 1) or red
    (label 0) dots. Odd frame sizes are padded by one edge pixel (H.264 needs even sides)."""
    import av

    frames, masks = np.asarray(frames), np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks {masks.shape} do not match frames {frames.shape[:3]}")
    if len(frames) == 0:
        raise ValueError("no frames to write")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rate = _frame_rate(fps)
    points = points or {}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, height, width, _ = frames.shape
    pad_h, pad_w = height % 2, width % 2
    tmp = temp_path(path.parent, path.stem, ".mp4")
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=rate, options={"crf": "23", "preset": "veryfast"})
            stream.width, stream.height = width + pad_w, height + pad_h
            stream.pix_fmt = "yuv420p"
            for t in range(len(frames)):
                img = _draw_overlay(frames[t], masks[t] != 0, color, alpha, points.get(t, ()))
                if pad_h or pad_w:
                    img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- COCO RLE


def masks_to_coco_rle(mask: np.ndarray) -> dict:
    """One (H, W) mask → COCO compressed RLE ``{"size": [h, w], "counts": str}`` (as pycocotools'
    ``mask.encode`` would give, with counts as text instead of bytes)."""
    return rle_encode(mask)


def coco_rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE (compressed string/bytes, or an uncompressed list of counts) → (H, W) bool."""
    return rle_decode(rle)


def write_coco_rle_json(masks: np.ndarray, path: Path, names: Sequence[str] | None = None) -> Path:
    """Every frame's mask as COCO RLE in one JSON:
    ``{"format": "coco_rle", "height", "width", "num_frames", "frames": [{"index", "name", "area",
    "segmentation": {"size", "counts"}}]}``."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    stems = _safe_names(names, len(masks))
    frames = [
        {"index": i, "name": stems[i], "area": int(np.count_nonzero(m)), "segmentation": masks_to_coco_rle(m)}
        for i, m in enumerate(masks)
    ]
    data = {"format": "coco_rle", "height": int(masks.shape[1]), "width": int(masks.shape[2]),
            "num_frames": int(masks.shape[0]), "frames": frames}
    return atomic_write_bytes(Path(path), json.dumps(data).encode(), durable=False)


# --------------------------------------------------------------------------- result JSON


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy → Python, tuples → lists, NaN/inf → None, paths → str."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None where not installed)."""
    out: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _area_summary(masks: np.ndarray) -> dict[str, Any]:
    areas = np.count_nonzero(masks.reshape(len(masks), -1), axis=1) if len(masks) else np.zeros(0)
    present = np.flatnonzero(areas)
    return {
        "frames": int(len(areas)),
        "frames_with_mask": int(len(present)),
        "first_frame": int(present[0]) if len(present) else None,
        "last_frame": int(present[-1]) if len(present) else None,
        "mean_area_px": float(areas.mean()) if len(areas) else None,
        "max_area_px": int(areas.max()) if len(areas) else None,
    }


def result_dict(result: SegmentationResult, extra: dict | None = None) -> dict[str, Any]:
    """The JSON-ready dict ``write_result_json`` writes (see ``RESULT_SCHEMA_KEYS``)."""
    g = result.grounding
    tracklets = [
        {
            "index": i,
            "source_keyframe": int(t.source_keyframe),
            "point_xy": [float(t.point_xy[0]), float(t.point_xy[1])],
            "s_frm": t.s_frm,
            "s_vid": t.s_vid,
            "s": t.s,
            "clicks": [list(c) for c in t.clicks],
            "mask_area": _area_summary(np.asarray(t.masks)),
        }
        for i, t in enumerate(result.tracklets)
    ]
    masks = np.asarray(result.masks) if result.tracklets else np.zeros((0, 0, 0), bool)
    data = {
        "schema_version": SCHEMA_VERSION,
        "clip": Path(result.clip_source).name,  # name only: never the server's directories
        "video": {"num_frames": int(masks.shape[0]), "height": int(masks.shape[1]),
                  "width": int(masks.shape[2])},
        "expression": result.expression,
        "reasoning": g.reasoning,
        "attributes": list(g.attributes),
        "cot_raw": g.cot.raw if g.cot else None,
        "cot_issues": list(g.cot.issues) if g.cot else [],
        "query_word": g.query_word,
        "query_words_frames": list(g.query_words_frames),
        "use_cot": g.use_cot,
        "use_soft_prompts": g.use_soft_prompts,
        "soft_prompts": dict(g.soft_prompts_info),
        "attributes_written": g.cot.attributes_text if g.cot else None,
        "attributes_source": g.attributes_source,
        "attribute_attention": [dict(a) for a in g.attribute_attention],
        "attribute_attention_video": [dict(a) for a in g.attribute_attention_video],
        "row_split": dict(g.row_split),
        "warnings": list(g.warnings),
        "layers": list(g.layers),
        "keyframes": np.asarray(g.keyframes).astype(int).tolist(),
        "video_frames": np.asarray(g.video_frames).astype(int).tolist(),
        "maps": {"s_frm_shape": list(np.shape(g.s_frm)), "s_vid_shape": list(np.shape(g.s_vid))},
        "layer_summaries": g.layer_summaries,
        "tracklets": tracklets,
        "chosen": int(result.chosen),
        "timings": {"grounding": dict(g.timings), "segmentation": dict(result.timings)},
        "config": result.config,
        "backbone": g.backbone,
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": extra or {},
        **{k: v for k, v in result.diagnostics.items() if k in DIAGNOSTIC_KEYS},
    }
    return _jsonable(data)


def write_result_json(result: SegmentationResult, path: Path, extra: dict | None = None) -> Path:
    """The result as JSON: expression, CoT, query word, keyframes, every tracklet with its scores,
    the chosen index, timings, config, backbone, package versions and a UTC timestamp. NaN and
    infinities become null; ``extra`` is stored under the ``"extra"`` key."""
    data = result_dict(result, extra)
    validate_result_json(data)
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    return atomic_write_bytes(Path(path), text.encode("utf-8"), durable=False)


def _is_num(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) for x in v)


def _soft_prompts_block(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("source"), str) and isinstance(v.get("trained"), bool)
            and (v.get("steps") is None or _is_int(v.get("steps")))
            and v.get("trained_with_cot") in (None, True, False))


def validate_result_json(data: dict) -> None:
    """Raise ``ValueError`` listing every missing or ill-typed key of a result JSON."""
    if not isinstance(data, dict):
        raise ValueError(f"result JSON must be an object, got {type(data).__name__}")
    problems = [f"missing key '{k}'" for k in RESULT_SCHEMA_KEYS if k not in data]
    checks: dict[str, tuple[Any, str]] = {
        "schema_version": (_is_int, "an integer"),
        "expression": (lambda v: isinstance(v, str), "a string"),
        "reasoning": (lambda v: isinstance(v, str), "a string"),
        "attributes": (_str_list, "a list of strings"),
        "cot_raw": (lambda v: v is None or isinstance(v, str), "a string or null"),
        "cot_issues": (_str_list, "a list of strings"),
        "query_word": (lambda v: isinstance(v, str), "a string"),
        "soft_prompts": (_soft_prompts_block, '{"source": str, "trained": bool, "steps": int or null, '
                                              '"trained_with_cot": bool or null}'),
        "keyframes": (_int_list, "a list of integers"),
        "video_frames": (_int_list, "a list of integers"),
        "tracklets": (lambda v: isinstance(v, list), "a list"),
        "chosen": (_is_int, "an integer"),
        "timings": (lambda v: isinstance(v, dict), "an object"),
        "config": (lambda v: isinstance(v, dict), "an object"),
        "backbone": (lambda v: isinstance(v, str), "a string"),
        "versions": (lambda v: isinstance(v, dict) and all(x is None or isinstance(x, str) for x in v.values()),
                     "an object of version strings or nulls"),
        "created": (lambda v: isinstance(v, str), "an ISO timestamp string"),
    }
    for key, (ok, what) in checks.items():
        if key in data and not ok(data[key]):
            problems.append(f"'{key}' must be {what}")
    if "evaluation" in data:
        ev = data["evaluation"]
        if not (isinstance(ev, dict) and all(k in ev and _is_num(ev[k]) for k in EVALUATION_KEYS)):
            problems.append(f"'evaluation' must be an object with numbers {', '.join(EVALUATION_KEYS)}")
    if "readouts" in data:
        from .grounding.readouts import READOUTS

        ro = data["readouts"]
        points = ro.get("points") if isinstance(ro, dict) else None
        if not (isinstance(points, dict) and set(points) == set(READOUTS) and _is_int(ro.get("frame"))
                and all(p is None or (isinstance(p, list) and len(p) == 2 and all(_is_num(v) for v in p))
                        for p in points.values())):
            problems.append(f"'readouts' must hold 'frame' and 'points' {{{', '.join(READOUTS)}: [x, y] or null}}")
    if isinstance(data.get("created"), str):
        try:
            datetime.fromisoformat(data["created"])
        except ValueError:
            problems.append("'created' is not an ISO timestamp")
    if isinstance(data.get("timings"), dict):
        for part in ("grounding", "segmentation"):
            if not isinstance(data["timings"].get(part), dict):
                problems.append(f"'timings' must hold an object '{part}'")
    tracklets = data.get("tracklets")
    if isinstance(tracklets, list):
        for i, t in enumerate(tracklets):
            if not isinstance(t, dict):
                problems.append(f"tracklet {i} must be an object")
                continue
            problems += [f"tracklet {i} is missing '{k}'" for k in TRACKLET_KEYS if k not in t]
            if "source_keyframe" in t and not _is_int(t["source_keyframe"]):
                problems.append(f"tracklet {i}: 'source_keyframe' must be an integer")
            pt = t.get("point_xy")
            if "point_xy" in t and not (isinstance(pt, list) and len(pt) == 2 and all(_is_num(v) for v in pt)):
                problems.append(f"tracklet {i}: 'point_xy' must be [x, y]")
            for k in ("s_frm", "s_vid", "s"):
                if k in t and not _is_num(t[k]):
                    problems.append(f"tracklet {i}: '{k}' must be a number or null")
            if "clicks" in t and not isinstance(t["clicks"], list):
                problems.append(f"tracklet {i}: 'clicks' must be a list")
        if tracklets and _is_int(data.get("chosen")) and not 0 <= data["chosen"] < len(tracklets):
            problems.append(f"'chosen' = {data['chosen']} is not a tracklet index (0..{len(tracklets) - 1})")
    if problems:
        raise ValueError("invalid result JSON: " + "; ".join(problems))


# --------------------------------------------------------------------------- everything at once


def _overlay_points(result: SegmentationResult) -> dict[int, list[tuple[float, float, int]]]:
    chosen = result.tracklets[result.chosen]
    points: dict[int, list[tuple[float, float, int]]] = {
        int(chosen.source_keyframe): [(float(chosen.point_xy[0]), float(chosen.point_xy[1]), 1)]
    }
    for frame, x, y, label in chosen.clicks:
        points.setdefault(int(frame), []).append((float(x), float(y), int(label)))
    return points


def _move_into(tmp: Path, out_dir: Path) -> None:
    """Move every entry of ``tmp`` into ``out_dir``, replacing older outputs of the same name."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    trash = _temp_dir(out_dir.parent, out_dir.name, "old")
    try:
        for entry in sorted(tmp.iterdir()):
            dest = out_dir / entry.name
            if dest.exists() or dest.is_symlink():
                os.replace(dest, trash / entry.name)
            os.replace(entry, dest)
    except BaseException:
        for old in trash.iterdir():  # put back what this move displaced
            if not (out_dir / old.name).exists():
                os.replace(old, out_dir / old.name)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def export_all(result: SegmentationResult, clip: Clip, out_dir: Path) -> dict[str, Path]:
    """Write every output of one result into ``out_dir``:
    ``masks/<frame>.png``, ``masks.zip``, ``overlay.mp4``, ``result.json``, ``masks_coco_rle.json``.

    Returns their paths keyed 'masks_dir', 'zip', 'overlay', 'result_json', 'coco_rle'. Files are
    built in a hidden folder beside ``out_dir`` and moved in only when all succeeded.
    """
    out_dir = Path(out_dir)
    if not result.tracklets or not 0 <= result.chosen < len(result.tracklets):
        raise ValueError("the result has no chosen tracklet to export")
    masks = np.asarray(result.masks)
    if masks.shape != (clip.num_frames, clip.height, clip.width):
        raise ValueError(
            f"masks {masks.shape} do not match the clip ({clip.num_frames}, {clip.height}, {clip.width})"
        )
    names = list(clip.names())
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_dir(out_dir.parent, out_dir.name, "partial")
    try:
        write_palette_pngs(masks.astype(bool), tmp / "masks", names)
        zip_dir(tmp / "masks", tmp / "masks.zip")
        fps = clip.fps if math.isfinite(clip.fps) and clip.fps > 0 else 24.0
        write_overlay_mp4(clip.frames, masks, tmp / "overlay.mp4", fps, points=_overlay_points(result))
        extra = {"fps": fps, "files": ["masks/", "masks.zip", "overlay.mp4", "masks_coco_rle.json"]}
        write_result_json(result, tmp / "result.json", extra=extra)
        write_coco_rle_json(masks, tmp / "masks_coco_rle.json", names)
        _move_into(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "masks_dir": out_dir / "masks",
        "zip": out_dir / "masks.zip",
        "overlay": out_dir / "overlay.mp4",
        "result_json": out_dir / "result.json",
        "coco_rle": out_dir / "masks_coco_rle.json",
    }
