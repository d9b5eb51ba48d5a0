"""One training run per device: a lock file holding the owner's PID, with stale-lock detection.

The lock is a small JSON note (pid, process start time, run id, ...) that says who holds the device.
Every read-check-write of the note happens under a ``filelock.FileLock`` on a guard file beside it
(``<lock>.guard``; OS-level and cross-platform), so two processes never both see the device free. The
note, not the guard, is what outlives a call: the app hands it to the run it spawns. A note whose process is gone — or is a zombie, or whose
PID now belongs to a different process (start time differs) — is stale and is taken over. The app
acquires the lock before it spawns a run and hands it to the child PID; the trainer adopts a lock
held by its parent or itself, and releases it when it exits.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..errors import SteerSegError
from ..files import atomic_write_text


class RunBusyError(SteerSegError):
    """Another training run holds the device."""


def _proc_stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_start(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) of ``pid``, or None where /proc is unavailable."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """True if ``pid`` is a live (non-zombie) process and, when ``start`` is given, the same one."""
    if not pid or int(pid) <= 0:
        return False
    pid = int(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc (macOS): trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return start is None or process_start(pid) == int(start)


class RunLock:
    def __init__(self, path: str | Path, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s

    def _guard(self) -> FileLock:
        """The OS-level lock serialising every read-check-write of the JSON note."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path.with_name(self.path.name + ".guard")), timeout=self.timeout_s)

    def holder(self) -> dict[str, Any] | None:
        """The lock's content, or None if there is no lock (or it is unreadable)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def held_by_live_process(self) -> dict[str, Any] | None:
        h = self.holder()
        if h and pid_alive(h.get("pid"), h.get("start")):
            return h
        return None

    def _replace(self, info: dict[str, Any]) -> None:
        atomic_write_text(self.path, json.dumps(info), durable=False)

    def acquire(self, info: dict[str, Any] | None = None, pid: int | None = None,
                adopt_from: tuple[int, ...] = ()) -> dict[str, Any]:
        """Take the lock for ``pid`` (default: this process). A live holder whose PID is in
        ``adopt_from`` is taken over; any other live holder (this process too) raises ``RunBusyError``."""
        pid = int(pid or os.getpid())
        content = {**(info or {}), "pid": pid, "start": process_start(pid), "acquired_at": time.time()}
        try:
            with self._guard():
                h = self.holder()
                if h is not None and pid_alive(h.get("pid"), h.get("start")):
                    if int(h.get("pid", -1)) not in adopt_from:
                        raise RunBusyError(describe_holder(h))
                    content = {**h, **content}
                # no note, an unreadable one, or a stale one (its process is gone): ours now
                self._replace(content)
                return content
        except TimeoutError as err:  # filelock.Timeout is a TimeoutError
            raise RunBusyError(f"could not take the training lock '{self.path.name}'") from err

    def transfer(self, pid: int, **updates: Any) -> None:
        """Hand the lock to ``pid`` (the app does this right after spawning the run)."""
        with self._guard():
            h = self.holder() or {}
            self._replace({**h, **updates, "pid": int(pid), "start": process_start(int(pid))})

    def release(self, pid: int | None = None) -> bool:
        """Remove the lock if ``pid`` (default: this process) holds it."""
        pid = int(pid or os.getpid())
        with self._guard():
            h = self.holder()
            if h is not None and int(h.get("pid", -1)) == pid:
                self.path.unlink(missing_ok=True)
                return True
            return False


def describe_holder(h: dict[str, Any]) -> str:
    run = h.get("run_id") or "a training run"
    device = h.get("device") or "this device"
    since = time.strftime("%H:%M:%S", time.localtime(float(h.get("acquired_at", time.time()))))
    return (f"{run} (pid {h.get('pid')}, started {since}) is already training on {device}: one run at a "
            "time per device. Stop it or wait for it to finish.")
