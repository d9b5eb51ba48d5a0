"""Shared builders for the annotation tests (no tests here): a small ReasonVOS-format dataset made
at test time from the real DAVIS clips in tests/data (symlinked, never copied), and a real,
deterministic CoT function that derives attributes from a clip's colours."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np

from steerseg_core.types import Clip, CoTResult

from .conftest import davis_frames

# The three committed DAVIS clips (16 frames each) keep GIFs and clip loading fast.
SEQS = ("blackswan", "camel", "libby")
EXPRESSIONS = {
    "blackswan": ("the bird a birdwatcher would photograph on this pond", "the dark animal gliding on the water"),
    "camel": ("the animal that can cross a desert without drinking", "the humped animal walking by the fence"),
    "libby": ("the pet running through the garden", "the animal that would fetch a ball here"),
}


def link_frames(root: Path, seqs: tuple[str, ...] = SEQS, sub: str = "JPEGImages") -> Path:
    """``root/<sub>/<seq>`` → the real DAVIS frame folders (symlinks)."""
    base = root / sub
    base.mkdir(parents=True, exist_ok=True)
    for seq in seqs:
        (base / seq).symlink_to(davis_frames(seq), target_is_directory=True)
    return base


def make_reasonvos(root: Path, seqs: tuple[str, ...] = SEQS) -> Path:
    """A ReasonVOS-format ``meta_expressions.json`` in the official shape (per video ``source``,
    ``frames`` and a list of {obj_id, exp_id, exp_text, is_sent}) with ``JPEGImages/<video>/``
    beside it; returns the JSON path."""
    root.mkdir(parents=True, exist_ok=True)
    link_frames(root, seqs)
    videos = {}
    for seq in seqs:
        frames = sorted(p.stem for p in davis_frames(seq).glob("*.jpg"))
        videos[seq] = {"source": "DAVIS", "frames": frames, "expressions": [
            {"obj_id": 1, "exp_id": i, "exp_text": text, "is_sent": text.endswith("?")}
            for i, text in enumerate(EXPRESSIONS[seq])]}
    meta = root / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": videos}))
    return meta


def colour_cot(clip: Clip, expression: str) -> CoTResult:
    """A real deterministic CoT stand-in: attributes from the clip's mean colour and brightness."""
    mean = clip.frames[:, ::8, ::8].reshape(-1, 3).mean(axis=0)
    hue = ("reddish", "greenish", "bluish")[int(np.argmax(mean))]
    light = "bright" if mean.mean() > 110 else "dark"
    attrs = (hue, light, f"{clip.num_frames} frames")
    reasoning = f"The expression '{expression}' points at the main {light} {hue} subject."
    raw = f"Reasoning: {reasoning}\n\nAttributes: {', '.join(attrs)}"
    return CoTResult(raw=raw, reasoning=reasoning, attributes=attrs)


def launch_local(demo, tries: int = 5, **kwargs) -> str:
    """Launch ``demo`` on a free local port and return its URL. A port the OS just called free may
    be taken by another process before the server binds it (other test runs share the machine):
    Gradio then raises OSError and we try another port."""
    for _ in range(tries):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **kwargs)
        except OSError:
            continue
        return f"http://127.0.0.1:{port}/"
    raise RuntimeError(f"no free local port in {tries} tries")



def copy_db(src: Path, dst: Path) -> Path:
    """A consistent copy of a (WAL) database through SQLite's backup API."""
    import sqlite3

    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()
    return dst
