"""Faults: processes killed (SIGKILL) mid-work, a read-only database, a full disk.

Proven elsewhere and not repeated here: SIGKILL of a writer process mid-stream
(test_annotation_store), of attribute generation (test_annotation_studies), of a batch evaluation
via the CLI (test_eval_runner) and during checkpoint writes (test_training_trainer). Here: the *app* killed while annotators answer, a
training run killed between checkpoints and resumed, and storage that refuses writes — each must
give a clear message and lose nothing already stored.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from steerseg_core.annotation import flow, store
from steerseg_core.config import SteerSegConfig
from steerseg_core.grounding.soft_prompts import SoftPrompts
from steerseg_core.testing.synthetic import make_synthetic_dataset
from steerseg_core.training import checkpoint as ckpt
from steerseg_core.training.runs import read_metrics, read_status
from steerseg_core.types import Clip
from ui.context import AppContext

from .conftest import ROOT
from .test_annotation_store import _study
from .test_reliability_load import load_module

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------- storage helpers

def _release(db: Path) -> None:
    """Close the store's idle anchor connection to ``db`` (so its file system can be unmounted)."""
    with store._anchors_lock:
        conn = store._anchors.pop(str(Path(db).resolve()), None)
    if conn is not None:
        conn.close()


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def _fill(path: Path) -> Path:
    """Write zeros to ``path`` until its file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return path


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def read_only(folder: Path, db: Path) -> Iterator[None]:
    """Make ``folder`` (holding ``db``) read-only: a read-only remount of a tmpfs when running as
    root (root ignores permission bits), else chmod."""
    _release(db)
    if IS_ROOT:
        if subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], capture_output=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


@pytest.fixture
def storage(tmp_path) -> Iterator[Path]:
    """A folder for a database: its own small tmpfs when running as root, else a plain folder."""
    folder = tmp_path / "storage"
    mounted = _mount_tmpfs(folder, "8m")
    try:
        yield folder
    finally:
        for db in folder.glob("*.db"):
            _release(db)
        if mounted:
            _umount(folder)


def _judgements(db: Path, sid: int) -> dict[tuple[str, int], str]:
    return {(j.annotator, j.sample_id): j.label for j in store.get_judgements(db, sid)}


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


# --------------------------------------------------------------------------- read-only database

def test_read_only_database_gives_a_clear_message_and_keeps_everything(storage, tmp_path, monkeypatch):
    from ui.annotate import AnnotateHandlers

    db = storage / "annotations.db"
    sid = _study(db, n=5)
    for pos in range(3):
        store.record_judgement(db, sid, pos, "ann", "True")
    before = _judgements(db, sid)
    ctx = AppContext(config=SteerSegConfig(), db_path=db, cache_dir=tmp_path / "cache")
    h = AnnotateHandlers(ctx)
    with read_only(storage, db):
        with pytest.raises(store.StorageError, match=r"'annotations.db' is read-only .* everything stored before is safe"):
            store.record_judgement(db, sid, 3, "ann", "False")
        # the Annotate tab says so, without the server's path
        out = h.answer_false("ann", "", str(sid), 4, "", None)
        assert out[-1].startswith("⚠️") and "read-only" in out[-1] and str(storage) not in out[-1]
        # reading still works: the study opens (its place just cannot be remembered)
        view = flow.open_study(db, str(sid), "ann", cache_dir=tmp_path / "cache")
        assert view.total == 5 and "could not be saved" in view.message
        assert _judgements(db, sid) == before
    assert _integrity(db) == "ok"
    assert _judgements(db, sid) == before  # nothing lost, nothing half-written
    store.record_judgement(db, sid, 3, "ann", "False")  # writable again: works
    assert len(_judgements(db, sid)) == 4


def test_database_in_a_folder_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(store.StoreError, match="cannot be written"):
        store.list_studies(blocker / "sub" / "annotations.db")


# --------------------------------------------------------------------------- full disk

def test_full_database_refuses_with_a_clear_message_and_keeps_every_confirmed_answer(tmp_path, monkeypatch):
    """Portable: SQLite's page limit produces exactly the error a full disk does (SQLITE_FULL)."""
    db = tmp_path / "a.db"
    sid = _study(db, n=40)
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    real_connect = sqlite3.connect

    def capped(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return conn

    monkeypatch.setattr(store.sqlite3, "connect", capped)
    confirmed: dict[tuple[str, int], str] = {}
    refused = None
    for k in range(200):
        name, pos = f"annotator-{k % 7}", k % 40
        label = ("True", "False", "Skip")[k % 3]
        try:
            j = store.record_judgement(db, sid, pos, name, label, note="n" * 1500)
        except store.StorageError as err:
            refused = err
            break
        confirmed[(name, j.sample_id)] = label
    assert refused is not None, "the database never filled up"
    assert "disk is full" in str(refused) and "everything stored before is safe" in str(refused)
    assert str(tmp_path) not in str(refused)
    monkeypatch.undo()
    assert _integrity(db) == "ok"
    stored = _judgements(db, sid)
    assert {k: v for k, v in stored.items() if k in confirmed} == confirmed
    assert set(stored) == set(confirmed)  # the refused answer left nothing behind
    history = store.get_history(db, sid)
    assert len(history) == len(confirmed)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to mount a small tmpfs")
def test_real_full_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here")
    db = disk / "annotations.db"
    try:
        sid = _study(db, n=10)
        store.record_judgement(db, sid, 0, "ann", "True")
        filler = _fill(disk / "filler")
        with pytest.raises(store.StorageError, match="disk is full"):
            for pos in range(1, 10):
                store.record_judgement(db, sid, pos, "ann", "False", note="x" * 1900)
        assert store.get_judgements(db, sid)[0].label == "True"  # reading works, nothing lost
        filler.unlink()
        store.record_judgement(db, sid, 9, "ann", "Skip")
        assert _integrity(db) == "ok" and len(store.get_judgements(db, sid)) >= 2
    finally:
        _release(db)
        _umount(disk)


def test_full_disk_while_saving_downloads_is_a_clear_message_and_leaves_nothing(tmp_path, monkeypatch, data_dir):
    import gradio as gr

    from ui import segment

    from .test_export import make_result

    frames = np.zeros((4, 48, 64, 3), np.uint8)
    masks = np.zeros((4, 48, 64), bool)
    masks[:, 10:20, 10:30] = True
    clip = Clip(frames=frames, fps=24.0, source="x")
    session = {"result": make_result(masks), "video": "x", "clicks": [], "frame": 0}
    outputs = tmp_path / "outputs"
    ctx = AppContext(outputs_dir=outputs)
    mounted = _mount_tmpfs(outputs, "64k")
    try:
        if not mounted:  # simulate: the write fails as on a full disk
            import steerseg_core.export as export

            def full(*_a, **_k):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(export, "write_overlay_mp4", full)
        else:  # a real full disk: fill the tmpfs first
            _fill(outputs / "filler")
        with pytest.raises(gr.Error, match="could not be saved for download .*disk space") as err:
            segment.result_views(ctx, session, clip)
        assert str(tmp_path) not in str(err.value)
        assert [p.name for p in outputs.iterdir() if p.name != "filler"] == []  # no partial folders
    finally:
        if mounted:
            _umount(outputs)


# --------------------------------------------------------------------------- the app killed

@pytest.mark.slow
def test_app_killed_during_annotation_writes_loses_and_duplicates_nothing(tiny_models, tmp_path, data_dir):
    lt = load_module()
    from steerseg_core.annotation import create_study  # noqa: F401 (the study comes from lt.make_study)

    db = tmp_path / "annotations.db"
    sid = lt.make_study(db, tmp_path)
    n_items = store.get_study(db, sid).n_samples
    env = lt.server_env(tmp_path, db)
    server = lt.start_server(tmp_path, tiny_models, env)
    confirmed: dict[tuple[str, int], str] = {}
    in_flight: dict[tuple[str, int], str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def annotate(k: int) -> None:
        name = f"killed-{k}"
        client = lt._client(server.url)
        i = 0
        while not stop.is_set():
            pos, label = (i + k) % n_items, ("True", "False", "Skip")[(i // n_items + k) % 3]
            with lock:
                in_flight[(name, pos)] = label
            try:
                out = client.predict(name, "", str(sid), pos + 1, f"note {i}", None, api_name="/annotate_true"
                                     if label == "True" else "/annotate_false" if label == "False" else "/annotate_skip")
            except Exception:  # noqa: BLE001 - the server is gone
                return
            if str(out[11]).startswith(f"saved {label} for item {pos + 1}"):
                with lock:
                    confirmed[(name, pos)] = label
                    in_flight.pop((name, pos), None)
            i += 1

    threads = [threading.Thread(target=annotate, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(confirmed) < 30:
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)  # mid-stream: several answers are in flight
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(confirmed) >= 30
    _release(db)
    assert _integrity(db) == "ok"

    rows = store.get_judgements(db, sid)
    assert len(rows) == len({(r.annotator, r.sample_id) for r in rows})  # no duplicates
    stored = {(r.annotator, r.sample_id - 1): r.label for r in rows}
    for key, label in confirmed.items():  # every confirmed answer, or the one in flight after it
        assert stored[key] in {label, in_flight.get(key)}, key
    for key in set(stored) - set(confirmed):  # committed just before the kill, not yet confirmed
        assert stored[key] == in_flight.get(key), key
    history = store.get_history(db, sid)
    by_judgement: dict[int, int] = {}
    for h in history:
        by_judgement[h["judgement_id"]] = by_judgement.get(h["judgement_id"], 0) + 1
    assert all(by_judgement[r.id] == r.revision for r in rows)  # history and state agree

    # restart on the same database: annotators resume where they were and can go on
    server = lt.start_server(tmp_path, tiny_models, env)
    try:
        client = lt._client(server.url)
        view = client.predict("killed-0", str(sid), api_name="/annotate_open")
        cursor = store.get_cursor(db, sid, "killed-0")
        assert view[10] == cursor + 1
        out = client.predict("killed-0", "", str(sid), view[10], "after restart", None, api_name="/annotate_skip")
        assert str(out[11]).startswith("saved Skip")
        assert len(store.get_judgements(db, sid)) == len(rows) + (0 if ("killed-0", cursor) in stored else 1)
    finally:
        server.stop()


# --------------------------------------------------------------------------- training killed

TRAIN = ["--steps", "40", "--batch-size", "1", "--n-prompts", "4", "--input-frames", "4", "--t-frame", "2",
         "--t-video", "2", "--frame-max-tokens", "8", "--no-grad-checkpointing", "--val-samples", "1",
         "--checkpoint-every", "10", "--eval-every", "0", "--no-export", "--no-progress", "--device", "cpu"]


def _train(*args: str, wait: bool = True, checkpoints: Path | None = None) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    if checkpoints is not None:  # where an export would go: never the checkout's checkpoints/
        env["STEERSEG_CHECKPOINTS"] = str(checkpoints)
    cmd = [sys.executable, "-m", "steerseg_core", "train", *args]
    if wait:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_training_killed_between_checkpoints_resumes_from_the_last_one(tiny_models, tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", videos=4, frames=4, size=56, objects=1, seed=3)
    backbone = str(tiny_models / "qwen2_5_vl")
    common = ["--data", str(data), "--backbone", backbone, *TRAIN]

    killed = tmp_path / "runs" / "killed"
    proc = _train(*common, "--out", str(killed), wait=False, checkpoints=tmp_path / "exported")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # past the first checkpoint, before the second
            latest = ckpt.latest_checkpoint(killed / "checkpoints") if (killed / "checkpoints").exists() else None
            status = read_status(killed) if (killed / "status.json").exists() else {}
            if latest is not None and status.get("step", 0) > 10:
                break
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    latest = ckpt.latest_checkpoint(killed / "checkpoints")
    step = ckpt.load_checkpoint(latest).step
    assert 10 <= step < 40
    status = read_status(killed)
    assert status["state"] == "crashed" and not status["alive"]  # the app says what happened

    # resumed without --no-export: the run keeps the settings it was started with (no export)
    r = _train("--out", str(killed), "--resume", "--no-progress", checkpoints=tmp_path / "exported")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resumed from {latest.name} (step {step})" in r.stderr  # not from scratch
    steps = [m["step"] for m in read_metrics(killed) if m["split"] == "train"]
    assert steps == list(range(1, 41))  # no gap, no step counted twice
    assert read_status(killed)["state"] == "finished"

    # bit for bit what an uninterrupted run gives (CPU, one thread)
    clean = tmp_path / "runs" / "clean"
    r = _train(*common, "--out", str(clean), checkpoints=tmp_path / "exported")
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = SoftPrompts.load(killed / "soft_prompts.safetensors"), SoftPrompts.load(clean / "soft_prompts.safetensors")
    assert torch.equal(a.frame, b.frame) and torch.equal(a.video, b.video)
    assert json.loads((killed / "config.json").read_text())["steps"] == 40
    assert not (tmp_path / "exported").exists()  # --no-export, kept from the start of the run


def test_a_resume_keeps_the_settings_the_run_was_started_with(tmp_path):
    from steerseg_core.training.config import TrainConfig
    from steerseg_core.training.trainer import resumed_config

    out = tmp_path / "run"
    out.mkdir()
    started = TrainConfig(data="d", out=str(out), steps=40, export_dir=None, name="mine", lr=1e-3)
    (out / "config.json").write_text(json.dumps(started.to_dict()))
    resumed = resumed_config(TrainConfig.from_dict(dict(out=str(out), export_dir="checkpoints", device="cpu",
                                                        lock_file="l")))
    assert resumed.export_dir is None and resumed.name == "mine" and resumed.lr == 1e-3 and resumed.steps == 40
    assert (resumed.device, resumed.lock_file) == ("cpu", "l")  # where it runs comes from the resume


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    from steerseg_core.errors import CheckpointError

    soft = SoftPrompts(torch.randn(4, 8), torch.randn(4, 8))
    opt = torch.optim.AdamW(soft.parameters(), lr=1e-3)
    root = tmp_path / "ckpt"
    for step in (10, 20, 30):
        ckpt.save_checkpoint(root, step, soft, opt, None, {}, keep_last=3)
    (root / "step_000030" / "optimizer.safetensors").write_bytes(b"\0" * 40)  # damaged on disk
    (root / "step_000020" / "trainer_state.json").write_text("{\"format\": 1")  # cut short
    folder, loaded, note = ckpt.load_newest_intact(root)
    assert folder.name == "step_000010" and loaded.step == 10
    assert "step_000030" in note and "step_000020" in note and "resumed from the newest intact one, step_000010" in note
    (root / "step_000010" / "soft_prompts.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="no intact training checkpoint"):
        ckpt.load_newest_intact(root)
