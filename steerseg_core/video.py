"""Read clips (video files, animated GIFs, folders of frames) for everything else in SteerSeg.

The CLI, the app, evaluation and training all load video through this file, so the input limits
(``LimitsConfig``) are enforced here, once. ``probe_video`` reads only headers — container and
stream metadata, GIF block structure, image headers — so an hour-long, 8K or bomb-like input is
refused before a single frame is decoded. ``load_clip`` probes first, then decodes, re-checking
the limits while decoding because headers can lie.

Every failure is a ``VideoError`` (or ``InputError`` for bad text/options) whose message names the
file by its *name only*: messages are shown on a public web page and must not reveal server paths.
"""

from __future__ import annotations

import math
import operator
import re
import struct
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .config import LimitsConfig
from .errors import InputError, VideoError
from .types import Clip

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFAULT_FOLDER_FPS = 24.0
DEFAULT_VIDEO_FPS = 24.0
# A stream that declares a frame count but decodes to fewer frames is truncated — allowing for
# frames an MP4 edit list legitimately hides (a few, or up to a tenth of a short clip).
_MISSING_FRAMES_OK = (3, 0.1)

# FFmpeg demuxers we accept for video files (GIFs are detected by magic bytes and read separately).
_VIDEO_DEMUXERS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "MP4/MOV",
    "matroska,webm": "WebM/MKV",
    "avi": "AVI",
}
_MB = 1024 * 1024


@dataclass(frozen=True)
class VideoInfo:
    """What the headers say about a clip.

    ``num_frames`` is exact for MP4/MOV/AVI, GIF and folders; for WebM/MKV (no frame count in the
    container) it is estimated from duration × fps. ``width``/``height`` are the stored frame size
    (a display rotation flag in an MP4 is applied by ``load_clip``, which may swap them).
    """

    path: str
    kind: Literal["file", "folder"]
    num_frames: int
    fps: float
    width: int
    height: int
    duration_s: float


# --------------------------------------------------------------------------- helpers


def _name(path: Path) -> str:
    """The name users may see: the last path component only, never the server's directory."""
    return path.name or str(path)


def _limits(limits: LimitsConfig | None) -> LimitsConfig:
    return limits if limits is not None else LimitsConfig()


def _natural_key(name: str) -> list[int | str]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _fmt_mb(nbytes: float) -> str:
    if nbytes < 0.1 * _MB:
        return f"{nbytes / 1024:,.1f} kB"
    return f"{nbytes / _MB:,.1f} MB"


def _check_limits(info: VideoInfo, limits: LimitsConfig, label: str) -> None:
    """Refuse a clip whose header numbers break a limit; messages say what to change."""
    pixels = info.width * info.height
    if pixels > limits.max_pixels:
        raise VideoError(
            f"{label} is {info.width}×{info.height} ({pixels:,} pixels per frame); the limit is "
            f"{limits.max_pixels:,} pixels. Downscale it first."
        )
    if info.num_frames > limits.max_frames:
        raise VideoError(
            f"{label} has {info.num_frames:,} frames; the limit is {limits.max_frames:,}. "
            "Trim it to a shorter clip."
        )
    if info.duration_s > limits.max_seconds:
        raise VideoError(
            f"{label} is {info.duration_s:,.1f} s long; the limit is {limits.max_seconds:g} s. "
            "Trim it to a shorter clip."
        )


def _check_bytes(nbytes: int, limits: LimitsConfig, label: str) -> None:
    if nbytes > limits.max_upload_mb * _MB:
        raise VideoError(
            f"{label} is {_fmt_mb(nbytes)}; the upload limit is {limits.max_upload_mb:g} MB."
        )


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) after fitting the longer side into ``max_side`` (never upscales)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_memory(num_frames: int, width: int, height: int, limits: LimitsConfig, label: str) -> None:
    budget_mb = float(limits.max_decoded_mb)
    need = num_frames * width * height * 3
    if need > budget_mb * _MB:
        raise VideoError(
            f"decoding {label} would need {_fmt_mb(need)} of memory ({num_frames:,} frames of "
            f"{width}×{height}); the limit is {budget_mb:,.0f} MB (STEERSEG_MAX_DECODED_MB). Use a "
            "shorter or smaller clip."
        )


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    import cv2

    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


class _FrameBuffer:
    """A growable (T, H, W, 3) uint8 array: avoids holding a list and its stacked copy at once."""

    def __init__(self, capacity: int, height: int, width: int) -> None:
        self.data = np.empty((max(1, capacity), height, width, 3), np.uint8)
        self.count = 0

    def append(self, frame: np.ndarray) -> None:
        if self.count == self.data.shape[0]:
            grown = np.empty((math.ceil(self.count * 1.5) + 1, *self.data.shape[1:]), np.uint8)
            grown[: self.count] = self.data[: self.count]
            self.data = grown
        self.data[self.count] = frame
        self.count += 1

    def array(self) -> np.ndarray:
        if self.count == self.data.shape[0]:
            return self.data
        return self.data[: self.count].copy()


# --------------------------------------------------------------------------- folders of frames


def _folder_images(folder: Path) -> list[Path]:
    label = f"folder '{_name(folder)}'"
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise VideoError(f"{label} cannot be read ({exc.strerror or 'permission denied'}).") from exc
    if not entries:
        raise VideoError(f"{label} is empty; it should hold the frames as JPEG or PNG images.")
    images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not images:
        raise VideoError(
            f"{label} has no JPEG or PNG frames (found {len(entries)} other file(s), e.g. "
            f"'{sorted(p.name for p in entries)[0]}')."
        )
    return sorted(images, key=lambda p: _natural_key(p.name))


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception as exc:  # PIL raises many types for broken files
        raise VideoError(f"frame '{_name(path)}' is not a readable JPEG/PNG image.") from exc


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:
        raise VideoError(f"frame '{_name(path)}' is damaged and cannot be decoded.") from exc


def _probe_images(path: Path, images: list[Path], kind: Literal["file", "folder"], fps: float,
                  limits: LimitsConfig) -> VideoInfo:
    label = f"folder '{_name(path)}'" if kind == "folder" else f"'{_name(path)}'"
    _check_bytes(sum(p.stat().st_size for p in images), limits, label)
    width, height = _image_size(images[0])
    info = VideoInfo(str(path), kind, len(images), fps, width, height, len(images) / fps)
    _check_limits(info, limits, label)
    return info


def _check_same_size(images: list[Path], size: tuple[int, int]) -> None:
    for p in images[1:]:
        other = _image_size(p)
        if other != size:
            raise VideoError(
                f"frames differ in size: '{_name(p)}' is {other[0]}×{other[1]} but "
                f"'{_name(images[0])}' is {size[0]}×{size[1]}. All frames of a clip must match."
            )


def _load_images(images: list[Path], info: VideoInfo, out_size: tuple[int, int]) -> np.ndarray:
    frames = np.empty((len(images), out_size[1], out_size[0], 3), np.uint8)
    for i, p in enumerate(images):
        img = _read_image(p)
        if (img.shape[1], img.shape[0]) != (info.width, info.height):
            raise VideoError(f"frame '{_name(p)}' changed size while it was being read.")
        frames[i] = _resize(img, out_size)
    return frames


# --------------------------------------------------------------------------- GIF


@dataclass(frozen=True)
class _GifHeader:
    width: int
    height: int
    num_frames: int
    duration_s: float


def _parse_gif(data: bytes, label: str) -> _GifHeader:
    """Walk a GIF's block structure without decompressing any pixels.

    Counts image descriptors, sums frame delays (browser rule: a delay under 2/100 s plays as
    1/10 s) and takes the canvas as the logical screen grown to cover every frame rectangle.
    """
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise VideoError(f"{label} is not a valid GIF file.")
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    pos = 13
    if packed & 0x80:
        pos += 3 * (2 ** ((packed & 7) + 1))
    frames, total_cs, delay_cs = 0, 0, 0
    canvas_w, canvas_h = width, height

    def skip_sub_blocks(p: int) -> int:
        while p < len(data):
            size = data[p]
            p += 1 + size
            if size == 0:
                return p
        return len(data)

    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21 and pos + 1 < len(data):  # extension
            if data[pos + 1] == 0xF9 and pos + 5 < len(data):  # graphic control: delay at +4
                delay_cs = struct.unpack_from("<H", data, pos + 4)[0]
            pos = skip_sub_blocks(pos + 2)
        elif block == 0x2C and pos + 10 <= len(data):  # image descriptor
            left, top, w, h, ipacked = struct.unpack_from("<HHHHB", data, pos + 1)
            canvas_w, canvas_h = max(canvas_w, left + w), max(canvas_h, top + h)
            pos += 10
            if ipacked & 0x80:
                pos += 3 * (2 ** ((ipacked & 7) + 1))
            pos = skip_sub_blocks(pos + 1)  # LZW minimum code size, then data sub-blocks
            frames += 1
            total_cs += delay_cs if delay_cs >= 2 else 10
            delay_cs = 0
        else:
            break  # garbage or truncation: keep what was counted
    if frames == 0:
        raise VideoError(f"{label} contains no frames.")
    return _GifHeader(canvas_w, canvas_h, frames, total_cs / 100.0)


def _probe_gif(path: Path, size: int, limits: LimitsConfig) -> VideoInfo:
    label = f"'{_name(path)}'"
    if size > limits.max_gif_bytes:
        raise VideoError(
            f"GIF {label} is {_fmt_mb(size)}; the limit for GIFs is {_fmt_mb(limits.max_gif_bytes)}. "
            "Convert it to MP4 first."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VideoError(f"{label} cannot be read ({exc.strerror or 'I/O error'}).") from exc
    head = _parse_gif(data, label)
    if head.num_frames > limits.max_gif_frames:
        raise VideoError(
            f"GIF {label} has {head.num_frames:,} frames; the limit for GIFs is "
            f"{limits.max_gif_frames:,}."
        )
    fps = head.num_frames / head.duration_s
    info = VideoInfo(str(path), "file", head.num_frames, fps, head.width, head.height, head.duration_s)
    _check_limits(info, limits, f"GIF {label}")
    return info


def _decode_gif(path: Path, info: VideoInfo, out_size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    label = f"'{_name(path)}'"
    frames = np.empty((info.num_frames, out_size[1], out_size[0], 3), np.uint8)
    count = 0
    try:
        with Image.open(path) as img:
            for i in range(info.num_frames):
                img.seek(i)
                rgb = np.asarray(img.convert("RGB"))
                if rgb.shape[:2] != (info.height, info.width):
                    canvas = np.zeros((info.height, info.width, 3), np.uint8)
                    h, w = min(rgb.shape[0], info.height), min(rgb.shape[1], info.width)
                    canvas[:h, :w] = rgb[:h, :w]
                    rgb = canvas
                frames[i] = _resize(rgb, out_size)
                count += 1
    except Exception as exc:  # a truncated GIF keeps the frames before the damage, as browsers do
        if count == 0:
            raise VideoError(f"GIF {label} is damaged: no frame could be decoded.") from exc
    return frames[:count] if count < len(frames) else frames


# --------------------------------------------------------------------------- video files


def _open_container(path: Path):  # -> av.container.InputContainer
    import av

    label = f"'{_name(path)}'"
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"{label} is not a readable video: the file is corrupt, incomplete or not a video "
            f"({exc.strerror or type(exc).__name__})."
        ) from exc
    except Exception as exc:
        raise VideoError(f"{label} could not be opened as a video ({type(exc).__name__}).") from exc
    fmt = container.format.name
    if fmt not in _VIDEO_DEMUXERS:
        container.close()
        what = {"png_pipe": "a PNG image", "jpeg_pipe": "a JPEG image", "image2": "an image"}.get(
            fmt, f"an unsupported format ({fmt})"
        )
        raise VideoError(
            f"{label} is not a supported video: it contains {what}. Supported: MP4, MOV, WebM, "
            "MKV, AVI, GIF or a folder of JPEG/PNG frames."
        )
    return container


def _video_stream(container, label: str):
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise VideoError(f"{label} has no video stream (audio only or no picture track).")


def _stream_info(path: Path, container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate and float(rate) > 0 else DEFAULT_VIDEO_FPS
    duration = 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    num_frames = int(stream.frames or 0)
    if num_frames <= 0:
        num_frames = max(1, round(duration * fps)) if duration > 0 else 0
    if duration <= 0 and num_frames > 0:
        duration = num_frames / fps
    cc = stream.codec_context
    return VideoInfo(str(path), "file", num_frames, fps, int(cc.width), int(cc.height), duration)


def _decode_video(path: Path, info: VideoInfo, limits: LimitsConfig, max_side: int | None,
                  declared_frames: int) -> np.ndarray:
    import av

    label = f"'{_name(path)}'"
    buf: _FrameBuffer | None = None
    start_time: float | None = None
    container = _open_container(path)
    try:
        stream = _video_stream(container, label)
        stream.thread_type = "AUTO"
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue  # a damaged packet: skip it; the frame count check below catches loss
            for frame in decoded:
                count = buf.count if buf else 0
                if count >= limits.max_frames:
                    raise VideoError(
                        f"{label} has more than {limits.max_frames:,} frames (its header said "
                        f"{info.num_frames:,}); the limit is {limits.max_frames:,}."
                    )
                if frame.time is not None and start_time is None:
                    start_time = frame.time
                if frame.time is not None and frame.time - (start_time or 0.0) > limits.max_seconds + 1.0:
                    raise VideoError(
                        f"{label} runs past {limits.max_seconds:g} s (the limit) although its "
                        "header said otherwise."
                    )
                if frame.width * frame.height > limits.max_pixels:
                    raise VideoError(
                        f"{label} has a {frame.width}×{frame.height} frame; the limit is "
                        f"{limits.max_pixels:,} pixels."
                    )
                fw, fh = _output_size(frame.width, frame.height, max_side)
                rgb = frame.to_ndarray(format="rgb24", width=fw, height=fh, interpolation="AREA")
                rgb = _apply_rotation(rgb, getattr(frame, "rotation", 0) or 0)
                # headers may understate the length: keep the memory budget while growing
                _check_memory(max(info.num_frames, count + 1), rgb.shape[1], rgb.shape[0], limits, label)
                if buf is None:
                    capacity = info.num_frames + 8 if info.num_frames else 64
                    buf = _FrameBuffer(capacity, rgb.shape[0], rgb.shape[1])
                if rgb.shape != buf.data.shape[1:]:
                    rgb = _resize(rgb, (buf.data.shape[2], buf.data.shape[1]))
                buf.append(rgb)
    except VideoError:
        raise
    except Exception as exc:
        raise VideoError(f"{label} could not be decoded ({type(exc).__name__}).") from exc
    finally:
        container.close()
    if buf is None or buf.count == 0:
        raise VideoError(
            f"{label} opens but contains no decodable frames: the file is truncated or damaged."
        )
    allowed = max(_MISSING_FRAMES_OK[0], _MISSING_FRAMES_OK[1] * declared_frames)
    if declared_frames > 0 and declared_frames - buf.count > allowed:
        raise VideoError(
            f"{label} is truncated or damaged: only {buf.count} of its {declared_frames} frames "
            "could be decoded."
        )
    return buf.array()


def _apply_rotation(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Apply a display-matrix rotation (counter-clockwise degrees, multiples of 90)."""
    quarter = round(degrees / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=quarter)) if quarter else rgb


# --------------------------------------------------------------------------- public API


def _probe(path: Path, limits: LimitsConfig, fps: float | None) -> tuple[VideoInfo, str, object]:
    """(info, kind of reader, reader data): 'folder' + image list, 'image', 'gif', or 'video'."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}.")
    label = f"'{_name(path)}'"
    if not path.exists():
        raise VideoError(f"{label} does not exist: no file or folder by that name.")
    if path.is_dir():
        images = _folder_images(path)
        return _probe_images(path, images, "folder", fps or DEFAULT_FOLDER_FPS, limits), "folder", images
    if not path.is_file():
        raise VideoError(f"{label} is not a regular file or folder.")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{label} is empty (0 bytes); the upload may have failed.")
    _check_bytes(size, limits, label)
    with path.open("rb") as fh:
        magic = fh.read(6)
    if magic in (b"GIF87a", b"GIF89a"):
        return _probe_gif(path, size, limits), "gif", None
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _probe_images(path, [path], "file", fps or DEFAULT_FOLDER_FPS, limits), "image", [path]
    container = _open_container(path)
    try:
        stream = _video_stream(container, label)
        info = _stream_info(path, container, stream)
        declared = int(stream.frames or 0)
    except VideoError:
        raise
    except Exception as exc:  # a damaged header (no codec context, absurd numbers): never raw
        raise VideoError(f"{label} has a damaged video header and cannot be read ({type(exc).__name__}).") from exc
    finally:
        container.close()
    if info.width <= 0 or info.height <= 0:
        raise VideoError(f"{label} has a video stream without a frame size; the file is damaged.")
    _check_limits(info, limits, label)
    return info, "video", declared


def probe_video(path: str | Path, limits: LimitsConfig | None = None, *, fps: float | None = None) -> VideoInfo:
    """Read a clip's headers and refuse it (``VideoError``) if it breaks a limit.

    Decodes nothing: container/stream metadata for video files, the block structure for GIFs,
    the file list and the first image's header for folders. ``fps`` sets the rate of a frame
    folder or still image (default 24); video files keep their own.
    """
    return _probe(Path(path), _limits(limits), fps)[0]


def load_clip(path: str | Path, limits: LimitsConfig | None = None, *, max_side: int | None = None,
              fps: float | None = None) -> Clip:
    """Decode a video file, animated GIF, still image or folder of frames into a ``Clip``.

    Frames are (T, H, W, 3) uint8 RGB. ``max_side`` shrinks frames so the longer side is at
    most that many pixels (aspect kept; never enlarges). ``fps`` sets the rate of a frame folder
    or still image (default 24.0). Folders are read in natural name order and ``frame_names``
    holds the file stems ("00000", ...). A single frame is a valid clip (T = 1).
    """
    path = Path(path)
    lim = _limits(limits)
    if max_side is not None and (isinstance(max_side, bool) or int(max_side) < 1):
        raise InputError(f"max_side must be a positive number of pixels, got {max_side!r}.")
    info, reader, data = _probe(path, lim, fps)
    label = f"'{_name(path)}'"
    names: tuple[str, ...] = ()
    if reader in ("folder", "image"):
        images: list[Path] = data  # type: ignore[assignment]
        _check_same_size(images, (info.width, info.height))
        out_size = _output_size(info.width, info.height, max_side)
        _check_memory(info.num_frames, *out_size, lim, label)
        frames = _load_images(images, info, out_size)
        if reader == "folder":
            names = tuple(p.stem for p in images)
    elif reader == "gif":
        out_size = _output_size(info.width, info.height, max_side)
        _check_memory(info.num_frames, *out_size, lim, label)
        frames = _decode_gif(path, info, out_size)
    else:
        frames = _decode_video(path, info, lim, max_side, int(data))  # type: ignore[arg-type]
    return Clip(frames=frames, fps=float(info.fps), source=str(path), frame_names=names)


def iter_frame_paths(folder: str | Path) -> Iterator[Path]:
    """The JPEG/PNG frames of a folder in the order ``load_clip`` reads them."""
    yield from _folder_images(Path(folder))


def sample_indices(num_frames: int, k: int) -> np.ndarray:
    """``k`` frame indices spread uniformly over [0, num_frames - 1], both ends included.

    ``np.linspace`` then round-half-to-even, as int64. With ``num_frames < k`` indices repeat
    (e.g. 3 frames, k=5 → [0, 0, 1, 2, 2]) so callers always get exactly ``k`` keyframes; ``k=1``
    gives [0]. Raises ``ValueError`` when ``num_frames`` or ``k`` is below 1.
    """
    num_frames, k = operator.index(num_frames), operator.index(k)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return np.round(np.linspace(0, num_frames - 1, k)).astype(np.int64)


def effective_fps(fps: float, num_frames: int, k: int) -> float:
    """The frame rate of ``k`` frames sampled uniformly from ``num_frames`` frames at ``fps``:
    the same playback duration, so a model (or a preview) sees motion at its true speed."""
    duration = num_frames / max(float(fps), 1e-6)
    return k / max(duration, 1e-6)


def validate_expression(text: str, limits: LimitsConfig | None = None) -> str:
    """Clean a referring expression and refuse unusable ones (``InputError``).

    Control characters are removed (line breaks and tabs become spaces), runs of whitespace
    collapse to one space and the ends are stripped. Everything else — right-to-left scripts,
    emoji with their zero-width joiners, combining marks — is kept exactly. Refused: non-text,
    empty, punctuation/symbols only, longer than ``limits.max_expression_chars`` characters.
    """
    lim = _limits(limits)
    if not isinstance(text, str):
        raise InputError(f"the expression must be text, got {type(text).__name__}.")
    cleaned = "".join(
        (" " if ch.isspace() else "") if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in text
    )
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise InputError("the expression is empty: describe the object to segment, e.g. 'the black swan'.")
    if not any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "So" for ch in cleaned):
        raise InputError(
            "the expression has no words (only punctuation or symbols): describe the object to segment."
        )
    if len(cleaned) > lim.max_expression_chars:
        raise InputError(
            f"the expression is too long ({len(cleaned):,} characters); the limit is "
            f"{lim.max_expression_chars:,}."
        )
    return cleaned
