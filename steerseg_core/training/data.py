"""Training data: Ref-YouTube-VOS and a generic folder layout, read into (frames, masks, expression).

Two on-disk layouts are understood, both indexed into the same ``ExpressionRecord`` list:

* **Ref-YouTube-VOS** (train split): ``meta_expressions.json`` —
  ``{"videos": {vid: {"expressions": {id: {"exp", "obj_id"}}, "frames": [...]}}}`` — with
  ``JPEGImages/<vid>/<frame>.jpg`` and ``Annotations/<vid>/<frame>.png`` palette masks whose index
  is ``obj_id``. ``--data`` may point at the split folder (``meta_expressions.json`` beside
  ``JPEGImages/``) or at the dataset root (``meta_expressions/train/meta_expressions.json`` and
  ``train/JPEGImages/``). The valid split's benchmark file has no ``obj_id``; the authors'
  object-level file (``meta_expressions_valid.json``) supplies it (``attach_object_ids``).
* **Generic folder** (your own data): ``expressions.json`` —
  ``{"clips": {name: {"expressions": [{"exp": "...", "obj_id": 1} | "..."], "frames": "dir",
  "masks": "dir", "fps": 6}}}``. ``frames`` defaults to ``<name>/frames`` and ``masks`` to
  ``<name>/masks`` (relative to the JSON file, or absolute); masks are PNGs named like the frames.
  With ``obj_id`` the object is the pixels equal to it (palette index or gray value); without
  it, every non-zero pixel (so DAVIS-2016 0/255 masks work as they are).

Bad data never crashes a run: records that cannot be used (empty expression, no object id, no
frames) are dropped while indexing, samples that fail to load (missing mask, unreadable frame,
object absent) raise ``BadSample``; both are counted by reason in a ``SkipCounter``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..datasets.meta import read_meta
from ..errors import InputError
from ..video import sample_indices

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
YTVOS_FPS = 6.0  # Ref-YouTube-VOS train frames are every 5th frame of 30 fps video


class BadSample(Exception):
    """A sample that cannot be used; ``reason`` is the short label it is counted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class SkipCounter:
    """How many records/samples were skipped, by reason (serialisable for checkpoints and logs)."""

    counts: Counter = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    @property
    def total(self) -> int:
        return int(sum(self.counts.values()))

    def to_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(self.counts.items())}

    @classmethod
    def from_dict(cls, data: dict[str, int] | None) -> SkipCounter:
        return cls(Counter({str(k): int(v) for k, v in (data or {}).items()}))

    def summary(self) -> str:
        if not self.counts:
            return "none skipped"
        return f"{self.total} skipped (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) + ")"


@dataclass(frozen=True)
class ExpressionRecord:
    """One (video, expression, object): where its frames and masks are. Nothing is read yet."""

    video: str
    exp_id: str
    expression: str
    obj_id: int | None
    frame_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]
    fps: float = YTVOS_FPS
    category: str | None = None

    @property
    def key(self) -> str:
        return f"{self.video}/{self.exp_id}"


@dataclass
class TrainSample:
    """A loaded sample: ``frames`` (T, H, W, 3) uint8, ``masks`` (T, H, W) bool, same T."""

    frames: np.ndarray
    masks: np.ndarray
    expression: str
    key: str
    indices: np.ndarray
    fps: float


@dataclass
class Dataset:
    """An indexed dataset: usable records plus what was skipped while indexing."""

    records: list[ExpressionRecord]
    skipped: SkipCounter
    layout: str
    root: Path

    def __len__(self) -> int:
        return len(self.records)

    def split(self, val_count: int, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Hold out ``val_count`` records from distinct videos (deterministic given ``seed``)."""
        videos = sorted({r.video for r in self.records})
        if val_count <= 0 or len(videos) < 2:
            return self, Dataset([], SkipCounter(), self.layout, self.root)
        rng = np.random.default_rng(seed)
        order = [videos[i] for i in rng.permutation(len(videos))]
        n_val_videos = min(val_count, len(videos) - 1)
        val_videos = set(order[:n_val_videos])
        train = [r for r in self.records if r.video not in val_videos]
        val_all = [r for r in self.records if r.video in val_videos]
        # one expression per held-out video, in a fixed order
        val, seen = [], set()
        for r in sorted(val_all, key=lambda r: (order.index(r.video), r.exp_id)):
            if r.video not in seen:
                val.append(r)
                seen.add(r.video)
        return (Dataset(train, self.skipped, self.layout, self.root),
                Dataset(val[:val_count], SkipCounter(), self.layout, self.root))


# -- Ref-YouTube-VOS --------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"'{path}' not found") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"'{Path(path).name}' is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"'{Path(path).name}' must hold a JSON object")
    return data


def _obj_id(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_meta_expressions(path: str | Path) -> dict[str, dict]:
    """Benchmark-layout ``meta_expressions.json`` (read by ``datasets.meta``) → {vid: {"frames":
    [...], "expressions": [(exp_id, text, obj_id | None), ...]}}. Text is stripped, never dropped
    here; a structurally broken entry is an InputError naming the video."""
    out: dict[str, dict] = {}
    for vid, v in read_meta(path).items():
        items = [(e.exp_id, e.text.strip() if e.text else "", _obj_id(e.obj_ids[0] if len(e.obj_ids) == 1 else None))
                 for e in v.expressions]
        out[vid] = {"frames": list(v.frames or []), "expressions": items}
    return out


def parse_object_expressions(path: str | Path) -> dict[str, dict[int, dict]]:
    """The authors' object-level file (``meta_expressions_<split>.json``, read by
    ``datasets.meta``) → {vid: {obj_id: {"category", "expressions"}}} with object ids as ints, in
    object order."""
    out: dict[str, dict[int, dict]] = {}
    for vid, v in read_meta(path).items():
        objects: dict[int, dict] = {}
        for e in v.expressions:
            obj = objects.setdefault(int(e.obj_ids[0]), {"category": e.fields.get("category"), "expressions": []})
            obj["expressions"].append(e.text or "")
        out[vid] = objects
    return out


def attach_object_ids(meta: dict[str, dict], objects: dict[str, dict[int, dict]]) -> dict[str, dict]:
    """Give benchmark expressions without ``obj_id`` the id of the object they belong to.

    The object-level file lists, object by object, the same full-video expressions that the
    benchmark file numbers "0", "1", ...; walking both in order pairs them. Expressions whose text
    does not match keep ``None`` (they are skipped as "no object id" when indexing).
    """
    out = {}
    for vid, entry in meta.items():
        flat = [(oid, obj.get("category"), text.strip())
                for oid, obj in (objects.get(vid) or {}).items() for text in obj["expressions"]]
        items = []
        for i, (exp_id, text, oid) in enumerate(entry["expressions"]):
            if oid is None and i < len(flat) and flat[i][2] == text:
                oid = flat[i][0]
            items.append((exp_id, text, oid))
        out[vid] = {**entry, "expressions": items,
                    "categories": {o: c for o, c, _ in flat}}
    return out


def find_ytvos(root: str | Path, split: str = "train") -> tuple[Path, Path]:
    """(meta_expressions.json, split folder with JPEGImages/ and Annotations/) under ``root``."""
    root = Path(root)
    candidates = [(root / "meta_expressions.json", root),
                  (root / "meta_expressions" / split / "meta_expressions.json", root / split),
                  (root.parent / "meta_expressions" / root.name / "meta_expressions.json", root)]
    for meta, folder in candidates:
        if meta.is_file():
            return meta, folder
    raise InputError(f"no Ref-YouTube-VOS 'meta_expressions.json' under '{root}' (looked in "
                     f"{root.name}/ and {root.name}/meta_expressions/{split}/)")


def ytvos_dataset(root: str | Path, split: str = "train",
                  object_meta: str | Path | None = None) -> Dataset:
    """Index a Ref-YouTube-VOS split. Frame/mask files are checked when a sample is loaded."""
    meta_path, folder = find_ytvos(root, split)
    meta = parse_meta_expressions(meta_path)
    if object_meta is not None:
        meta = attach_object_ids(meta, parse_object_expressions(object_meta))
    jpeg, ann = folder / "JPEGImages", folder / "Annotations"
    skipped = SkipCounter()
    records = []
    for vid, entry in meta.items():
        frames = entry["frames"]
        vid_dir = jpeg / vid
        if not frames or not vid_dir.is_dir():
            skipped.add("no frames", max(1, len(entry["expressions"])))
            continue
        fpaths = tuple(vid_dir / f"{f}.jpg" for f in frames)
        mpaths = tuple(ann / vid / f"{f}.png" for f in frames)
        cats = entry.get("categories", {})
        for exp_id, text, oid in entry["expressions"]:
            if not text:
                skipped.add("empty expression")
            elif oid is None:
                skipped.add("no object id")
            else:
                records.append(ExpressionRecord(vid, exp_id, text, oid, fpaths, mpaths, YTVOS_FPS,
                                                cats.get(oid)))
    return Dataset(records, skipped, "ref-youtube-vos", folder)


# -- generic folder ---------------------------------------------------------------------------

def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_dataset(root: str | Path) -> Dataset:
    """Index a generic ``expressions.json`` folder (see the module docstring for the layout)."""
    root = Path(root)
    spec_path = root / "expressions.json" if root.is_dir() else root
    data = _read_json(spec_path)
    base = spec_path.parent
    clips = data.get("clips")
    if not isinstance(clips, dict):
        raise InputError(f"'{spec_path.name}' needs a 'clips' object: {{name: {{\"expressions\": [...]}}}}")
    skipped = SkipCounter()
    records = []
    for name, clip in clips.items():
        clip = clip if isinstance(clip, dict) else {"expressions": clip}
        exps = clip.get("expressions") or []
        if not isinstance(exps, (list, str, dict)):
            raise InputError(f"'{spec_path.name}': clip '{name}' needs an 'expressions' list")
        exps = [exps] if isinstance(exps, (str, dict)) else list(exps)
        frame_dir = base / clip.get("frames", f"{name}/frames")
        mask_dir = base / clip.get("masks", f"{name}/masks")
        frames = _images(frame_dir)
        if not frames:
            skipped.add("no frames", max(1, len(exps)))
            continue
        fpaths = tuple(frames)
        mpaths = tuple(mask_dir / f"{p.stem}.png" for p in frames)
        fps = float(clip.get("fps", YTVOS_FPS))
        for i, e in enumerate(exps):
            e = e if isinstance(e, dict) else {"exp": e}
            text = e.get("exp")
            text = text.strip() if isinstance(text, str) else ""
            if not text:
                skipped.add("empty expression")
                continue
            records.append(ExpressionRecord(str(name), str(e.get("id", i)), text, _obj_id(e.get("obj_id")),
                                            fpaths, mpaths, fps, e.get("category")))
    return Dataset(records, skipped, "folder", root)


def open_dataset(path: str | Path, split: str = "train") -> Dataset:
    """Index ``path`` in whichever layout it has (Ref-YouTube-VOS or generic folder)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"dataset folder '{path}' does not exist")
    if (p / "expressions.json").is_file() or p.name == "expressions.json":
        return folder_dataset(p)
    try:
        return ytvos_dataset(p, split)
    except InputError as err:
        if (p / "meta_expressions.json").is_file() or any(p.glob("meta_expressions/*/meta_expressions.json")):
            raise  # the file is there: its own error says what is wrong with it
        raise InputError(f"'{path}' is neither a Ref-YouTube-VOS folder (meta_expressions.json) nor a "
                         "generic folder (expressions.json)") from err


# -- loading one sample -----------------------------------------------------------------------

def frame_indices(num_frames: int, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``k`` indices over ``num_frames``: uniform with both ends (``rng`` None, for validation),
    or one random index inside each of ``k`` equal segments (training; sorted, may repeat)."""
    if rng is None:
        return sample_indices(num_frames, k)
    edges = np.linspace(0, num_frames, k + 1)
    lo = np.floor(edges[:-1]).astype(np.int64)
    hi = np.maximum(lo + 1, np.ceil(edges[1:]).astype(np.int64))
    idx = lo + np.floor(rng.random(k) * (hi - lo)).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def _read_frame(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as err:
        raise BadSample("missing frame", path.name) from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadSample("unreadable frame", f"{path.name} ({err})") from err


def read_mask(path: Path, obj_id: int | None) -> np.ndarray:
    """(H, W) bool: pixels equal to ``obj_id`` (palette index / gray level), or non-zero if None."""
    try:
        with Image.open(path) as im:
            if im.mode in ("P", "L", "1", "I", "I;16"):
                arr = np.asarray(im)
            else:
                arr = np.asarray(im.convert("L"))
    except FileNotFoundError as err:
        raise BadSample("missing mask", path.name) from err
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise BadSample("unreadable mask", f"{path.name} ({err})") from err
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr > 0 if obj_id is None else arr == obj_id


def load_sample(record: ExpressionRecord, num_frames: int, rng: np.random.Generator | None = None,
                max_side: int | None = None) -> TrainSample:
    """Read ``num_frames`` frames (uniform, or jittered with ``rng``) and the object's masks.

    Raises ``BadSample`` on a missing/unreadable frame or mask, mismatched sizes, or an object that
    is absent from every sampled frame.
    """
    n = len(record.frame_paths)
    if n == 0:
        raise BadSample("no frames", record.key)
    idx = frame_indices(n, num_frames, rng)
    frames, masks = [], []
    for i in idx:
        frame = _read_frame(record.frame_paths[i])
        mask = read_mask(record.mask_paths[i], record.obj_id)
        if mask.shape != frame.shape[:2]:
            raise BadSample("mask size mismatch", f"{record.mask_paths[i].name}: mask {mask.shape}, "
                                                  f"frame {frame.shape[:2]}")
        if max_side and max(frame.shape[:2]) > max_side:
            frame, mask = _shrink(frame, mask, max_side)
        frames.append(frame)
        masks.append(mask)
    if len({f.shape for f in frames}) != 1:
        raise BadSample("frame size varies", record.key)
    masks_arr = np.stack(masks)
    if not masks_arr.any():
        raise BadSample("object absent", record.key)
    return TrainSample(np.stack(frames), masks_arr, record.expression, record.key, idx, record.fps)


def _shrink(frame: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = frame.shape[:2]
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    f = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))
    m = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) >= 128
    return f, m


