"""Keyframe attention maps → one positive click per keyframe (docs/method.md §7).

The click is the argmax token cell of S_frm(t), mapped to the centre of that cell in original-frame
pixels by ``TokenGeometry.cell_to_pixel`` (which undoes the backbone's resize and any letterbox
padding). Cells outside the geometry's content box show padding, not the image, so the argmax is
taken over content cells only.
"""

from __future__ import annotations

import numpy as np

from ..types import TokenGeometry


def content_cells(geometry: TokenGeometry) -> np.ndarray:
    """(rows, cols) bool: token cells whose centre lies inside the content box."""
    gh, gw = geometry.grid
    y0, x0, y1, x1 = geometry.content_box or (0.0, 0.0, float(gh), float(gw))
    rows = (np.arange(gh) + 0.5 >= y0) & (np.arange(gh) + 0.5 <= y1)
    cols = (np.arange(gw) + 0.5 >= x0) & (np.arange(gw) + 0.5 <= x1)
    inside = rows[:, None] & cols[None, :]
    return inside if inside.any() else np.ones((gh, gw), dtype=bool)


def argmax_cell(frame_map: np.ndarray, geometry: TokenGeometry) -> tuple[int, int]:
    """(row, col) of the highest content cell; ties go to the first in row-major order."""
    if tuple(frame_map.shape) != tuple(geometry.grid):
        raise ValueError(f"attention map {frame_map.shape} does not match the token grid {geometry.grid}")
    values = np.where(content_cells(geometry), np.nan_to_num(frame_map, nan=-np.inf), -np.inf)
    row, col = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(row), int(col)


def keyframe_point(frame_map: np.ndarray, geometry: TokenGeometry) -> tuple[float, float]:
    """The (x, y) click in original-frame pixels for one keyframe map: the centre of its argmax
    content cell. The segmentation clicks here and the heat-map pictures mark the same point."""
    return geometry.cell_to_pixel(*argmax_cell(frame_map, geometry))


def keyframe_points(s_frm: np.ndarray, geometry: TokenGeometry) -> list[tuple[float, float]]:
    """One (x, y) click in original-frame pixels per keyframe map of ``s_frm`` (T_f, rows, cols)."""
    return [keyframe_point(m, geometry) for m in np.asarray(s_frm)]
