"""Run management without a model: the one-run-per-device lock, run status and metrics files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from steerseg_core.training import runs
from steerseg_core.training.lock import RunBusyError, RunLock, pid_alive, process_start
from steerseg_core.training.plots import metrics_figure, smooth


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_refuses_a_second_run_with_the_reason(tmp_path):
    lock = RunLock(tmp_path / "train-cpu.lock")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.acquire({"run_id": "run-a", "device": "cpu"}, pid=sleeper.pid)
        with pytest.raises(RunBusyError, match=r"run-a \(pid \d+.*already training on cpu.*one run at a time"):
            lock.acquire({"run_id": "run-b"})
        assert runs.active_run(tmp_path, "cpu")["run_id"] == "run-a"
        assert "run-a" in runs.busy_reason(tmp_path, "cpu")
        assert not lock.release()  # not ours to release
        assert lock.path.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone: the lock is stale and the next run takes it
    assert runs.active_run(tmp_path, "cpu") is None
    taken = lock.acquire({"run_id": "run-b"})
    assert taken["pid"] == os.getpid() and lock.holder()["run_id"] == "run-b"
    assert lock.release() and not lock.path.exists()


def test_lock_stale_detection_dead_pid_zombie_and_reused_pid(tmp_path):
    lock = RunLock(tmp_path / "l.lock")
    lock.path.write_text(json.dumps({"pid": _dead_pid(), "run_id": "old"}))
    assert lock.held_by_live_process() is None
    lock.acquire({"run_id": "new"})
    lock.release()
    # a zombie (exited, not yet reaped) counts as dead
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    deadline = time.time() + 20
    while stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.time() < deadline:
        time.sleep(0.05)  # exited but not reaped (no wait/poll) → a zombie, which kill(pid, 0) still finds
    assert stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # Linux: /proc always exists here
    os.kill(zombie.pid, 0)  # the kernel still has the pid ...
    assert not pid_alive(zombie.pid)  # ... but it counts as dead
    zombie.wait()
    # our own pid with another start time is a different process (PID reuse)
    me = process_start(os.getpid())
    assert me is not None  # Linux: the start time is readable from /proc
    assert pid_alive(os.getpid(), me) and not pid_alive(os.getpid(), me + 1)
    lock.path.write_text("")  # unreadable and old → stale
    os.utime(lock.path, (time.time() - 10, time.time() - 10))
    lock.acquire({"run_id": "after-garbage"})
    assert lock.holder()["run_id"] == "after-garbage"


def test_lock_handover_from_launcher_to_child(tmp_path):
    lock = RunLock(tmp_path / "l.lock")
    lock.acquire({"run_id": "r"})  # the app, before spawning
    with pytest.raises(RunBusyError):  # a second Start from the same app while the first spawns
        lock.acquire({"run_id": "r2"})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.transfer(child.pid, state="running")
        assert lock.holder()["pid"] == child.pid and lock.holder()["run_id"] == "r"
        # the child adopts a lock held by its parent or by itself; anyone else is refused
        with pytest.raises(RunBusyError):
            lock.acquire({"run_id": "other"})
        adopted = lock.acquire({"run_id": "r"}, pid=child.pid, adopt_from=(os.getpid(), child.pid))
        assert adopted["pid"] == child.pid
        assert lock.release(child.pid)
    finally:
        child.kill()
        child.wait()


def test_read_metrics_tolerates_partial_lines_and_status_reports_crashes(tmp_path):
    run = tmp_path / "run-x"
    run.mkdir()
    lines = [{"split": "val", "step": 0, "corr": 0.1, "loss": 2.0}] + [
        {"split": "train", "step": i, "loss": 2.0 - 0.1 * i, "bce": 1.0, "dice": 0.5, "corr": 0.1 * i, "lr": 1e-3}
        for i in range(1, 5)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"split": "tr')
    recs = runs.read_metrics(run)
    assert [r["step"] for r in recs] == [0, 1, 2, 3, 4]
    fig = metrics_figure(recs, "run-x")
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2  # train + held-out correlation
    assert smooth([1.0, float("nan"), 3.0], 0.5)[1] == pytest.approx(1.0)

    (run / "status.json").write_text(json.dumps({"state": "running", "pid": _dead_pid(), "step": 4}))
    (run / "process.log").write_text("step 1\rstep 2\nTraceback ...\nRuntimeError: boom\n")
    status = runs.read_status(run)
    assert status["state"] == "crashed" and not status["alive"] and "RuntimeError: boom" in status["message"]
    assert runs.stop_run(run).startswith("run 'run-x' is not running")
    assert runs.list_runs(tmp_path) == ["run-x"]


def test_train_command_and_request_validation(tmp_path, monkeypatch):
    req = runs.RunRequest(data=str(tmp_path), backbone="Qwen/Qwen2.5-VL-7B-Instruct", steps=10, lr=1e-3,
                          n_prompts=8, seed_frame="look here", name="mine")
    monkeypatch.setenv("STEERSEG_TRAIN_ARGS", "--frame-max-tokens 64 --seed-video 'a b'")
    cmd = runs.train_command(req, tmp_path / "run-1", tmp_path / "ckpts", tmp_path / "x.lock", python="py")
    assert cmd[:4] == ["py", "-m", "steerseg_core", "train"]
    joined = " ".join(cmd)
    for part in ("--steps 10", "--lr 0.001", "--n-prompts 8", "--name mine", "--export-dir", "--run-id run-1",
                 "--lock-file", "--no-progress", "--frame-max-tokens 64"):
        assert part in joined
    assert cmd[cmd.index("--seed-frame") + 1] == "look here" and cmd[-1] == "a b"
    resume = runs.train_command(req, tmp_path / "run-1", None, tmp_path / "x.lock", python="py", resume=True)
    assert "--resume" in resume and "--data" not in resume
    for bad, msg in ((dict(data=""), "dataset"), (dict(data=str(tmp_path / "no")), "does not exist"),
                     (dict(steps=0), "steps"), (dict(lr=0), "learning rate"), (dict(n_prompts=0), "N_p")):
        with pytest.raises(Exception, match=msg):
            runs.RunRequest(**{**dict(data=str(tmp_path), backbone="b"), **bad}).validate()
    assert runs.eta_text(3725) == "1h 02m" and runs.eta_text(65) == "1m 05s" and runs.eta_text(None) == "–"
