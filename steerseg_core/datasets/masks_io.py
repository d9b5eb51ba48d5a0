"""Reading and writing mask PNGs the way the benchmarks store them, and crash-safe file writes.

A mask PNG is either *binary* (values 0 and 255, any mode: DAVIS-2016, Ref-YouTube-VOS, MeViS
submissions) or *indexed* (palette or grey values 0..k = object ids, 255 = void: DAVIS-2017). A
sequence is binary when all its files hold only 0 and 255; then 255 becomes object 1. RGB files
are mapped back to indices through the DAVIS palette.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..export import davis_palette
from ..files import atomic_write_bytes

VOID = 255


_PALETTE = davis_palette()
_PALETTE_LOOKUP = {tuple(int(v) for v in rgb): i for i, rgb in reversed(list(enumerate(_PALETTE)))}


def read_png_values(path: Path) -> np.ndarray:
    """The stored values of a mask PNG as (H, W) integers (palette indices, grey levels, ...)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
                arr = np.array(im)
            elif mode == "1":
                arr = np.array(im).astype(np.uint8) * 255
            elif mode == "LA":
                arr = np.array(im)[..., 0]
            else:
                arr = np.array(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read mask {path}: {err}") from err
    if arr.ndim == 3:
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
            arr = arr[..., 0]
        else:
            colours, inverse = np.unique(arr.reshape(-1, 3), axis=0, return_inverse=True)
            idx = []
            for c in colours:
                key = tuple(int(v) for v in c)
                if key not in _PALETTE_LOOKUP:
                    raise InputError(f"{path}: colour {key} is not in the DAVIS palette; save masks as "
                                     "indexed (palette) or 0/255 PNGs")
                idx.append(_PALETTE_LOOKUP[key])
            arr = np.asarray(idx, dtype=np.uint8)[inverse.reshape(-1)].reshape(arr.shape[:2])
    if mode.startswith("I") and arr.size and set(np.unique(arr).tolist()) <= {0, 65535}:
        arr = (arr == 65535).astype(np.uint8) * 255  # a 16-bit binary mask (0 / 65535) is 0 / 255
    if arr.max(initial=0) < 256:
        arr = arr.astype(np.uint8)
    return arr


def is_binary(values: np.ndarray) -> bool:
    return bool(((values == 0) | (values == 255)).all())


def read_label_sequence(paths: Sequence[Path | None], size: tuple[int, int] | None = None,
                        ref_names: Sequence[str] | None = None) -> tuple[np.ndarray, bool]:
    """Stack a sequence's masks as (T, H, W) labels and say whether it was binary.

    ``None`` entries (missing files) become all-zero frames of ``size`` (H, W). A size that differs
    from ``size`` is an error naming the file (and ``ref_names[t]``, the file it should match).
    """
    frames: list[np.ndarray | None] = []
    for t, p in enumerate(paths):
        if p is None:
            frames.append(None)
            continue
        arr = read_png_values(Path(p))
        if size is None:
            size = arr.shape
        elif arr.shape != tuple(size):
            ref = f" (ground truth {ref_names[t]})" if ref_names else ""
            raise InputError(f"{p}: size {arr.shape[1]}x{arr.shape[0]} differs from "
                             f"{size[1]}x{size[0]}{ref}")
        frames.append(arr)
    if size is None:
        raise InputError("no mask files to read")
    present = [f for f in frames if f is not None]
    binary = all(is_binary(f) for f in present)
    dtype = np.uint8 if all(f.dtype == np.uint8 for f in present) else np.int32
    out = np.zeros((len(frames), *size), dtype=dtype)
    for t, f in enumerate(frames):
        if f is not None:
            out[t] = (f == 255) if binary else f
    return out, binary


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def binary_png(mask: np.ndarray) -> bytes:
    """A 0/255 greyscale PNG of a boolean mask (the Ref-YouTube-VOS / MeViS submission format)."""
    return png_bytes(Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8), "L"))


def write_binary_masks(folder: Path, names: Sequence[str], masks: np.ndarray) -> None:
    """``folder/<name>.png`` (0/255) for each frame, each written atomically."""
    for name, m in zip(names, masks, strict=True):
        atomic_write_bytes(Path(folder) / f"{name}.png", binary_png(m), durable=False)


def read_binary_masks(folder: Path, names: Sequence[str], size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Foreground (value ≠ 0) of ``folder/<name>.png`` per name; missing files are empty and listed."""
    out = np.zeros((len(names), *size), dtype=bool)
    missing: list[str] = []
    for t, name in enumerate(names):
        p = Path(folder) / f"{name}.png"
        if not p.is_file():
            missing.append(str(p))
            continue
        arr = read_png_values(p)
        if arr.shape != tuple(size):
            raise InputError(f"{p}: size {arr.shape[1]}x{arr.shape[0]} differs from the ground truth "
                             f"{size[1]}x{size[0]}")
        out[t] = arr != 0
    return out, missing
