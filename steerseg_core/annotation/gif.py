"""The animated GIF an annotator sees: made once per clip, cached on disk, bounded in size.

The cache file name is a hash of the clip's resolved path, its modification time and the
rendering settings — never a user-supplied name — so nothing can escape the cache folder and a
changed clip gets a new GIF. Files are written to a temporary name and renamed, so concurrent
annotators opening the same item never see half a GIF.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from ..config import LimitsConfig
from ..errors import VideoError
from ..files import atomic_write_bytes
from .sources import IMAGE_EXTS

GIF_VERSION = 1
DEFAULT_MAX_SIDE = 320
DEFAULT_MAX_FRAMES = 48
DEFAULT_FPS = 8.0


def _frame_indices(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    img = img.convert("RGB")
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    return img


def _read_folder(folder: Path, max_frames: int, max_side: int) -> list[Image.Image]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise VideoError(f"no image files in folder '{folder.name}'")
    frames = []
    for i in _frame_indices(len(files), max_frames):
        try:
            with Image.open(files[i]) as im:
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale, much faster
                frames.append(_fit(im, max_side))
        except OSError as err:
            raise VideoError(f"cannot read frame {files[i].name} of '{folder.name}' "
                             f"({type(err).__name__})") from err
    return frames


def _read_file(path: Path, max_frames: int, max_side: int, limits: LimitsConfig) -> list[Image.Image]:
    # Headers first (size, frame count, canvas): a GIF or video bomb is refused before decoding.
    from ..video import load_clip, probe_video

    if path.suffix.lower() == ".gif":
        info = probe_video(path, limits)
        keep = set(_frame_indices(info.num_frames, max_frames))
        frames = []
        try:
            with Image.open(path) as im:  # decoded one at a time; only the kept frames are held
                for i, frame in enumerate(ImageSequence.Iterator(im)):
                    if i in keep:
                        frames.append(_fit(frame.convert("RGB"), max_side))
        except OSError as err:
            if not frames:
                raise VideoError(f"cannot read {path.name} ({type(err).__name__})") from err
        return frames
    clip = load_clip(str(path), limits, max_side=max_side)
    return [_fit(Image.fromarray(clip.frames[i]), max_side)
            for i in _frame_indices(clip.num_frames, max_frames)]


def read_preview_frames(clip_ref: str | Path, max_frames: int, max_side: int,
                        limits: LimitsConfig | None = None) -> list[Image.Image]:
    """Up to ``max_frames`` uniformly spaced RGB frames, longest side at most ``max_side``; a file
    is checked against ``limits`` (default ``LimitsConfig()``) from its headers first."""
    ref = Path(clip_ref)
    if ref.is_dir():
        return _read_folder(ref, max_frames, max_side)
    if ref.is_file():
        return _read_file(ref, max_frames, max_side, limits or LimitsConfig())
    raise VideoError(f"clip '{ref.name}' does not exist any more")


def _shared_palette(frames: list[Image.Image]) -> Image.Image:
    """One 255-colour palette from a montage of up to 6 frames (per-frame palettes are ~8× slower)."""
    picks = [frames[i] for i in _frame_indices(len(frames), 6)]
    w, h = max(f.width for f in picks), sum(f.height for f in picks)
    montage = Image.new("RGB", (w, h))
    y = 0
    for f in picks:
        montage.paste(f, (0, y))
        y += f.height
    return montage.quantize(colors=255, method=Image.Quantize.MEDIANCUT)


def encode_gif(frames: list[Image.Image], fps: float) -> bytes:
    palette = _shared_palette(frames)
    quantised = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    quantised[0].save(buf, format="GIF", save_all=True, append_images=quantised[1:],
                      duration=max(20, int(round(1000 / fps))), loop=0)
    return buf.getvalue()


def gif_cache_path(clip_ref: str | Path, cache_dir: str | Path, *, max_side: int, max_frames: int,
                   fps: float, max_bytes: int) -> Path:
    ref = Path(clip_ref).resolve()
    try:
        mtime = ref.stat().st_mtime_ns
    except OSError:
        mtime = 0
    key = json.dumps([GIF_VERSION, str(ref), mtime, max_side, max_frames, fps, max_bytes])
    return Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.gif"


def clip_gif(
    clip_ref: str | Path, cache_dir: str | Path, *, limits: LimitsConfig | None = None,
    max_side: int = DEFAULT_MAX_SIDE, max_frames: int = DEFAULT_MAX_FRAMES, fps: float = DEFAULT_FPS,
) -> Path:
    """The cached GIF of a clip (a frames folder, a GIF or a video file), made on first request.

    At most ``max_frames`` uniformly subsampled frames, longest side ``max_side``; if the file is
    larger than ``limits.max_gif_bytes`` it is remade smaller (fewer frames, smaller side).
    """
    from ..video import effective_fps

    limits = limits or LimitsConfig()
    max_frames = max(1, min(max_frames, limits.max_gif_frames))
    max_bytes = int(limits.max_gif_bytes)
    out = gif_cache_path(clip_ref, cache_dir, max_side=max_side, max_frames=max_frames, fps=fps,
                         max_bytes=max_bytes)
    if out.is_file():
        return out
    frames = read_preview_frames(clip_ref, max_frames, max_side, limits)
    data = encode_gif(frames, fps)
    side, rate = max_side, fps
    while len(data) > max_bytes:
        if len(frames) <= 1 and side <= 32:
            raise VideoError(f"cannot fit a preview of {Path(clip_ref).name} into {max_bytes} bytes")
        keep = _frame_indices(len(frames), max(1, len(frames) // 2))
        rate = effective_fps(rate, len(frames), len(keep))  # fewer frames, same playback duration
        side = max(32, int(side * 0.75))
        frames = [_fit(frames[i], side) for i in keep]
        data = encode_gif(frames, max(rate, 0.5))
    return atomic_write_bytes(out, data, durable=False)
