"""A synthetic referring-video dataset: moving coloured shapes with expressions that name them.

"the red circle moving left", "the blue square moving down", ... over a smooth random background,
written in the Ref-YouTube-VOS train layout (``meta_expressions.json`` with ``obj_id``,
``JPEGImages/``, palette ``Annotations/``), so tests and smoke runs exercise exactly the reader a
real training run uses. Deterministic for a given seed; a few hundred KB for a dozen clips.

    python -m steerseg_core make-synthetic DIR --videos 24 --frames 16 --size 112
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {
    "red": (225, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "white": (245, 245, 245),
    "purple": (160, 60, 210),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}


def palette() -> list[int]:
    """The DAVIS/YouTube-VOS mask palette (index 0 black, 1 red, 2 green, ...), 768 entries."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth low-contrast colour noise: upsampled 4×4 random field plus fine grain."""
    coarse = rng.uniform(30, 110, (4, 4, 3)).astype(np.uint8)
    bg = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)).astype(np.float32)
    bg += rng.normal(0, 6, (h, w, 3))
    return np.clip(bg, 0, 255)


def _shape_mask(shape: str, cy: float, cx: float, r: float, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    if shape == "circle":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if shape == "square":
        return (np.abs(yy - cy) <= r * 0.9) & (np.abs(xx - cx) <= r * 0.9)
    # upward triangle inscribed in the circle of radius r
    top, bottom = cy - r, cy + r * 0.7
    half = (yy - top) / max(bottom - top, 1e-6) * r
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def make_clip(rng: np.random.Generator, num_frames: int, size: tuple[int, int], n_objects: int
              ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """One clip: frames (T, H, W, 3) uint8, index masks (T, H, W) uint8 (0 = background, k = object
    k), and per object its colour, shape, direction and expressions."""
    h, w = size
    colours = rng.choice(list(COLOURS), size=n_objects, replace=False)
    shapes = rng.choice(SHAPES, size=n_objects, replace=n_objects > len(SHAPES))
    dirs = list(DIRECTIONS)
    objects = []
    times = np.linspace(0, 1, max(num_frames, 2))
    for k in range(n_objects):
        for _attempt in range(50):  # paths that keep clear of the objects placed so far
            d = dirs[int(rng.integers(len(dirs)))]
            r = float(rng.uniform(0.12, 0.18) * min(h, w))
            travel = float(rng.uniform(0.3, 0.5) * min(h, w))
            dy, dx = DIRECTIONS[d]
            # start so that the whole path stays inside the frame
            cy0 = rng.uniform(r + max(0, -dy) * travel, h - r - max(0, dy) * travel)
            cx0 = rng.uniform(r + max(0, -dx) * travel, w - r - max(0, dx) * travel)
            path = np.stack([cy0 + dy * travel * times, cx0 + dx * travel * times], axis=1)
            if all(np.linalg.norm(path - o["path"], axis=1).min() >= 1.1 * (r + o["r"]) for o in objects):
                break
        colour, shape = str(colours[k]), str(shapes[k])
        objects.append({"obj_id": k + 1, "colour": colour, "shape": shape, "direction": d, "r": r,
                        "start": (float(cy0), float(cx0)), "step": (dy * travel, dx * travel), "path": path,
                        "expressions": [f"the {colour} {shape} moving {d}", f"a {colour} {shape} that goes {d}"]})
    bg = _background(rng, h, w)
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    masks = np.zeros((num_frames, h, w), np.uint8)
    for t in range(num_frames):
        f = bg.copy()
        frac = t / max(num_frames - 1, 1)
        for obj in objects:
            cy = obj["start"][0] + obj["step"][0] * frac
            cx = obj["start"][1] + obj["step"][1] * frac
            m = _shape_mask(obj["shape"], cy, cx, obj["r"], h, w)
            f[m] = COLOURS[obj["colour"]]
            masks[t][m] = obj["obj_id"]
        frames[t] = np.clip(f, 0, 255).astype(np.uint8)
    return frames, masks, objects


def make_synthetic_dataset(out: str | Path, videos: int = 12, frames: int = 8, size: int | tuple[int, int] = 112,
                           objects: int | tuple[int, int] = (1, 2), seed: int = 0) -> Path:
    """Write ``videos`` clips in the Ref-YouTube-VOS train layout under ``out``; returns ``out``.

    ``objects`` is a count or an inclusive (min, max) range of shapes per clip; every object gets
    two expressions. Frame names are 00000, 00005, ... like the real dataset.
    """
    out = Path(out)
    size = (size, size) if isinstance(size, int) else tuple(size)
    lo, hi = (objects, objects) if isinstance(objects, int) else objects
    if not 1 <= lo <= hi <= len(COLOURS):
        raise ValueError(f"objects per clip must be within 1..{len(COLOURS)}")
    rng = np.random.default_rng(seed)
    pal = palette()
    meta: dict[str, dict] = {"videos": {}}
    names = [f"{5 * i:05d}" for i in range(frames)]
    for v in range(videos):
        vid = f"syn{v:04d}"
        clip, masks, objs = make_clip(rng, frames, size, int(rng.integers(lo, hi + 1)))
        (out / "JPEGImages" / vid).mkdir(parents=True, exist_ok=True)
        (out / "Annotations" / vid).mkdir(parents=True, exist_ok=True)
        for name, f, m in zip(names, clip, masks, strict=True):
            Image.fromarray(f).save(out / "JPEGImages" / vid / f"{name}.jpg", quality=95)
            pm = Image.fromarray(m, mode="P")
            pm.putpalette(pal)
            pm.save(out / "Annotations" / vid / f"{name}.png")
        exps = {}
        for obj in objs:
            for text in obj["expressions"]:
                exps[str(len(exps))] = {"exp": text, "obj_id": str(obj["obj_id"])}
        meta["videos"][vid] = {"expressions": exps, "frames": names}
    (out / "meta_expressions.json").write_text(json.dumps(meta, indent=1))
    return out
