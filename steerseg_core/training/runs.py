"""Background training runs for the app: launch, watch, stop — all as files in a runs folder.

A run is a separate process (``python -m steerseg_core train ...``, its own session, so it outlives
the browser tab and the request that started it) writing into ``<runs_dir>/<run_id>/``. The app
never holds training state in memory: it reads ``status.json`` and ``metrics.jsonl`` and sends
SIGTERM to stop (the trainer then saves a checkpoint and exits). One run per device is enforced by
``lock.RunLock`` on ``<runs_dir>/train-<device>.lock``.

``STEERSEG_TRAIN_ARGS`` (shell syntax) adds options to every run the app starts, e.g.
``--frame-max-tokens 512 --input-frames 8`` on a small GPU.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import process_env, service_from_env
from ..errors import InputError
from ..files import atomic_write_json
from .config import TrainConfig
from .lock import RunBusyError, RunLock, describe_holder, pid_alive

ROOT = Path(__file__).resolve().parents[2]
ACTIVE_STATES = ("starting", "running", "stopping")
_CHILDREN: dict[str, subprocess.Popen] = {}  # run_dir → process, so finished children get reaped


def device_label(device: str = "auto") -> str:
    """A file-name-safe device name for the lock: cpu, cuda0, cuda1, ..."""
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return "cuda0"
        return "cpu"
    return device.replace(":", "").replace("/", "_") if device != "cuda" else "cuda0"


def lock_for(runs_dir: str | Path, device: str = "auto") -> RunLock:
    return RunLock(Path(runs_dir) / f"train-{device_label(device)}.lock")


def new_run_id(prefix: str = "run") -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}"


@dataclass
class RunRequest:
    """What the Train tab (or a script) asks for; mapped 1:1 onto ``train`` CLI options."""

    data: str
    backbone: str
    steps: int = 6500
    lr: float = 5e-4
    n_prompts: int = 64
    seed_frame: str | None = None
    seed_video: str | None = None
    batch_size: int = 4
    checkpoint_every: int = 250
    eval_every: int = 250
    name: str | None = None
    device: str = "auto"
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def validate(self) -> None:
        if not str(self.data).strip():
            raise InputError("choose a dataset folder")
        if not Path(self.data).expanduser().exists():
            raise InputError(f"dataset folder '{self.data}' does not exist")
        if not str(self.backbone).strip():
            raise InputError("choose a backbone")
        if int(self.steps) < 1:
            raise InputError("steps must be at least 1")
        if not float(self.lr) > 0:
            raise InputError("learning rate must be positive")
        if int(self.n_prompts) < 1:
            raise InputError("N_p must be at least 1")


def train_command(req: RunRequest, run_dir: Path, export_dir: Path | None, lock_file: Path,
                  python: str | None = None, resume: bool = False, train_args: str | None = None) -> list[str]:
    """The argv of the background process; ``train_args`` (shell syntax, default
    ``ServiceConfig.train_args``, i.e. STEERSEG_TRAIN_ARGS) ends every fresh run's options."""
    cmd = [python or sys.executable, "-m", "steerseg_core", "train", "--out", str(run_dir),
           "--lock-file", str(lock_file), "--device", req.device, "--no-progress"]
    if export_dir is not None:
        cmd += ["--export-dir", str(export_dir)]
    if resume:
        return cmd + ["--resume"]
    cmd += ["--data", str(req.data), "--backbone", str(req.backbone), "--steps", str(int(req.steps)),
            "--lr", repr(float(req.lr)), "--n-prompts", str(int(req.n_prompts)),
            "--batch-size", str(int(req.batch_size)), "--checkpoint-every", str(int(req.checkpoint_every)),
            "--eval-every", str(int(req.eval_every)), "--run-id", run_dir.name]
    if req.seed_frame:
        cmd += ["--seed-frame", req.seed_frame]
    if req.seed_video:
        cmd += ["--seed-video", req.seed_video]
    if req.name:
        cmd += ["--name", req.name]
    if train_args is None:
        train_args = service_from_env().train_args
    return cmd + list(req.extra_args) + shlex.split(train_args)


@dataclass
class LaunchedRun:
    run_id: str
    run_dir: Path
    pid: int
    command: list[str]


def launch_run(runs_dir: str | Path, req: RunRequest | None, export_dir: str | Path | None = None, *,
               resume_run: str | None = None, python: str | None = None,
               env: dict[str, str] | None = None, device: str | None = None) -> LaunchedRun:
    """Start a background run (or resume ``resume_run``), refusing with ``RunBusyError`` (which
    says who holds the device) if one is already running there."""
    runs_dir = Path(runs_dir)
    if resume_run:
        run_dir = runs_dir / Path(resume_run).name
        if not (run_dir / "config.json").exists():
            raise InputError(f"run '{resume_run}' not found")
        stored = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        device = device or stored.grounding.device
        req = req or RunRequest(stored.data, stored.grounding.backbone, device=device)
        req.device = device
    else:
        if req is None:
            raise InputError("nothing to launch")
        req.validate()
        run_dir = runs_dir / new_run_id()
    lock = lock_for(runs_dir, req.device)
    lock.acquire({"run_id": run_dir.name, "run_dir": str(run_dir), "device": device_label(req.device),
                  "state": "starting"})
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = train_command(req, run_dir, Path(export_dir) if export_dir else None, lock.path, python,
                            resume=bool(resume_run))
        child_env = dict(process_env() if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p)
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        with open(run_dir / "process.log", "ab") as logf:
            proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=child_env, start_new_session=True)
    except BaseException:
        lock.release()
        raise
    lock.transfer(proc.pid, state="running")
    _CHILDREN[str(run_dir)] = proc
    if not (run_dir / "status.json").exists():
        atomic_write_json(run_dir / "status.json", {"state": "starting", "pid": proc.pid, "run_id": run_dir.name,
                                                    "step": 0, "total_steps": int(req.steps),
                                                    "message": "starting", "updated_at": time.time()})
    else:
        status = read_status(run_dir)
        atomic_write_json(run_dir / "status.json", {**status, "state": "starting", "pid": proc.pid,
                                                    "message": "resuming", "updated_at": time.time()})
    return LaunchedRun(run_dir.name, run_dir, proc.pid, cmd)


def _reap(run_dir: Path) -> int | None:
    proc = _CHILDREN.get(str(run_dir))
    if proc is None:
        return None
    code = proc.poll()
    if code is not None:
        _CHILDREN.pop(str(run_dir), None)
    return code


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """``status.json`` of a run, with ``alive`` added; a run whose process died without saying so
    (killed, crashed) is reported as ``crashed`` with the tail of its process log."""
    run_dir = Path(run_dir)
    code = _reap(run_dir)
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        status = {"state": "unknown", "message": "no status yet"}
    alive = pid_alive(status.get("pid"))
    status["alive"] = alive
    if status.get("state") in ACTIVE_STATES and not alive:
        status["state"] = "crashed"
        tail = log_tail(run_dir, 6)
        status["message"] = (f"the training process ended unexpectedly (exit code {code})" if code is not None
                             else "the training process is gone") + (f":\n{tail}" if tail else "")
    return status


def log_tail(run_dir: str | Path, lines: int = 20) -> str:
    path = Path(run_dir) / "process.log"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    text = text.replace("\r", "\n")
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Records of ``metrics.jsonl`` (a half-written last line is ignored)."""
    path = Path(run_dir) / "metrics.jsonl"
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "step" in rec:
            out.append(rec)
    return out


def stop_run(run_dir: str | Path, wait_s: float = 0.0) -> str:
    """Ask a run to stop (SIGTERM → it checkpoints and exits). Returns a message for the user."""
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if not status.get("alive") or status.get("state") not in ACTIVE_STATES:
        return f"run '{run_dir.name}' is not running ({status.get('state')})"
    pid = int(status["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"run '{run_dir.name}' had already ended"
    atomic_write_json(run_dir / "status.json", {**{k: v for k, v in status.items() if k != "alive"},
                                                "state": "stopping", "message": "stopping: saving a checkpoint"})
    deadline = time.time() + wait_s
    while wait_s > 0 and time.time() < deadline:
        _reap(run_dir)
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    return f"stop requested for '{run_dir.name}': it saves a checkpoint and exits after the current sample"


def list_runs(runs_dir: str | Path) -> list[str]:
    """Run ids in ``runs_dir``, newest first."""
    d = Path(runs_dir)
    if not d.is_dir():
        return []
    runs = [p for p in d.iterdir() if p.is_dir() and ((p / "status.json").exists() or (p / "config.json").exists())]
    return [p.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def active_run(runs_dir: str | Path, device: str = "auto") -> dict[str, Any] | None:
    """The lock holder on ``device`` if its process is alive (stale locks count as free)."""
    return lock_for(runs_dir, device).held_by_live_process()


def busy_reason(runs_dir: str | Path, device: str = "auto") -> str | None:
    h = active_run(runs_dir, device)
    return describe_holder(h) if h else None


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


__all__ = ["LaunchedRun", "RunBusyError", "RunRequest", "active_run", "busy_reason", "device_label", "eta_text",
           "launch_run", "list_runs", "lock_for", "log_tail", "new_run_id", "read_metrics", "read_status",
           "stop_run", "train_command"]
