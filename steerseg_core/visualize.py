"""Pictures that explain a result: attention heatmaps, candidate thumbnails, score tables.

The app shows these and the CLI/notebooks can save them; they are pure functions of a clip and a
result (RGB uint8 arrays out), so the UI layer only places them on the page.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .types import Clip, GroundingResult, SegmentationResult

POSITIVE = (40, 220, 90)
NEGATIVE = (235, 50, 50)
MASK_COLOR = (255, 64, 64)


def _colormap(values: np.ndarray, name: str = "jet") -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).astype(np.uint8)


def _thumb(frame: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return frame
    return np.asarray(Image.fromarray(frame).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR))


def draw_point(img: np.ndarray, xy: tuple[float, float], color=POSITIVE, scale: float = 1.0) -> np.ndarray:
    out = Image.fromarray(img)
    d = ImageDraw.Draw(out)
    r = max(4, round(min(img.shape[:2]) * 0.025))
    x, y = xy[0] * scale, xy[1] * scale
    d.ellipse([x - r, y - r, x + r, y + r], fill=color, outline=(255, 255, 255), width=max(1, r // 3))
    return np.asarray(out)


def heatmap_overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The frame with a [0, 1] token-grid map upsampled (bilinear) and blended on top."""
    h, w = frame.shape[:2]
    up = np.asarray(Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))
    colored = _colormap(up.astype(np.float32) / 255.0, cmap)
    return (frame.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)


def mask_overlay(frame: np.ndarray, mask: np.ndarray, color=MASK_COLOR, alpha: float = 0.5) -> np.ndarray:
    out = frame.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = out[m] * (1 - alpha) + np.array(color, dtype=np.float32) * alpha
    return out.astype(np.uint8)


def keyframe_heatmaps(clip: Clip, g: GroundingResult, max_side: int = 480) -> list[tuple[np.ndarray, str]]:
    """Per keyframe: attention overlay with the argmax point marked, and a caption."""
    from .segment.points import keyframe_point  # the point the segmentation clicked

    items = []
    for i, f in enumerate(g.keyframes):
        frame = _thumb(clip.frames[int(f)], max_side)
        scale = frame.shape[1] / clip.width
        img = draw_point(heatmap_overlay(frame, g.s_frm[i]), keyframe_point(g.s_frm[i], g.frame_geometry), scale=scale)
        word = g.query_words_frames[i] if i < len(g.query_words_frames) else ""
        items.append((img, f"frame {int(f)}" + (f" · {word}" if word else "")))
    return items


def video_heatmap_tiles(clip: Clip, g: GroundingResult, max_side: int = 320) -> list[tuple[np.ndarray, str]]:
    """The video-branch maps one tile per frame (aspect kept), captioned with the frame index."""
    return [(heatmap_overlay(_thumb(clip.frames[int(f)], max_side), g.s_vid[i]), f"frame {int(f)}")
            for i, f in enumerate(g.video_frames)]


def colormap_stops(n: int = 9, cmap: str = "jet") -> list[str]:
    """The heatmaps' colour scale as ``n`` evenly spaced hex colours from 0 (low attention) to 1
    (high), for drawing a legend (e.g. a CSS gradient) beside the maps."""
    rgb = _colormap(np.linspace(0.0, 1.0, n, dtype=np.float32), cmap)
    return ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in rgb]


def candidate_thumbnails(clip: Clip, result: SegmentationResult, max_side: int = 320) -> list[tuple[np.ndarray, str]]:
    """Each candidate's mask at its source keyframe with its start point; the chosen one starred."""
    items = []
    for i, t in enumerate(result.tracklets):
        f = int(t.source_keyframe)
        frame = _thumb(clip.frames[f], max_side)
        scale = frame.shape[1] / clip.width
        mask = np.asarray(Image.fromarray(t.masks[f].astype(np.uint8) * 255).resize(frame.shape[1::-1], Image.NEAREST)) > 0
        img = draw_point(mask_overlay(frame, mask), t.point_xy, scale=scale)
        star = " ★" if i == result.chosen else ""
        items.append((img, f"#{i}{star} s={t.s:.2f}"))
    return items


def candidate_rows(result: SegmentationResult) -> list[list]:
    """Table rows: candidate, chosen (★), s, s_frm, s_vid, keyframe, point. The scores come first so a
    narrow screen shows them without scrolling."""
    rows = []
    for i, t in enumerate(result.tracklets):
        rows.append([i, "★" if i == result.chosen else "", round(float(t.s), 4), round(float(t.s_frm), 4),
                     round(float(t.s_vid), 4), int(t.source_keyframe), f"({t.point_xy[0]:.0f}, {t.point_xy[1]:.0f})"])
    return rows


CANDIDATE_HEADERS = ["#", "★", "s", "s_frm", "s_vid", "keyframe", "point (x, y)"]


def _stage_name(key: str) -> str:
    name = key.removeprefix("grounding_").replace("sam2_", "SAM2 ").replace("cot", "CoT").replace("_", " ")
    return name[:1].upper() + name[1:]


def timing_rows(result: SegmentationResult) -> list[list]:
    """The run's stage timings as table rows [stage, seconds], with readable stage names; the
    total last."""
    rows = [[_stage_name(k), round(float(v), 2)] for k, v in result.timings.items() if k != "total"]
    if "total" in result.timings:
        rows.append(["Total", round(float(result.timings["total"]), 2)])
    return rows


def frame_with_mask(clip: Clip, result: SegmentationResult, frame_index: int,
                    clicks: list[tuple[int, float, float, int]] = ()) -> np.ndarray:
    """A frame at full size with the chosen mask and the clicks placed on it (for correcting)."""
    f = int(np.clip(frame_index, 0, clip.num_frames - 1))
    img = mask_overlay(clip.frames[f], result.masks[f])
    for cf, x, y, label in clicks:
        if cf == f:
            img = draw_point(img, (x, y), POSITIVE if label == 1 else NEGATIVE)
    return img


def readout_panel(clip: Clip, comparison, tile_height: int = 240) -> np.ndarray:
    """The readout comparison (``grounding.readouts``) side by side: each map over the keyframe with
    its argmax point and a title; an absent readout is a grey tile saying so."""
    from .grounding.readouts import READOUT_TITLES, READOUTS

    frame = clip.frames[int(comparison.frame)]
    s = tile_height / clip.height
    small = np.asarray(Image.fromarray(frame).resize((max(1, round(clip.width * s)), tile_height), Image.BILINEAR))
    tiles = []
    for name in READOUTS:
        heat = comparison.maps.get(name)
        if heat is None:
            tile = np.full_like(small, 128)
        else:
            tile = draw_point(heatmap_overlay(small, heat), comparison.points[name], scale=s)
        header = Image.new("RGB", (tile.shape[1], 22), (255, 255, 255))
        title = READOUT_TITLES[name] if heat is not None else f"{READOUT_TITLES[name]}: n/a"
        ImageDraw.Draw(header).text((4, 5), title, fill=(0, 0, 0))
        tiles.append(np.concatenate([np.asarray(header), tile], axis=0))
        tiles.append(np.full((tile_height + 22, 4, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def attribute_highlights(g: GroundingResult) -> list[tuple[str, float | None]]:
    """The attributes as written, each parsed attribute scored by its attention share (frame
    branch) scaled so the largest is 1: (text, score) pieces for a highlighted-text view."""
    if g.cot is None or not g.attribute_attention:
        return []
    text = g.cot.attributes_text
    shares = [a.get("share") for a in g.attribute_attention]
    top = max((s for s in shares if s is not None), default=0.0) or 1.0
    pieces: list[tuple[str, float | None]] = []
    cursor = 0
    low = text.lower()
    for a, share in zip(g.attribute_attention, shares, strict=True):
        at = low.find(str(a["attribute"]).lower(), cursor)
        if at < 0:
            continue
        if at > cursor:
            pieces.append((text[cursor:at], None))
        end = at + len(a["attribute"])
        pieces.append((text[at:end], None if share is None else round(float(share) / top, 4)))
        cursor = end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    return pieces


def attention_summary_markdown(g: GroundingResult) -> str:
    """Attribute shares (frame and video branch) and where the query row's attention goes."""
    lines = []
    if g.attribute_attention:
        video = {a["attribute"]: a.get("share") for a in g.attribute_attention_video}
        lines.append("| attribute | share (frame) | share (video) |\n|---|---|---|")
        for a in g.attribute_attention:
            v = video.get(a["attribute"])
            f = a.get("share")
            lines.append(f"| {a['attribute']} | {'–' if f is None else f'{f:.1%}'} | "
                         f"{'–' if v is None else f'{v:.1%}'} |")
    for branch, split in (g.row_split or {}).items():
        if split:
            lines.append(f"\n**{branch} branch** query row: visual tokens {split['visual']:.1%} · prompt text "
                         f"{split['text']:.1%} · soft prompts {split['soft_prompts']:.1%}")
    source = {"user": "your attributes (no CoT step)", "cot": "the CoT step"}.get(g.attributes_source or "")
    if source:
        lines.insert(0, f"attributes from {source}\n")
    return "\n".join(lines) or "no attributes (CoT step off)"
