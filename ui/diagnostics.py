"""The "See why" section of the Segment tab: the paper's diagnostic views on the user's clip.

Four on-demand views of the run kept in the tab's session, each a thin event handler over a
library call (the UI computes nothing itself):

* attribute attention (Fig. 4b) — the attributes highlighted by the query row's attention, and
  the row's split between visual tokens, prompt text and soft prompts;
* readout comparison (Fig. 1b) — raw / contrast / soft prompts / CoT / both at one keyframe;
* ground truth — upload the clip's masks to score the run (J&F, J, F, Table 3 alignments);
* counterfactual attributes — edit the attributes and re-run the query, rollout and scoring.

Each writes a result.json with what it added, for download.
"""

from __future__ import annotations

import tempfile
from functools import partial
from typing import Any

import gradio as gr

from steerseg_core import visualize
from steerseg_core.errors import SteerSegError, public_message
from steerseg_core.types import SegmentationResult

from .clips import session_clip
from .context import AppContext
from .gpu import GpuJob, attributes_on_gpu, readouts_on_gpu


def _need(session: dict | None) -> dict:
    if not session or "result" not in session:
        raise gr.Error("Run a segmentation first.")
    return session


def _result_json(ctx: AppContext, result: SegmentationResult) -> str:
    from steerseg_core.export import write_result_json

    return str(write_result_json(result, ctx.new_output_dir() / "result.json"))


def _job(ctx: AppContext, session: dict, **fields: Any) -> GpuJob:
    """The picklable job of a diagnostic model call: the session's config, clip path and result."""
    return GpuJob(config=session["config"], video=str(session["video"]), result=session["result"],
                  max_seconds=ctx.service.gpu_duration, **fields)


def attribute_view(session: dict | None) -> tuple[list, str]:
    """Highlighted attributes and the attention summary of the session's run."""
    g = _need(session)["result"].grounding
    return visualize.attribute_highlights(g), visualize.attention_summary_markdown(g)


def compare_readouts(ctx: AppContext, session: dict | None, frame: float | None) -> tuple[Any, str, str, dict]:
    """The five readouts at ``frame`` (empty: the chosen tracklet's keyframe)."""
    from steerseg_core.grounding.readouts import READOUT_TITLES

    session = _need(session)
    try:
        comparison, result = readouts_on_gpu(_job(ctx, session, frame=None if frame is None else int(frame)))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session["result"] = result
    rows = [f"| {READOUT_TITLES[k]} | " + ("n/a" if xy is None else f"({xy[0]:.0f}, {xy[1]:.0f})") + " |"
            for k, xy in comparison.points.items()]
    text = (f"frame {comparison.frame} · argmax points\n\n| readout | point (x, y) |\n|---|---|\n" + "\n".join(rows)
            + "".join(f"\n\n{n}" for n in comparison.notes)
            + "\n\nContrast = the query's attention minus a neutral expression's (the idea DecAF, ICLR 2026, uses).")
    clip = session_clip(session, ctx.config.limits)
    return visualize.readout_panel(clip, comparison), text, _result_json(ctx, result), session


def score_ground_truth(ctx: AppContext, session: dict | None, files: list[str] | None) -> tuple[str, str, dict]:
    """Score the session's run against uploaded ground-truth PNGs (or a zip of them)."""
    import dataclasses

    from steerseg_core.eval.clip_eval import evaluate_against_gt, gt_folder_from_files

    session = _need(session)
    if not files:
        raise gr.Error("Upload the clip's ground-truth masks (PNG per frame, or a zip of them).")
    try:
        with tempfile.TemporaryDirectory(prefix="steerseg-gt-") as tmp:
            clip = session_clip(session, ctx.config.limits)
            ev = evaluate_against_gt(session["result"], clip, gt_folder_from_files(files, tmp))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    result = session["result"]
    session["result"] = dataclasses.replace(result, diagnostics={**result.diagnostics, "evaluation": ev})
    text = (f"**J&F {ev['J&F']:.3f}** · J {ev['J']:.3f} · F {ev['F']:.3f} over {ev['gt_frames_matched']} frames\n\n"
            f"rollout–mask alignment (Table 3): frame branch {ev['alignment_frame']:.3f} · video branch "
            f"{ev['alignment_video']:.3f}")
    return text, _result_json(ctx, session["result"]), session


def rerun_with_attributes(ctx: AppContext, session: dict | None, attributes: str) -> tuple:
    """Counterfactual attributes: re-run the query step, rollout and scoring (no new CoT)."""
    session = _need(session)
    before = session["result"]
    try:
        after = attributes_on_gpu(_job(ctx, session, attributes=attributes or ""))
    except SteerSegError as err:
        raise gr.Error(public_message(err)) from None
    session["result"], session["clicks"] = after, []
    old, new = before.tracklets[before.chosen], after.tracklets[after.chosen]
    moved = (f"chosen tracklet: keyframe {old.source_keyframe} (s={old.s:.3f}) → keyframe {new.source_keyframe} "
             f"(s={new.s:.3f}); point ({old.point_xy[0]:.0f}, {old.point_xy[1]:.0f}) → "
             f"({new.point_xy[0]:.0f}, {new.point_xy[1]:.0f})")
    highlights, summary = attribute_view(session)
    clip = session_clip(session, ctx.config.limits)
    return (moved, visualize.keyframe_heatmaps(clip, after.grounding), highlights, summary,
            _result_json(ctx, after), session)


def build_diagnostics_section(ctx: AppContext, session: gr.State, line: Any = None, busy: Any = None) -> None:
    """The "See why" accordion; placed in the Segment tab with one call. Its two model calls share
    the tab's GPU queue: ``busy`` (the tab's validator) admits them, ``line`` counts them as waiting
    until they start."""
    limit = ctx.config.limits.max_concurrent_jobs

    def started(fn):
        def run(*args: Any) -> Any:
            if line is not None:
                line.start()  # admitted by ``busy``; running now
            return fn(ctx, *args)
        return run

    with gr.Accordion("See why (the paper's diagnostics on this clip)", open=False):
        with gr.Tab("Attribute attention"):
            explain = gr.Button("Show attribute attention")
            highlights = gr.HighlightedText(label="attributes, highlighted by the query's attention (frame branch)",
                                            combine_adjacent=False)
            summary = gr.Markdown()
        with gr.Tab("Readouts"):
            with gr.Row():
                frame = gr.Number(label="frame (empty = chosen keyframe)", precision=0, value=None)
                compare = gr.Button("Compare readouts")
            panel = gr.Image(label="raw · contrast · soft prompts · CoT · both (dot = argmax)", interactive=False)
            points = gr.Markdown()
            readouts_json = gr.File(label="result.json with the readouts", interactive=False)
        with gr.Tab("Ground truth"):
            gt_files = gr.File(label="ground-truth masks (one PNG per frame named like the frames, or a zip)",
                               file_count="multiple", file_types=[".png", ".zip"])
            score = gr.Button("Score against ground truth")
            scores = gr.Markdown()
            gt_json = gr.File(label="result.json with the evaluation", interactive=False)
        with gr.Tab("Counterfactual attributes"):
            attrs = gr.Textbox(label="attributes to use instead of the CoT's (comma-separated)",
                               placeholder="e.g. white, flying, on the right")
            rerun = gr.Button("Re-run query + rollout + scoring")
            moved = gr.Markdown()
            cf_heatmaps = gr.Gallery(label="frame-level attention with these attributes", columns=4, height=280)
            cf_json = gr.File(label="result.json of the counterfactual run", interactive=False)
    explain.click(attribute_view, [session], [highlights, summary], api_name="attribute_attention")
    compare.click(started(compare_readouts), [session, frame], [panel, points, readouts_json, session],
                  api_name="compare_readouts", concurrency_id="gpu", concurrency_limit=limit, validator=busy)
    score.click(partial(score_ground_truth, ctx), [session, gt_files], [scores, gt_json, session], api_name="score_ground_truth")
    rerun.click(started(rerun_with_attributes), [session, attrs],
                [moved, cf_heatmaps, highlights, summary, cf_json, session],
                api_name="counterfactual_attributes", concurrency_id="gpu", concurrency_limit=limit, validator=busy)
