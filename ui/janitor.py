"""Keeps Gradio's file cache bounded on a long-running server.

Gradio's own cleaner (``delete_cache``) removes only the copies it tracks; under load some copies
of served images and downloads escape it (seen in the load test: webp thumbnails, result files
left after the load and even after shutdown). This sweeps the cache folder itself: every file
older than the app's outputs age goes, on a timer and once more when the process exits. Only old
files are touched, so a cache folder shared with another app loses nothing younger than that age.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from pathlib import Path


def sweep(folder: Path, max_age_s: float, now: float | None = None) -> int:
    """Delete files under ``folder`` last changed more than ``max_age_s`` ago, then the folders
    left empty; returns how many files went. Missing folders and vanished files are fine."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    removed = 0
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root) / name
            with contextlib.suppress(OSError):
                st = path.lstat()
                if now - max(st.st_mtime, st.st_ctime) > max_age_s:
                    path.unlink()
                    removed += 1
        if Path(root) != folder:
            with contextlib.suppress(OSError):
                Path(root).rmdir()  # only succeeds when empty
    return removed


class CacheJanitor:
    """A daemon thread sweeping ``folder`` every ``every_s`` seconds; ``stop`` sweeps once more."""

    def __init__(self, folder: Path, max_age_s: float, every_s: float) -> None:
        self.folder, self.max_age_s, self.every_s = Path(folder), float(max_age_s), float(every_s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="steerseg-cache-janitor", daemon=True)

    def start(self) -> CacheJanitor:
        self._thread.start()
        atexit.register(self.stop)
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            sweep(self.folder, self.max_age_s)

    def stop(self) -> None:
        self._stop.set()
        sweep(self.folder, self.max_age_s)
