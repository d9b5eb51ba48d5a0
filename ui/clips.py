"""The decoded clips behind the app's sessions: a session keeps only its clip's path, and handlers
that need frames decode it here (a small cache shared by every session, never one per session),
so no session holds a whole decoded clip in memory for hours."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr

from steerseg_core.config import LimitsConfig
from steerseg_core.errors import SteerSegError, public_message
from steerseg_core.types import Clip

# Clips decoded for the app's handlers, shared by every session (bounded: never one per session).
CLIP_CACHE_SIZE = 2
_clips: OrderedDict[tuple[str, float], Clip] = OrderedDict()
_clips_lock = threading.Lock()


def session_clip(session: dict[str, Any], limits: LimitsConfig) -> Clip:
    """The session's clip, decoded from its file (or from the small shared cache)."""
    from steerseg_core.video import load_clip

    path = str(session["video"])
    try:
        key = (path, Path(path).stat().st_mtime)
    except OSError:
        raise gr.Error("The uploaded clip is no longer on the server (uploads expire); please upload it again "
                       "and segment once more.") from None
    with _clips_lock:
        if key in _clips:
            _clips.move_to_end(key)
            return _clips[key]
    try:
        clip = load_clip(path, limits)
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    with _clips_lock:
        _clips[key] = clip
        while len(_clips) > CLIP_CACHE_SIZE:
            _clips.popitem(last=False)
    return clip
