"""Segment tab: upload a clip, type a sentence, see the mask and why it was chosen.

Handlers are thin: they turn widget values into a config, call the core (pipeline, export,
visualize) and place the results. They are plain functions, tested by calling them directly.
Model work runs in one queue (``concurrency_id="gpu"``, limit from the config) so the page stays
responsive while a segmentation runs.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from steerseg_core import access, visualize
from steerseg_core.config import DEFAULT_BACKBONE, SteerSegConfig, parse_layer_range
from steerseg_core.errors import SteerSegError, public_message
from steerseg_core.grounding.grounder import soft_prompts_note
from steerseg_core.grounding.soft_prompts import NONE_SOURCES, SEED_SOURCE, list_checkpoints
from steerseg_core.stages import SAM2_GROUP, Stage

from .context import AppContext
from .gpu import gpu_task

SEED_INIT = "seed-initialised (untrained)"
NO_SOFT_PROMPTS = "none (no trained checkpoint)"
CONFIGURED = "configured (STEERSEG_SOFT_PROMPTS / --soft-prompts)"
SAM2_SIZES = list(access.SAM2_SIZES)
# Overall progress bar share of each stage; the SAM2 stage reports one fraction across its
# sub-steps (encoding frames, keyframe masks, tracking/propagating candidates).
STAGE_SPAN = {Stage.COT.group: (0.0, 0.15), Stage.FRAME_ROLLOUT.group: (0.15, 0.45),
              Stage.VIDEO_ROLLOUT.group: (0.45, 0.55), SAM2_GROUP: (0.55, 0.95), Stage.SCORING.group: (0.95, 1.0)}


def outputs_root() -> Path:
    return Path(os.environ.get("STEERSEG_OUTPUTS", Path(tempfile.gettempdir()) / "steerseg_outputs"))


def outputs_max_age_s() -> float:
    """How long one run's download files are kept: STEERSEG_OUTPUTS_MAX_AGE seconds (default 6 h)."""
    try:
        return max(1.0, float(os.environ.get("STEERSEG_OUTPUTS_MAX_AGE") or 6 * 3600))
    except ValueError:
        return 6 * 3600.0


def _new_output_dir(max_age_s: float | None = None) -> Path:
    """A fresh folder for one run's files; folders older than ``max_age_s`` (default
    ``outputs_max_age_s()``) are removed, so the outputs folder stays bounded."""
    max_age_s = outputs_max_age_s() if max_age_s is None else max_age_s
    root = outputs_root()
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if old.is_dir() and now - old.stat().st_mtime > max_age_s:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed meanwhile by a concurrent request
            continue
    out = root / uuid.uuid4().hex
    out.mkdir()
    return out


def _configured_soft_prompts(ctx: AppContext) -> str | None:
    spec = (ctx.config.grounding.soft_prompts or "").strip()
    return None if spec.lower() in NONE_SOURCES else spec


def soft_prompt_choices(ctx: AppContext) -> list[str]:
    configured = _configured_soft_prompts(ctx)
    extra = [CONFIGURED] if configured and configured.lower() != SEED_SOURCE else []
    return [NO_SOFT_PROMPTS, SEED_INIT] + extra + [p.name for p in list_checkpoints(ctx.checkpoints_dir)]


def default_soft_prompt_choice(ctx: AppContext) -> str:
    """The configured source if any (the seed only when configured as 'seed'), else none."""
    configured = _configured_soft_prompts(ctx)
    if configured is None:
        return NO_SOFT_PROMPTS
    return SEED_INIT if configured.lower() == SEED_SOURCE else CONFIGURED


def build_config(ctx: AppContext, backbone: str, soft_choice: str, use_cot: bool, use_soft: bool, alpha: float,
                 t_frame: int, t_video: int, layers: str, nms_iou: float, sam2: str) -> SteerSegConfig:
    cfg = copy.deepcopy(ctx.config)
    gr_cfg, seg = cfg.grounding, cfg.segment
    # On a Space a caller picks from the allow-list only (any hub id would be downloaded and loaded).
    backbone = access.check_model_choice("backbone", backbone, ctx.config.grounding.backbone)
    sam2 = access.check_model_choice("sam2", sam2, ctx.config.segment.sam2)
    gr_cfg.backbone = (backbone or "").strip() or gr_cfg.backbone
    gr_cfg.use_cot, gr_cfg.use_soft_prompts = bool(use_cot), bool(use_soft)
    gr_cfg.soft_prompts = None  # no soft prompts unless a source is chosen (never a silent seed)
    if not use_soft or not soft_choice or soft_choice == NO_SOFT_PROMPTS:
        pass
    elif soft_choice == SEED_INIT:
        gr_cfg.soft_prompts = SEED_SOURCE
    elif soft_choice == CONFIGURED:
        gr_cfg.soft_prompts = _configured_soft_prompts(ctx)
    else:
        path = (ctx.checkpoints_dir / Path(soft_choice).name)
        if not path.exists():
            raise SteerSegError(f"soft-prompt checkpoint '{Path(soft_choice).name}' is no longer available")
        gr_cfg.soft_prompts = str(path)
    gr_cfg.t_frame, gr_cfg.t_video = int(t_frame), int(t_video)
    try:
        gr_cfg.layers = parse_layer_range(layers) if (layers or "").strip() else None
    except Exception as err:
        raise SteerSegError(str(err)) from err
    seg.alpha, seg.nms_iou = float(alpha), float(nms_iou)
    seg.sam2 = (sam2 or "").strip() or seg.sam2
    return cfg


def _progress_callback(progress: gr.Progress | None):
    def report(stage: str, fraction: float) -> None:
        if progress is None:
            return
        lo, hi = STAGE_SPAN.get(stage.split(":")[0], (0.0, 1.0))
        progress(lo + (hi - lo) * max(0.0, min(1.0, fraction)), desc=stage)

    return report


def _result_views(session: dict[str, Any]) -> tuple:
    """Everything that changes when the chosen candidate changes."""
    from steerseg_core.export import export_all

    result, clip = session["result"], session["clip"]
    out: Path | None = None
    try:
        out = _new_output_dir()
        paths = export_all(result, clip, out)
    except OSError as err:  # full disk, read-only temp folder: say so and leave nothing behind
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
        reason = err.strerror or type(err).__name__
        raise gr.Error(f"The result could not be saved for download ({reason}); the server may be out of "
                       "disk space. Please try again later.") from None
    session["paths"] = paths
    thumbs = visualize.candidate_thumbnails(clip, result)
    rows = visualize.candidate_rows(result)
    frame = visualize.frame_with_mask(clip, result, session.get("frame", 0), session.get("clicks", []))
    files = [str(paths["zip"]), str(paths["result_json"]), str(paths["overlay"])]
    return thumbs, rows, str(paths["overlay"]), files, frame


@gpu_task
def _run_models(cfg: SteerSegConfig, clip, expression: str, report) -> Any:
    from steerseg_core.pipeline import SteerSeg

    return SteerSeg(cfg).run(clip, expression, progress=report)


def run_segment(ctx: AppContext, video: str | None, expression: str, backbone: str, soft_choice: str,
                use_cot: bool, use_soft: bool, alpha: float, t_frame: int, t_video: int, layers: str,
                nms_iou: float, sam2: str, progress: gr.Progress | None = None) -> tuple:
    """Run the whole method on an uploaded clip. Raises gr.Error with a readable reason."""
    from steerseg_core.video import load_clip, validate_expression

    if not video:
        raise gr.Error("Upload a video first.")
    try:
        cfg = build_config(ctx, backbone, soft_choice, use_cot, use_soft, alpha, t_frame, t_video, layers,
                           nms_iou, sam2)
        expression = validate_expression(expression, cfg.limits)
        clip = load_clip(video, cfg.limits)
        result = _run_models(cfg, clip, expression, _progress_callback(progress))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session = {"result": result, "clip": clip, "clicks": [], "frame": int(result.tracklets[result.chosen].source_keyframe),
               "config": cfg}
    g = result.grounding
    thumbs, rows, overlay, files, frame = _result_views(session)
    sp_note = soft_prompts_note(g.soft_prompts_info, cfg.grounding.use_soft_prompts,
                                how="choose a checkpoint under Advanced, or 'seed-initialised' for untrained prompts")
    note = f"soft prompts: **{sp_note}** · rollout layers {g.layers[0]}–{g.layers[1]} · " + \
        " · ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    if result.tiny_models:
        note = "⚠️ **tiny random-weight models** (for trying the app; outputs are meaningless) · " + note
    slider = gr.Slider(minimum=0, maximum=clip.num_frames - 1, value=session["frame"], step=1,
                       label="frame to correct", interactive=True)
    reasoning = "(CoT step off)" if g.cot is None else (g.reasoning or "(no reasoning parsed)")
    if g.cot is not None and g.cot.issues:
        reasoning += f"\n[parse notes: {'; '.join(g.cot.issues)}]"
    return (reasoning, ", ".join(g.attributes) or "-", g.query_word or "-", note,
            visualize.keyframe_heatmaps(clip, g), visualize.video_heatmap_strip(clip, g), thumbs, rows, overlay,
            files, frame, slider, "", session)


def _need(session: dict | None) -> dict:
    if not session or "result" not in session:
        raise gr.Error("Run a segmentation first.")
    return session


def pick_candidate(session: dict | None, index: float | None) -> tuple:
    from steerseg_core.pipeline import SteerSeg

    session = _need(session)
    try:
        session["result"] = SteerSeg.choose(session["result"], int(index or 0))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session["clicks"] = []
    return (*_result_views(session), "", session)


def rescore(session: dict | None, alpha: float) -> tuple:
    from steerseg_core.pipeline import SteerSeg

    session = _need(session)
    try:
        session["result"] = SteerSeg(session["config"]).rescore(session["result"], float(alpha))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    return (*_result_views(session), "", session)


def show_frame(session: dict | None, frame: float) -> Any:
    if not session or "result" not in session:
        return None
    session["frame"] = int(frame)
    return visualize.frame_with_mask(session["clip"], session["result"], int(frame), session["clicks"])


def add_click(session: dict | None, label: str, evt: gr.SelectData) -> tuple:
    session = _need(session)
    x, y = evt.index[0], evt.index[1]
    session["clicks"].append((session.get("frame", 0), float(x), float(y), 1 if label == "positive" else 0))
    text = "; ".join(f"frame {f}: ({x:.0f}, {y:.0f}) {'+' if lab else '−'}" for f, x, y, lab in session["clicks"])
    return show_frame(session, session.get("frame", 0)), text, session


@gpu_task
def _refine(cfg: SteerSegConfig, result, clip, clicks):
    from steerseg_core.pipeline import SteerSeg

    return SteerSeg(cfg).refine(result, clip, clicks)


def apply_clicks(session: dict | None) -> tuple:
    session = _need(session)
    if not session["clicks"]:
        raise gr.Error("Click on the frame first (choose positive or negative).")
    try:
        session["result"] = _refine(session["config"], session["result"], session["clip"], session["clicks"])
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session["clicks"] = []
    return (*_result_views(session), "", session)


def limits_text(ctx: AppContext) -> str:
    """The input limits (``LimitsConfig``, set by STEERSEG_MAX_* on the server) as shown in the tab."""
    lim = ctx.config.limits
    jobs = "one segmentation runs" if lim.max_concurrent_jobs == 1 else \
        f"{lim.max_concurrent_jobs} segmentations run"
    return (f"Video file (mp4, webm, mov, avi, mkv, gif) · at most **{lim.max_upload_mb:g} MB**, "
            f"**{lim.max_seconds:g} s**, **{lim.max_frames:,} frames**, {lim.max_pixels / 1e6:.1f} MP per frame "
            f"(GIFs: {lim.max_gif_bytes / 2**20:g} MB, {lim.max_gif_frames:,} frames) · decoded frames at most "
            f"{lim.max_decoded_mb:,.0f} MB · expression up to "
            f"{lim.max_expression_chars:,} characters · {jobs} at a time, up to {lim.max_waiting_jobs} more wait "
            "in line.")


def waiting_jobs(blocks: gr.Blocks | None, concurrency_id: str = "gpu") -> int:
    """How many events wait (not yet running) in the app's queue for ``concurrency_id``."""
    try:
        event_queue = blocks._queue.event_queue_per_concurrency_id.get(concurrency_id)  # type: ignore[union-attr]
        return len(event_queue.queue) if event_queue is not None else 0
    except AttributeError:  # no queue (handlers called directly) or another Gradio layout
        return 0


def busy_validator(ctx: AppContext, blocks: gr.Blocks | None):
    """A Gradio validator (runs before an event joins the queue) refusing new model work with a
    clear "busy" message while ``max_waiting_jobs`` requests already wait for the GPU."""
    def validate(*inputs: Any) -> Any:
        limit = ctx.config.limits.max_waiting_jobs
        n = waiting_jobs(blocks)
        verdict = gr.validate(n < limit, f"Busy: {n} segmentation requests are already waiting for the model "
                                         f"(the limit is {limit}). Please try again in a few minutes.")
        # one verdict per input; the message is shown on the first (the video)
        return verdict if len(inputs) == 1 else [verdict] + [gr.validate(True, "")] * (len(inputs) - 1)

    return validate


def build_segment_tab(ctx: AppContext) -> None:
    cfg = ctx.config
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown(limits_text(ctx))
            video = gr.Video(label="video", sources=["upload"])
            expression = gr.Textbox(label="expression", placeholder="e.g. the animal that can fly",
                                    max_length=cfg.limits.max_expression_chars)
            if ctx.examples_dir and ctx.examples_dir.is_dir():
                clips = sorted(p for p in ctx.examples_dir.iterdir() if p.suffix.lower() in (".mp4", ".webm", ".gif"))
                if clips:
                    gr.Examples([[str(p), ""] for p in clips[:12]], inputs=[video, expression])
            with gr.Accordion("Advanced", open=False):
                backbone = gr.Textbox(label="backbone (hub id or folder)", value=cfg.grounding.backbone or DEFAULT_BACKBONE)
                soft_choice = gr.Dropdown(soft_prompt_choices(ctx), value=default_soft_prompt_choice(ctx),
                                          label="soft-prompt checkpoint",
                                          allow_custom_value=False)
                with gr.Row():
                    use_cot = gr.Checkbox(value=cfg.grounding.use_cot, label="CoT step")
                    use_soft = gr.Checkbox(value=cfg.grounding.use_soft_prompts, label="soft prompts")
                alpha = gr.Slider(0, 1, value=cfg.segment.alpha, step=0.05, label="α (frame vs video score)")
                t_frame = gr.Slider(1, 32, value=cfg.grounding.t_frame, step=1, label="T_f keyframes")
                t_video = gr.Slider(2, 32, value=cfg.grounding.t_video, step=2, label="T_v video frames")
                layers = gr.Textbox(label="rollout layers (empty = paper's range)", placeholder="14-27")
                nms_iou = gr.Slider(0.1, 1.0, value=cfg.segment.nms_iou, step=0.05, label="NMS IoU")
                sam2 = gr.Dropdown(SAM2_SIZES, value=cfg.segment.sam2, label="SAM2 model (size, file or folder)",
                                   allow_custom_value=True)
            run = gr.Button("Segment", variant="primary")
        with gr.Column(scale=2):
            note = gr.Markdown()
            with gr.Row():
                reasoning = gr.Textbox(label="reasoning (CoT)", lines=3, interactive=False)
                attributes = gr.Textbox(label="attributes", lines=3, interactive=False)
                query_word = gr.Textbox(label="query word", interactive=False)
            heatmaps = gr.Gallery(label="frame-level attention (S_frm) · dot = argmax point", columns=4, height=320)
            strip = gr.Image(label="video-level attention (S_vid)", interactive=False)
            cand_gallery = gr.Gallery(label="candidate tracklets (at their source keyframe)", columns=4, height=240)
            cand_table = gr.Dataframe(headers=visualize.CANDIDATE_HEADERS, label="candidate scores", interactive=False)
            with gr.Row():
                cand_index = gr.Number(label="use candidate #", precision=0, value=0)
                use_cand = gr.Button("Use this candidate")
                rescore_btn = gr.Button("Re-score with α")
            overlay = gr.Video(label="result", interactive=False)
            files = gr.File(label="downloads: masks zip (DAVIS palette PNGs), result.json, overlay.mp4",
                            file_count="multiple", interactive=False)
            with gr.Accordion("Correct with clicks", open=False):
                frame_slider = gr.Slider(0, 1, value=0, step=1, label="frame to correct")
                click_label = gr.Radio(["positive", "negative"], value="positive", label="click type")
                frame_img = gr.Image(label="click on the frame", interactive=False)
                clicks_text = gr.Textbox(label="clicks", interactive=False)
                apply_btn = gr.Button("Re-propagate with clicks")
    # a run (clip + result) stays in memory for its session: at most 3 h, never longer than its downloads
    session = gr.State(None, time_to_live=min(3 * 3600, outputs_max_age_s()))
    from .diagnostics import build_diagnostics_section

    build_diagnostics_section(ctx, session)  # "See why" (#15): its own module

    limit = cfg.limits.max_concurrent_jobs
    busy = busy_validator(ctx, gr.context.Context.root_block)
    result_views = [cand_gallery, cand_table, overlay, files, frame_img, clicks_text, session]
    run.click(lambda *a, progress=gr.Progress(): run_segment(ctx, *a, progress=progress),
              inputs=[video, expression, backbone, soft_choice, use_cot, use_soft, alpha, t_frame, t_video, layers,
                      nms_iou, sam2],
              outputs=[reasoning, attributes, query_word, note, heatmaps, strip, cand_gallery, cand_table, overlay,
                       files, frame_img, frame_slider, clicks_text, session],
              api_name="segment", concurrency_id="gpu", concurrency_limit=limit, validator=busy)
    soft_choice.focus(lambda: gr.Dropdown(choices=soft_prompt_choices(ctx)), None, soft_choice,
                      api_visibility="private")  # checkpoints finished since the page loaded
    use_cand.click(pick_candidate, [session, cand_index], result_views, api_name="pick_candidate")
    rescore_btn.click(rescore, [session, alpha], result_views, api_name="rescore")
    frame_slider.release(show_frame, [session, frame_slider], frame_img, api_visibility="private")
    frame_img.select(add_click, [session, click_label], [frame_img, clicks_text, session], api_visibility="private")
    apply_btn.click(apply_clicks, [session], result_views, api_name="apply_clicks", concurrency_id="gpu",
                    concurrency_limit=limit, validator=busy)
