"""Train tab: launch a soft-prompt training run in the background and watch it learn.

Start spawns ``python -m steerseg_core train`` as its own process (it keeps running if the browser
closes); the tab polls the run folder with ``gr.Timer`` and shows the step, ETA, loss and
correlation curves and attention maps on a held-out clip. Stop sends SIGTERM: the run saves a
checkpoint and exits; Resume continues it. Finished soft prompts are copied to the app's checkpoint
folder, where the Segment tab lists them. All logic lives in ``steerseg_core.training.runs`` /
``plots``; the handlers below only translate widget values and render.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from steerseg_core import access
from steerseg_core.config import DEFAULT_BACKBONE
from steerseg_core.errors import SteerSegError, public_message, redact_paths
from steerseg_core.grounding.lvlm import KNOWN_BACKBONES
from steerseg_core.grounding.prompts import SEED_PROMPT_FRAME, SEED_PROMPT_VIDEO
from steerseg_core.training import plots, runs
from steerseg_core.training.config import TrainConfig

from .context import AppContext

POLL_S = 2.0
_DEFAULTS = TrainConfig()
_plot_cache: dict[str, tuple[float, Any]] = {}
# Lines of a run's log that say nothing about the run (library deprecation notices, weight-loading
# progress bars): left out of the tab's log tail, which is short.
LOG_NOISE = ("[transformers]", "Loading weights:", "Writing model shards:", "warnings.warn(", "FutureWarning",
             "DeprecationWarning", "UserWarning")
LOG_LINES = 8


def warmup_note(steps: int, lr: float, warmup: int = _DEFAULTS.warmup_steps) -> str:
    """A warning when a run ends inside the learning-rate warm-up (it never trains at ``lr``)."""
    if steps >= 2 * warmup:
        return ""
    peak = lr * min(steps, warmup) / warmup
    where = "ends inside" if steps <= warmup else "spends most of its steps in"
    return (f"⚠️ {steps} steps {where} the {warmup}-step learning-rate warm-up: the rate peaks at {peak:.1e} "
            f"instead of {lr:.1e}. Use at least {2 * warmup} steps for the schedule the paper used.")


def log_tail(run_dir: Path, lines: int = LOG_LINES) -> str:
    """The last ``lines`` lines of the run's log that are not ``LOG_NOISE``."""
    text = runs.log_tail(run_dir, 400)
    kept = [ln for ln in text.splitlines() if not any(n in ln for n in LOG_NOISE)]
    return "\n".join(kept[-lines:])


def backbone_choices(ctx: AppContext) -> list[str]:
    current = ctx.config.grounding.backbone or DEFAULT_BACKBONE
    return list(dict.fromkeys([current, *KNOWN_BACKBONES]))


def device_choices() -> list[str]:
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return ["auto", *gpus, "cpu"]


def _run_dir(ctx: AppContext, run_id: str | None) -> Path | None:
    if not run_id:
        return None
    return Path(ctx.runs_dir) / Path(str(run_id)).name


def _runs_update(ctx: AppContext, value: str | None) -> Any:
    return gr.update(choices=runs.list_runs(ctx.runs_dir), value=value)


def start_run(ctx: AppContext, data: str, backbone: str, steps: float, lr: float, n_prompts: float,
              seed_frame: str, seed_video: str, batch_size: float = 4, checkpoint_every: float = 250,
              eval_every: float = 250, name: str = "", device: str = "auto") -> tuple[str, Any]:
    """Start button: launch a run, or say why not (another run holds the device, bad values).
    On a Hugging Face Space (SPACE_ID set) training control is off unless STEERSEG_ALLOW_TRAINING=1
    (``access.check_training``: the same rule for start, resume, stop and demo data), and the
    backbone must be one the Space offers."""
    try:
        access.check_training(ctx.service)
        backbone = access.check_model_choice("backbone", backbone, ctx.config.grounding.backbone, ctx.service)
        data = (data or "").strip()
        if data == DEMO_DATA:  # the demo dataset by name: its server path never reaches the page
            data = str(_demo_data_dir(ctx))
        req = runs.RunRequest(
            data=data, backbone=(backbone or "").strip(), steps=int(steps or 0), lr=float(lr or 0),
            n_prompts=int(n_prompts or 0), seed_frame=(seed_frame or "").strip() or None,
            seed_video=(seed_video or "").strip() or None, batch_size=int(batch_size or 4),
            checkpoint_every=int(checkpoint_every or 0), eval_every=int(eval_every or 0),
            name=(name or "").strip() or None, device=device or "auto")
        launched = runs.launch_run(ctx.runs_dir, req, ctx.checkpoints_dir)
    except (SteerSegError, ValueError, TypeError) as err:
        return f"**Not started.** {public_message(err)}", gr.update()
    note = warmup_note(req.steps, req.lr)
    return (f"Started **{launched.run_id}** (pid {launched.pid}). It runs in the background: you can close "
            "this page and come back." + (f"  \n{note}" if note else ""), _runs_update(ctx, launched.run_id))


def resume_run(ctx: AppContext, run_id: str | None) -> tuple[str, Any]:
    try:
        access.check_training(ctx.service)
    except SteerSegError as err:
        return f"**Not resumed.** {public_message(err)}", gr.update()
    if not run_id:
        return "Pick a run to resume.", gr.update()
    status = runs.read_status(_run_dir(ctx, run_id))
    if status.get("state") == "finished":
        return f"**{run_id}** has already finished.", gr.update()
    try:
        launched = runs.launch_run(ctx.runs_dir, None, ctx.checkpoints_dir, resume_run=run_id)
    except SteerSegError as err:
        return f"**Not resumed.** {public_message(err)}", gr.update()
    return f"Resuming **{launched.run_id}** (pid {launched.pid}).", _runs_update(ctx, launched.run_id)


def stop_run(ctx: AppContext, run_id: str | None) -> str:
    """Stop button: SIGTERM → the run checkpoints and exits."""
    try:
        access.check_training(ctx.service)
    except SteerSegError as err:
        return f"**Not stopped.** {public_message(err)}"
    run_dir = _run_dir(ctx, run_id)
    if run_dir is None:
        return "No run selected."
    return runs.stop_run(run_dir)


def status_markdown(status: dict[str, Any], records: list[dict[str, Any]]) -> str:
    state = status.get("state", "unknown")
    step, total = int(status.get("step") or 0), int(status.get("total_steps") or 0)
    pct = f" ({100 * step / total:.0f} %)" if total else ""
    if state == "running":
        eta = f"ETA {runs.eta_text(status.get('eta_s'))}"
    elif state == "starting" and status.get("started_at"):
        eta = f"loading the model ({max(0.0, time.time() - float(status['started_at'])):.0f} s so far; ETA after it loads)"
    else:
        eta = "ETA –"
    lines = [f"**{status.get('run_id', '')}** — **{state}** · step {step} / {total}{pct} · {eta}"]
    warmup = _DEFAULTS.warmup_steps
    if state in ("running", "starting") and step < warmup:
        lines.append(f"learning-rate warm-up: step {step} of {warmup}")
    train, val = plots.split_metrics(records)
    if train:
        last = train[-1]
        lines.append(f"loss {last.get('loss', float('nan')):.4f} (BCE {last.get('bce', float('nan')):.3f}, "
                     f"Dice {last.get('dice', float('nan')):.3f}) · correlation {last.get('corr', float('nan')):.3f} "
                     f"· lr {last.get('lr', 0):.2e}")
    if len(val) == 1:
        lines.append(f"held-out correlation {val[0].get('corr', float('nan')):.3f} at step {val[0]['step']}")
    elif val:
        lines.append(f"held-out correlation {val[0].get('corr', float('nan')):.3f} at step {val[0]['step']} → "
                     f"{val[-1].get('corr', float('nan')):.3f} at step {val[-1]['step']}")
    skipped = status.get("skipped") or {}
    if skipped:
        lines.append("skipped samples: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    if status.get("exported"):
        lines.append(f"soft prompts saved as **{Path(status['exported']).name}** — listed in the Segment tab")
    if status.get("message"):
        lines.append(f"_{redact_paths(status['message'])}_")
    return "  \n".join(lines)


def watch_run(ctx: AppContext, run_id: str | None) -> tuple[str, Any, str | None, str]:
    """Timer tick: status text, curves (re-rendered only when metrics changed), maps, log tail."""
    run_dir = _run_dir(ctx, run_id)
    if run_dir is None or not run_dir.exists():
        busy = runs.busy_reason(ctx.runs_dir)
        return (busy or "No run selected. Start one on the left."), None, None, ""
    status = runs.read_status(run_dir)
    records = runs.read_metrics(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    mtime = metrics_path.stat().st_mtime if metrics_path.exists() else 0.0
    cached = _plot_cache.get(str(run_dir))
    if cached and cached[0] == mtime:
        fig = cached[1]
    else:
        # A stand-alone matplotlib Figure (no pyplot registry to clean up); gr.Plot serialises it.
        fig = plots.metrics_figure(records, run_dir.name) if records else None
        _plot_cache[str(run_dir)] = (mtime, fig)
    maps = run_dir / "val_maps_latest.png"
    return (status_markdown(status, records), fig, str(maps) if maps.exists() else None,
            redact_paths(log_tail(run_dir)))  # the log names server folders


def refresh_runs(ctx: AppContext, current: str | None, known: list[str] | None = None) -> tuple[Any, list[str]]:
    """Keep this page's run list current; select the newest run when nothing is selected. ``known``
    is the list the page already shows (per-session state): unchanged lists are not re-sent, since
    re-rendering would close an open dropdown."""
    choices = runs.list_runs(ctx.runs_dir)
    value = current if current in choices else (choices[0] if choices else None)
    if value == current and sorted(choices) == sorted(known or []):
        return gr.skip(), list(known or [])
    return gr.update(choices=choices, value=value), choices


# What the dataset box holds for the demo dataset: a name, resolved on the server by start_run.
DEMO_DATA = "synthetic-demo"


def _demo_data_dir(ctx: AppContext) -> Path:
    return Path(ctx.runs_dir) / "synthetic-data"


def make_demo_data(ctx: AppContext) -> tuple[Any, str]:
    """Write a small synthetic dataset (moving shapes) for trying the tab out. It writes to the
    server's disk, so it obeys the training rule; the reply names it, never its server path."""
    from steerseg_core.testing.synthetic import make_synthetic_dataset

    try:
        access.check_training(ctx.service)
    except SteerSegError as err:
        return gr.update(), f"**No demo data.** {public_message(err)}"
    out = _demo_data_dir(ctx)
    if not (out / "meta_expressions.json").exists():
        make_synthetic_dataset(out, videos=24, frames=16, size=112, objects=(1, 2))
    return DEMO_DATA, f"Synthetic dataset **{DEMO_DATA}** ready (24 clips of moving shapes)."


def build_train_tab(ctx: AppContext) -> None:
    gr.Markdown("Train **soft prompts** for a backbone on Ref-YouTube-VOS (train split) or your own folder "
                "(`expressions.json` + frames + masks). The run continues in the background; one run per GPU.")
    with gr.Row():
        with gr.Column(scale=1):
            data = gr.Textbox(label="dataset folder", placeholder="/data/ref-youtube-vos/train")
            demo_btn = gr.Button("use a synthetic demo dataset", size="sm")
            backbone = gr.Dropdown(backbone_choices(ctx), value=backbone_choices(ctx)[0], allow_custom_value=True,
                                   label="backbone (hub id or folder)")
            with gr.Row():
                steps = gr.Number(value=_DEFAULTS.steps, precision=0, minimum=1, label="steps")
                lr = gr.Number(value=_DEFAULTS.lr, label="learning rate")
                n_prompts = gr.Number(value=_DEFAULTS.n_prompts, precision=0, minimum=1, label="N_p")
            with gr.Accordion("seed prompts and schedule", open=False):
                seed_frame = gr.Textbox(value=SEED_PROMPT_FRAME, lines=2, label="seed prompt (frame branch)")
                seed_video = gr.Textbox(value=SEED_PROMPT_VIDEO, lines=2, label="seed prompt (video branch)")
                with gr.Row():
                    batch = gr.Number(value=_DEFAULTS.batch_size, precision=0, minimum=1, label="effective batch")
                    ckpt_every = gr.Number(value=_DEFAULTS.checkpoint_every, precision=0, minimum=1,
                                           label="checkpoint every")
                    eval_every = gr.Number(value=_DEFAULTS.eval_every, precision=0, minimum=1, label="evaluate every")
                device = gr.Dropdown(device_choices(), value="auto", label="device")
                name = gr.Textbox(label="name of the soft prompts (optional)")
            with gr.Row():
                start_btn = gr.Button("Start", variant="primary")
                stop_btn = gr.Button("Stop", variant="stop")
                resume_btn = gr.Button("Resume")
            message = gr.Markdown()
        with gr.Column(scale=2):
            choices = runs.list_runs(ctx.runs_dir)
            known_runs = gr.State(choices)
            run_select = gr.Dropdown(choices, value=choices[0] if choices else None, label="run",
                                     allow_custom_value=False)
            status_md = gr.Markdown()
            curves = gr.Plot(label="loss and rollout–mask correlation")
            maps = gr.Image(label="attention maps on a held-out clip (top) vs mask on the token grid (bottom)",
                            type="filepath", interactive=False)
            log_box = gr.Textbox(label="log", lines=6, max_lines=8, interactive=False)

    timer = gr.Timer(POLL_S)
    views = [status_md, curves, maps, log_box]
    demo_btn.click(lambda: make_demo_data(ctx), None, [data, message], api_name=False)
    start_btn.click(lambda *a: start_run(ctx, *a),
                    [data, backbone, steps, lr, n_prompts, seed_frame, seed_video, batch, ckpt_every, eval_every,
                     name, device], [message, run_select], api_name="train_start", concurrency_id="train_ctl",
                    concurrency_limit=1)
    stop_btn.click(lambda r: stop_run(ctx, r), [run_select], [message], api_name="train_stop")
    resume_btn.click(lambda r: resume_run(ctx, r), [run_select], [message, run_select], api_name="train_resume",
                     concurrency_id="train_ctl", concurrency_limit=1)
    run_select.change(lambda r: watch_run(ctx, r), [run_select], views, api_name=False)
    timer.tick(lambda r: watch_run(ctx, r), [run_select], views, api_name=False, show_progress="hidden")
    timer.tick(lambda r, k: refresh_runs(ctx, r, k), [run_select, known_runs], [run_select, known_runs],
               api_name=False, show_progress="hidden")
