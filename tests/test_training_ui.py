"""Train tab: the tab builds, handlers render run folders, and a real background run can be
started, watched, refused a twin, stopped with a checkpoint, resumed and finished into the
Segment tab's checkpoint list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pytest

from steerseg_core.config import SteerSegConfig
from steerseg_core.testing.synthetic import make_synthetic_dataset
from steerseg_core.training import runs
from steerseg_core.training.lock import RunLock
from ui import train as tab
from ui.context import AppContext

SMALL = ("--input-frames 4 --t-frame 2 --t-video 2 --frame-max-tokens 8 --val-samples 1 "
         "--no-grad-checkpointing --warmup 1")


@pytest.fixture
def ctx(tmp_path, tiny_models) -> AppContext:
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    return AppContext(config=cfg, runs_dir=tmp_path / "runs", checkpoints_dir=tmp_path / "checkpoints")


def test_tab_builds(ctx):
    with gr.Blocks() as demo, gr.Tab("Train"):
        tab.build_train_tab(ctx)
    names = {type(b).__name__ for b in demo.blocks.values()}
    assert {"Timer", "Plot", "Image", "Button", "Dropdown"} <= names
    assert tab.backbone_choices(ctx)[0] == ctx.config.grounding.backbone
    assert "cpu" in tab.device_choices()


def test_handlers_render_a_run_folder_and_refuse_when_busy(ctx, tmp_path):
    run = ctx.runs_dir / "run-done"
    run.mkdir(parents=True)
    recs = [{"split": "val", "step": 0, "corr": 0.2, "loss": 2.0}] + [
        {"split": "train", "step": i, "loss": 2 - 0.1 * i, "bce": 1.2, "dice": 0.6, "corr": 0.3, "lr": 1e-3}
        for i in range(1, 4)] + [{"split": "val", "step": 3, "corr": 0.6, "loss": 1.5}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "status.json").write_text(json.dumps({"state": "finished", "run_id": "run-done", "step": 3,
                                                 "total_steps": 3, "exported": "/x/mine.safetensors",
                                                 "skipped": {"missing mask": 2}, "message": "finished"}))
    text, fig, maps, log = tab.watch_run(ctx, "run-done")
    assert "**finished**" in text and "step 3 / 3" in text and "0.200 at step 0 → 0.600 at step 3" in text
    assert "missing mask 2" in text and "mine.safetensors" in text
    assert fig is not None and maps is None and log == ""
    update, known = tab.refresh_runs(ctx, None, [])
    assert update["value"] == "run-done" and known == ["run-done"]
    assert tab.refresh_runs(ctx, "run-done", known)[0] == gr.skip()  # nothing new: not re-sent
    assert "not running" in tab.stop_run(ctx, "run-done")
    assert "already finished" in tab.resume_run(ctx, "run-done")[0]
    assert tab.watch_run(ctx, None)[0].startswith("No run selected")

    msg, _ = tab.start_run(ctx, str(tmp_path / "missing"), "b", 10, 1e-3, 4, "", "")
    assert msg.startswith("**Not started.**") and "does not exist" in msg
    # another live process holds the CPU: Start is refused with who and why
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        RunLock(ctx.runs_dir / "train-cpu.lock").acquire({"run_id": "run-other", "device": "cpu"}, pid=other.pid)
        msg, update = tab.start_run(ctx, str(tmp_path), ctx.config.grounding.backbone, 10, 1e-3, 4, "", "",
                                    device="cpu")
        assert "Not started" in msg and "run-other" in msg and "one run at a time" in msg
        assert update == gr.update()
        shutil.rmtree(run)
        assert "run-other" in tab.watch_run(ctx, None)[0]
    finally:
        other.kill()
        other.wait()


def _wait(predicate, timeout: float, what: str, ctx=None, run_id=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    extra = runs.log_tail(ctx.runs_dir / run_id, 30) if ctx and run_id else ""
    raise AssertionError(f"timed out waiting for {what}\n{extra}")


@pytest.mark.slow
def test_background_run_start_watch_stop_resume_finish(ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSEG_TRAIN_ARGS", SMALL)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = make_synthetic_dataset(tmp_path / "data", videos=4, frames=4, size=56, objects=1)
    backbone = ctx.config.grounding.backbone
    msg, update = tab.start_run(ctx, str(data), backbone, 5000, 1e-2, 4, "look at it", "", 1, 1000, 3, "", "cpu")
    assert msg.startswith("Started"), msg
    run_id = update["value"]
    run_dir = ctx.runs_dir / run_id

    status = _wait(lambda: (s := runs.read_status(run_dir)).get("step", 0) >= 4 and s, 120, "4 steps", ctx, run_id)
    assert status["state"] == "running" and status["alive"]
    msg2, _ = tab.start_run(ctx, str(data), backbone, 10, 1e-2, 4, "", "", device="cpu")
    assert "Not started" in msg2 and run_id in msg2
    _wait(lambda: (run_dir / "val_maps_latest.png").exists(), 60, "attention maps", ctx, run_id)
    text, fig, maps, _ = tab.watch_run(ctx, run_id)
    assert "**running**" in text and "ETA" in text and fig is not None and Path(maps).exists()

    assert "stop requested" in tab.stop_run(ctx, run_id)
    stopped = _wait(lambda: (s := runs.read_status(run_dir))["state"] == "stopped" and s, 60, "stop", ctx, run_id)
    _wait(lambda: not stopped["pid"] or not runs.read_status(run_dir)["alive"], 30, "exit", ctx, run_id)
    assert Path(stopped["checkpoint"]).name == f"step_{stopped['step']:06d}"
    assert runs.active_run(ctx.runs_dir, "cpu") is None  # lock released
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["seed_frame"] == "look at it" and cfg["grounding"]["n_prompts"] == 4 and cfg["steps"] == 5000

    msg, _ = tab.resume_run(ctx, run_id)
    assert msg.startswith("Resuming"), msg
    _wait(lambda: runs.read_status(run_dir).get("step", 0) > stopped["step"], 120, "resumed steps", ctx, run_id)
    tab.stop_run(ctx, run_id)
    _wait(lambda: runs.read_status(run_dir)["state"] == "stopped" and not runs.read_status(run_dir)["alive"], 60,
          "second stop", ctx, run_id)
    steps = [r["step"] for r in runs.read_metrics(run_dir) if r["split"] == "train"]
    assert steps == list(range(1, len(steps) + 1))  # no gap and no duplicate across the resume

    # a short run finishes and its soft prompts appear in the Segment tab's list
    msg, update = tab.start_run(ctx, str(data), backbone, 3, 1e-2, 4, "", "", 1, 1000, 1000, "demo prompts", "cpu")
    short = ctx.runs_dir / update["value"]
    done = _wait(lambda: (s := runs.read_status(short))["state"] in ("finished", "failed", "crashed") and s, 120,
                 "short run", ctx, update["value"])
    assert done["state"] == "finished", done
    from ui.segment import soft_prompt_choices

    assert "demo_prompts.safetensors" in soft_prompt_choices(ctx)  # files.safe_name
    assert "listed in the Segment tab" in tab.watch_run(ctx, short.name)[0]


def test_warmup_warning_model_loading_and_a_quiet_log_tail(ctx):
    """A short run is told it ends inside the warm-up; a starting run says it is loading the model
    (with the time so far, not a bare "–"); library noise is left out of the log tail."""
    from steerseg_core.training.config import TrainConfig

    warmup = TrainConfig().warmup_steps
    note = tab.warmup_note(40, 5e-4)
    assert f"40 steps ends inside the {warmup}-step" in note and f"{5e-4 * 40 / warmup:.1e}" in note
    assert "most of its steps" in tab.warmup_note(warmup + 1, 5e-4) and tab.warmup_note(6500, 5e-4) == ""
    run = ctx.runs_dir / "run-start"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "starting", "run_id": "run-start", "step": 0,
                                                 "total_steps": 40, "started_at": time.time() - 12,
                                                 "pid": os.getpid()}))  # a live process: this one
    (run / "process.log").write_text(
        "step 1 loss 0.9\n" + "[transformers] Qwen2VL video processing does not apply ... will be removed.\n" * 9
        + "Loading weights: 100%|████| 105/105\nstep 2 loss 0.8\n")
    text, _fig, _maps, log = tab.watch_run(ctx, "run-start")
    assert "loading the model (12 s so far" in text or "loading the model (13 s so far" in text
    assert f"warm-up: step 0 of {warmup}" in text
    assert log == "step 1 loss 0.9\nstep 2 loss 0.8"
