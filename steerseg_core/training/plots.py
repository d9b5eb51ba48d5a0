"""Figures of a training run: loss and correlation curves, and attention maps on a validation clip.

Pure functions from metrics records / arrays to matplotlib figures, used by the trainer
(``loss.png``, ``val_maps_*.png`` in the run folder) and by the Train tab. Built on
``matplotlib.figure.Figure`` directly: no pyplot, so no global figure registry or GUI backend is
touched from the trainer or from Gradio's worker threads, and nothing has to be closed.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..files import atomic_write_bytes


def _figure(width: float, height: float) -> Figure:
    """A stand-alone figure (not registered with pyplot); ``savefig`` renders it with Agg."""
    return Figure(figsize=(width, height))


def smooth(values: list[float], alpha: float = 0.9) -> list[float]:
    """Exponential moving average (bias-corrected), robust to NaN entries (carried over)."""
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        if v is not None and np.isfinite(v):
            avg = alpha * avg + (1 - alpha) * float(v)
            weight = alpha * weight + (1 - alpha)
        out.append(avg / weight if weight > 0 else float("nan"))
    return out


def split_metrics(records: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    train = [r for r in records if r.get("split", "train") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    return train, val


def metrics_figure(records: list[dict[str, Any]], title: str = "") -> Figure:
    """Two panels: training loss (raw + smoothed, BCE and Dice smoothed) and rollout–mask
    correlation (train smoothed, validation points)."""
    train, val = split_metrics(records)
    fig = _figure(10, 3.6)
    ax_l, ax_c = fig.subplots(1, 2)
    if train:
        steps = [r["step"] for r in train]
        loss = [r.get("loss", float("nan")) for r in train]
        ax_l.plot(steps, loss, color="#9ab", lw=0.8, label="loss")
        ax_l.plot(steps, smooth(loss), color="#136", lw=1.8, label="loss (smoothed)")
        for key, colour in (("bce", "#c63"), ("dice", "#393")):
            ax_l.plot(steps, smooth([r.get(key, float("nan")) for r in train]), color=colour, lw=1.0,
                      ls="--", label=f"{key.upper() if key == 'bce' else 'Dice'} (smoothed)")
        ax_c.plot(steps, smooth([r.get("corr", float("nan")) for r in train]), color="#136", lw=1.5,
                  label="train (smoothed)")
    if val:
        ax_c.plot([r["step"] for r in val], [r.get("corr", float("nan")) for r in val], "o-", color="#d62",
                  lw=1.2, ms=4, label="held-out")
        ax_l.plot([r["step"] for r in val], [r.get("loss", float("nan")) for r in val], "o", color="#d62",
                  ms=4, label="held-out loss")
    ax_l.set(xlabel="step", ylabel="BCE + Dice", title="loss")
    ax_c.set(xlabel="step", ylabel="Pearson r", title="rollout–mask correlation")
    for ax in (ax_l, ax_c):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def attention_figure(frames: np.ndarray, maps: np.ndarray, targets: np.ndarray, title: str = "",
                     max_frames: int = 4):
    """Row 1: frames with the normalised map overlaid; row 2: the mask on the token grid."""
    n = min(max_frames, len(maps), len(frames))
    pick = np.unique(np.round(np.linspace(0, len(maps) - 1, n)).astype(int))
    fig = _figure(2.2 * len(pick), 4.2)
    axes = fig.subplots(2, len(pick), squeeze=False)
    for col, i in enumerate(pick):
        f = frames[min(i, len(frames) - 1)]
        h, w = f.shape[:2]
        axes[0, col].imshow(f)
        axes[0, col].imshow(maps[i], cmap="jet", alpha=0.5, extent=(0, w, h, 0), interpolation="nearest",
                            vmin=0, vmax=1)
        axes[0, col].set_title(f"map {i}", fontsize=8)
        axes[1, col].imshow(targets[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[1, col].set_title("mask on grid", fontsize=8)
        for ax in axes[:, col]:
            ax.axis("off")
    if title:
        fig.suptitle(textwrap.fill(title, width=max(40, 28 * len(pick))), fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | Path, dpi: int = 90) -> Path:
    """Save atomically (the tab may be reading the previous version)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return atomic_write_bytes(path, buf.getvalue(), durable=False)
