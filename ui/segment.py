"""Segment tab: upload a clip, type a sentence, see the mask and why it was chosen.

Handlers are plain functions over an explicit session state (a dict: the result, the clip's file
path, the clicks, the frame shown, the run config). The core ones (``run_segment``,
``pick_candidate``, ``rescore``, ``apply_clicks``) raise ``gr.Error`` with a readable reason; the
``on_*`` functions wired to the page turn that into a persistent status line and leave every result
panel as it was (``gr.skip()``), so one failed action never blanks a finished run. Model work runs
in one queue (``concurrency_id="gpu"``, limit from the config) through ``ui.gpu`` (ZeroGPU-ready).
Decoded clips are not kept in the session: a small process-wide cache holds the last few, and a
clip is re-decoded from its file when needed.
"""

from __future__ import annotations

import copy
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr

from steerseg_core import access, visualize
from steerseg_core.config import DEFAULT_BACKBONE, SteerSegConfig, parse_layer_range
from steerseg_core.errors import ModelLoadError, SteerSegError, public_message
from steerseg_core.grounding.grounder import soft_prompts_note
from steerseg_core.grounding.soft_prompts import NONE_SOURCES, SEED_SOURCE, list_checkpoints
from steerseg_core.stages import SAM2_GROUP, Stage
from steerseg_core.types import Clip, SegmentationResult

from .clips import session_clip
from .context import AppContext
from .gpu import GpuJob, refine_on_gpu, segment_on_gpu

SEED_INIT = "seed-initialised (untrained)"
NO_SOFT_PROMPTS = "none (no trained checkpoint)"
CONFIGURED = "configured (STEERSEG_SOFT_PROMPTS / --soft-prompts)"
SAM2_SIZES = list(access.SAM2_SIZES)
# Overall progress bar share of each stage; the SAM2 stage reports one fraction across its
# sub-steps (encoding frames, keyframe masks, tracking/propagating candidates).
STAGE_SPAN = {Stage.COT.group: (0.0, 0.15), Stage.FRAME_ROLLOUT.group: (0.15, 0.45),
              Stage.VIDEO_ROLLOUT.group: (0.45, 0.55), SAM2_GROUP: (0.55, 0.95), Stage.SCORING.group: (0.95, 1.0)}
TINY_BUTTON = "Try it with tiny random-weight models"
# What the backbone and SAM2 boxes hold for the tiny try-out models (built under the cache folder).
TINY_CHOICE = "tiny (random weights, built here)"
SCORE_HELP = (
    "**How candidates are scored.** s = α·s_frm + (1−α)·s_vid. **s_frm**: Pearson correlation between a "
    "tracklet's mask logits at the keyframes and the frame-level attention S_frm; **s_vid**: the same with the "
    "video-level attention S_vid (masks aligned to its frames and grid). Both lie in [−1, 1]; higher means the "
    "tracklet covers where the model looked. The highest s is chosen (★). α is under Advanced.")
HEATMAP_HELP = (
    "Heatmaps show the attention rollout of the query word over the image, normalised per map (blue = little "
    "attention, red = most). **S_frm**: each keyframe on its own; caption = frame index · the query word the frame "
    "branch generated; the dot is the map's peak, SAM2's starting point. **S_vid**: the video pass, one tile per "
    "frame; the **query word** box is the video branch's word. **Candidates**: each tracklet's mask at its "
    "source keyframe, captioned #index, ★ when chosen, and its score s.")


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
    # The tiny try-out models go by name (their folder is a server path); anything else must, on a
    # Space, come from the allow-list (any hub id would be downloaded and loaded).
    if (backbone or "").strip() == TINY_CHOICE:
        backbone = str(ctx.tiny_models_dir / "qwen2_5_vl")
    else:
        backbone = access.check_model_choice("backbone", backbone, ctx.config.grounding.backbone, ctx.service)
    if (sam2 or "").strip() == TINY_CHOICE:
        sam2 = str(ctx.tiny_models_dir / "sam2")
    else:
        sam2 = access.check_model_choice("sam2", sam2, ctx.config.segment.sam2, ctx.service)
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


def candidate_number(result: SegmentationResult) -> gr.Number:
    """The "use candidate #" box: following the chosen one, its range in the label. The bound is
    checked by ``pick_candidate`` (a readable status line), not by the component, whose own check
    would answer with Gradio's raw message and error badges."""
    return gr.Number(value=result.chosen, precision=0, label=f"use candidate # (0–{len(result.tracklets) - 1})")


def result_views(ctx: AppContext, session: dict[str, Any], clip: Clip) -> tuple:
    """Everything that changes when the chosen candidate changes: candidate thumbnails, score rows,
    the candidate box, the overlay video, the download files and the frame to correct."""
    from steerseg_core.export import export_all

    result = session["result"]
    out: Path | None = None
    try:
        out = ctx.new_output_dir()
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
    files = [str(paths[k]) for k in ("zip", "coco_rle", "result_json", "overlay") if k in paths]
    return thumbs, rows, candidate_number(result), str(paths["overlay"]), files, frame


def status_text(result: SegmentationResult) -> str:
    """The line above the results: what produced them (models, soft prompts, layers, α)."""
    g = result.grounding
    alpha = result.config.get("segment", {}).get("alpha")
    wanted = bool(result.config.get("grounding", {}).get("use_soft_prompts", True))
    sp_note = soft_prompts_note(g.soft_prompts_info, wanted,
                                how="choose a checkpoint under Advanced, or 'seed-initialised' for untrained prompts")
    text = (f"✅ {len(result.tracklets)} candidate(s), #{result.chosen} chosen · soft prompts: "
            f"**{sp_note}** · rollout layers {g.layers[0]}–{g.layers[1]}"
            + (f" · α = {alpha:.2f}" if isinstance(alpha, (int, float)) else ""))
    if result.tiny_models:
        text = ("⚠️ **tiny random-weight models** (for trying the app; the outputs are meaningless) · " + text)
    return text


def model_missing_text(message: str) -> str:
    return (f"⚠️ **The model could not be loaded.** {message}\n\n"
            "Set another model under **Advanced → backbone** (a hub id or a local folder with the weights), "
            f"or press **{TINY_BUTTON}** to see every step of the app with models built here in seconds "
            "(their outputs are meaningless).")


def run_segment(ctx: AppContext, video: str | None, expression: str, backbone: str, soft_choice: str,
                use_cot: bool, use_soft: bool, alpha: float, t_frame: int, t_video: int, layers: str,
                nms_iou: float, sam2: str, progress: gr.Progress | None = None) -> tuple:
    """Run the whole method on an uploaded clip. Raises gr.Error with a readable reason.

    Returns, in order: status, reasoning, attributes, query word, frame-level heatmaps, video-level
    tiles, candidate thumbnails, score rows, candidate box, overlay, files, frame to correct, its
    slider, clicks text, timing rows, session."""
    from steerseg_core.video import validate_expression

    if not video:
        raise gr.Error("Upload a video first.")
    try:
        cfg = build_config(ctx, backbone, soft_choice, use_cot, use_soft, alpha, t_frame, t_video, layers,
                           nms_iou, sam2)
        expression = validate_expression(expression, cfg.limits)
        job = GpuJob(config=cfg, video=str(video), expression=expression, max_seconds=ctx.service.gpu_duration)
        # a progress callback does not pickle: on a Space (another process) the run reports none
        report = None if ctx.service.on_space else _progress_callback(progress)
        result = segment_on_gpu(job, report)
    except ModelLoadError as err:
        raise gr.Error(model_missing_text(public_message(err))) from None
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session = {"result": result, "video": str(video), "clicks": [], "config": cfg,
               "frame": int(result.tracklets[result.chosen].source_keyframe)}
    clip = session_clip(session, cfg.limits)
    g = result.grounding
    thumbs, rows, number, overlay, files, frame = result_views(ctx, session, clip)
    slider = gr.Slider(minimum=0, maximum=max(1, clip.num_frames - 1), value=session["frame"], step=1,
                       label="frame to correct" + (" (the clip has one frame)" if clip.num_frames == 1 else ""),
                       interactive=clip.num_frames > 1)
    reasoning = "(CoT step off)" if g.cot is None else (g.reasoning or "(no reasoning parsed)")
    if g.cot is not None and g.cot.issues:
        reasoning += f"\n[parse notes: {'; '.join(g.cot.issues)}]"
    return (status_text(result), reasoning, ", ".join(g.attributes) or "-", g.query_word or "-",
            visualize.keyframe_heatmaps(clip, g), visualize.video_heatmap_tiles(clip, g), thumbs, rows, number,
            overlay, files, frame, slider, "", visualize.timing_rows(result), session)


def _need(session: dict | None) -> dict:
    if not session or "result" not in session:
        raise gr.Error("Run a segmentation first.")
    return session


def pick_candidate(ctx: AppContext, session: dict | None, index: float | None) -> tuple:
    """Choose candidate ``index`` (no model runs). Returns status, the ``result_views`` and the session."""
    from steerseg_core.pipeline import SteerSeg

    session = _need(session)
    try:
        result = SteerSeg.choose(session["result"], int(index or 0))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    clip = session_clip(session, session["config"].limits)
    session = {**session, "result": result, "clicks": []}
    return (status_text(result), *result_views(ctx, session, clip), "", session)


def rescore(ctx: AppContext, session: dict | None, alpha: float) -> tuple:
    from steerseg_core.pipeline import SteerSeg

    session = _need(session)
    try:
        result = SteerSeg(session["config"]).rescore(session["result"], float(alpha))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    clip = session_clip(session, session["config"].limits)
    session = {**session, "result": result}
    return (status_text(result), *result_views(ctx, session, clip), "", session)


def show_frame(session: dict | None, frame: float) -> Any:
    if not session or "result" not in session:
        return None
    session["frame"] = int(frame)
    clip = session_clip(session, session["config"].limits)
    return visualize.frame_with_mask(clip, session["result"], int(frame), session["clicks"])


def add_click(session: dict | None, label: str, evt: gr.SelectData) -> tuple:
    session = _need(session)
    x, y = evt.index[0], evt.index[1]
    session["clicks"].append((session.get("frame", 0), float(x), float(y), 1 if label == "positive" else 0))
    text = "; ".join(f"frame {f}: ({x:.0f}, {y:.0f}) {'+' if lab else '−'}" for f, x, y, lab in session["clicks"])
    return show_frame(session, session.get("frame", 0)), text, session


def apply_clicks(ctx: AppContext, session: dict | None) -> tuple:
    session = _need(session)
    if not session["clicks"]:
        raise gr.Error("Click on the frame first (choose positive or negative).")
    cfg = session["config"]
    try:
        job = GpuJob(config=cfg, video=session["video"], result=session["result"],
                     clicks=tuple(session["clicks"]), max_seconds=ctx.service.gpu_duration)
        result = refine_on_gpu(job)
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    clip = session_clip(session, cfg.limits)
    session = {**session, "result": result, "clicks": []}
    return (status_text(result), *result_views(ctx, session, clip), "", session)


def failed(message: str, n_outputs: int) -> tuple:
    """What a failed action returns to the page: the reason in the status line, every other output
    left as it was."""
    return (f"⚠️ {message}", *[gr.skip()] * (n_outputs - 1))


def _error_text(err: gr.Error) -> str:
    return str(err.message)


def cleared() -> tuple:
    """``run_segment``'s outputs for a new upload: emptied, so no previous clip's results stay on screen."""
    frame_slider = gr.Slider(minimum=0, maximum=1, value=0, step=1, label="frame to correct", interactive=False)
    number = gr.Number(value=0, precision=0, label="use candidate #")
    return ("", "", "", "", None, None, None, None, number, None, None, None, frame_slider, "", None, None)


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


class WaitingLine:
    """Our own count of model requests admitted (by ``busy_validator``) and not yet started.

    Gradio's queue internals are private, so the tab keeps this count: the validator admits, the
    handler calls ``start()`` when it begins. A request cancelled while waiting never starts; its
    admission is forgotten after ``stale_s`` seconds."""

    def __init__(self, stale_s: float = 3600.0) -> None:
        self.stale_s = stale_s
        self._admitted: list[float] = []
        self._lock = threading.Lock()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self.stale_s
        self._admitted = [t for t in self._admitted if t >= cutoff]

    def waiting(self) -> int:
        with self._lock:
            self._prune()
            return len(self._admitted)

    def admit(self, limit: int) -> int | None:
        """Admit one request unless ``limit`` already wait; returns how many waited before it, or
        None when refused."""
        with self._lock:
            self._prune()
            n = len(self._admitted)
            if n >= limit:
                return None
            self._admitted.append(time.monotonic())
            return n

    def start(self) -> None:
        with self._lock:
            if self._admitted:
                self._admitted.pop(0)


def busy_validator(ctx: AppContext, line: WaitingLine):
    """A Gradio validator (runs before an event joins the queue) refusing new model work with a
    clear "busy" message while ``max_waiting_jobs`` requests already wait for the GPU."""
    def validate(*inputs: Any) -> Any:
        limit = ctx.config.limits.max_waiting_jobs
        admitted = line.admit(limit)
        n = line.waiting()
        verdict = gr.validate(admitted is not None, f"Busy: {n} segmentation requests are already waiting for the "
                                                    f"model (the limit is {limit}). Please try again in a few minutes.")
        # one verdict per input; the message is shown on the first (the video)
        return verdict if len(inputs) == 1 else [verdict] + [gr.validate(True, "")] * (len(inputs) - 1)

    return validate


def prepare_tiny_models(ctx: AppContext) -> tuple[str, str, str]:
    """Build (once) the tiny random-weight backbone and SAM2 under the cache folder; returns their
    name for the backbone and SAM2 boxes (``TINY_CHOICE``, resolved by ``build_config``: a server
    path never reaches the page) and a status line saying what they are."""
    from steerseg_core.files import has_tiny_marker

    root = ctx.tiny_models_dir
    backbone, sam2 = root / "qwen2_5_vl", root / "sam2"
    if not (has_tiny_marker(backbone) and has_tiny_marker(sam2)):
        from steerseg_core.testing.tiny_models import make_tiny_qwen
        from steerseg_core.testing.tiny_sam2 import make_tiny_sam2

        make_tiny_qwen(backbone, "qwen2_5_vl")
        make_tiny_sam2(sam2)
    return (TINY_CHOICE, TINY_CHOICE,
            "⚠️ **Tiny random-weight models selected** (Advanced → backbone and SAM2): every step runs and is "
            "shown, but the outputs are meaningless. Put a real model back under Advanced for real results.")


def colour_scale_html() -> str:
    """The heatmaps' legend: the library's colour scale as a CSS gradient (no image file)."""
    stops = ", ".join(visualize.colormap_stops())
    return ('<div style="max-width:320px;font-size:12px"><div style="height:12px;border-radius:3px;'
            f'background:linear-gradient(to right, {stops})"></div><div style="display:flex;'
            'justify-content:space-between"><span>low attention (0)</span><span>high (1)</span></div></div>')


def build_segment_tab(ctx: AppContext) -> None:
    cfg = ctx.config
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            gr.Markdown(limits_text(ctx))
            video = gr.Video(label="video", sources=["upload"])
            n_chars = cfg.limits.max_expression_chars
            expression = gr.Textbox(label="expression", placeholder="e.g. the animal that can fly",
                                    max_length=n_chars, info=f"up to {n_chars:,} characters; typing stops there")
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
            tiny = gr.Button(TINY_BUTTON, size="sm", variant="secondary")
            gr.Markdown("No model weights here? The button above builds tiny random-weight models (seconds) and "
                        "runs the clip with them: every panel fills, the outputs mean nothing.",
                        elem_classes=["steerseg-hint"])
        with gr.Column(scale=2, min_width=320):
            status = gr.Markdown(elem_id="segment-status")
            with gr.Row():
                reasoning = gr.Textbox(label="reasoning (CoT)", lines=3, interactive=False, min_width=200)
                attributes = gr.Textbox(label="attributes", lines=3, interactive=False, min_width=200)
                query_word = gr.Textbox(label="query word (video branch)", interactive=False, min_width=120)
            gr.Markdown(HEATMAP_HELP)
            gr.HTML(colour_scale_html(), elem_id="segment-colour-scale")
            heatmaps = gr.Gallery(label="frame-level attention (S_frm)", columns=4, height="auto", object_fit="contain",
                                  elem_classes=["steerseg-gallery"])
            vid_tiles = gr.Gallery(label="video-level attention (S_vid)", columns=4,
                                   height="auto", object_fit="contain", elem_classes=["steerseg-gallery"])
            cand_gallery = gr.Gallery(label="candidates · click one to use it",
                                      columns=4, height="auto", object_fit="contain", allow_preview=False,
                                      elem_classes=["steerseg-gallery"])
            gr.Markdown(SCORE_HELP)
            cand_table = gr.Dataframe(headers=visualize.CANDIDATE_HEADERS, label="candidate scores (scroll sideways for "
                                      "keyframe and point)", interactive=False, elem_classes=["steerseg-table"])
            with gr.Row():
                cand_index = gr.Number(label="use candidate #", precision=0, value=0)
                use_cand = gr.Button("Use this candidate")
                rescore_btn = gr.Button("Re-score with α")
            overlay = gr.Video(label="result", interactive=False)
            files = gr.File(label="downloads: masks zip (DAVIS palette PNGs), masks_coco_rle.json, result.json, "
                            "overlay.mp4", file_count="multiple", interactive=False)
            with gr.Accordion("Correct with clicks", open=False):
                frame_slider = gr.Slider(0, 1, value=0, step=1, label="frame to correct")
                click_label = gr.Radio(["positive", "negative"], value="positive", label="click type")
                frame_img = gr.Image(label="click on the frame", interactive=False)
                clicks_text = gr.Textbox(label="clicks", interactive=False)
                apply_btn = gr.Button("Re-propagate with clicks")
            with gr.Accordion("Timings", open=False):
                timings = gr.Dataframe(headers=["stage", "seconds"], label="time per stage", interactive=False)
    # a run (result + the clip's path) stays in memory for its session: at most 3 h, never longer
    # than its downloads; the decoded clip is not kept in it (see ``session_clip``)
    session = gr.State(None, time_to_live=min(3 * 3600, ctx.outputs_max_age))
    limit = cfg.limits.max_concurrent_jobs
    line = WaitingLine()
    busy = busy_validator(ctx, line)
    from .diagnostics import build_diagnostics_section

    build_diagnostics_section(ctx, session, line, busy)  # "See why" (#15): its own module
    run_outputs = [status, reasoning, attributes, query_word, heatmaps, vid_tiles, cand_gallery, cand_table,
                   cand_index, overlay, files, frame_img, frame_slider, clicks_text, timings, session]
    view_outputs = [status, cand_gallery, cand_table, cand_index, overlay, files, frame_img, clicks_text, session]
    run_inputs = [video, expression, backbone, soft_choice, use_cot, use_soft, alpha, t_frame, t_video, layers,
                  nms_iou, sam2]

    def segment_or_status(v: str | None, *args: Any, progress: gr.Progress | None = None) -> tuple:
        try:
            return run_segment(ctx, v, *args, progress=progress)
        except gr.Error as err:
            return failed(_error_text(err), len(run_outputs))

    def on_segment(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple:
        line.start()  # admitted by ``busy``; running now
        return segment_or_status(*args, progress=progress)

    def on_pick(sess: dict | None, index: float | None) -> tuple:
        try:
            return pick_candidate(ctx, sess, index)
        except gr.Error as err:
            return failed(_error_text(err), len(view_outputs))

    def on_select(sess: dict | None, evt: gr.SelectData) -> tuple:
        return on_pick(sess, evt.index)

    def on_rescore(sess: dict | None, a: float) -> tuple:
        try:
            return rescore(ctx, sess, a)
        except gr.Error as err:
            return failed(_error_text(err), len(view_outputs))

    def on_apply(sess: dict | None) -> tuple:
        line.start()
        try:
            return apply_clicks(ctx, sess)
        except gr.Error as err:
            return failed(_error_text(err), len(view_outputs))

    def on_tiny() -> tuple:
        try:
            return prepare_tiny_models(ctx)
        except (SteerSegError, OSError) as err:
            return gr.skip(), gr.skip(), f"⚠️ The tiny models could not be built: {public_message(err)}"

    def after_tiny(v: str | None, *args: Any, progress: gr.Progress = gr.Progress()) -> tuple:
        line.start()  # admitted by ``busy``; running now
        if not v:
            return failed("Tiny models are ready (see Advanced). Upload a clip and press **Segment**.",
                          len(run_outputs))
        return segment_or_status(v, *args, progress=progress)

    run.click(on_segment, inputs=run_inputs, outputs=run_outputs, api_name="segment", concurrency_id="gpu",
              concurrency_limit=limit, validator=busy)
    tiny.click(on_tiny, None, [backbone, sam2, status], api_visibility="private").then(
        after_tiny, inputs=run_inputs, outputs=run_outputs, concurrency_id="gpu", concurrency_limit=limit,
        validator=busy, api_visibility="private")
    video.change(cleared, None, run_outputs, api_visibility="private")
    soft_choice.focus(lambda: gr.Dropdown(choices=soft_prompt_choices(ctx)), None, soft_choice,
                      api_visibility="private")  # checkpoints finished since the page loaded
    use_cand.click(on_pick, [session, cand_index], view_outputs, api_name="pick_candidate")
    cand_gallery.select(on_select, [session], view_outputs, api_visibility="private")
    rescore_btn.click(on_rescore, [session, alpha], view_outputs, api_name="rescore")
    frame_slider.release(show_frame, [session, frame_slider], frame_img, api_visibility="private")
    frame_img.select(add_click, [session, click_label], [frame_img, clicks_text, session], api_visibility="private")
    apply_btn.click(on_apply, [session], view_outputs, api_name="apply_clicks", concurrency_id="gpu",
                    concurrency_limit=limit, validator=busy)


# Page styles for the tab (passed to ``launch(css=...)`` by app.py): galleries as tall as their rows
# (no fixed-height box hiding a second row or leaving a blank one) and two columns on a phone.
SEGMENT_CSS = """
.steerseg-gallery .fixed-height { min-height: 0 !important; max-height: none !important; }
@media (max-width: 640px) {
  .steerseg-gallery .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
}
"""
