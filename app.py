"""SteerSeg web app: `python app.py` (also the Hugging Face Spaces entry point).

`create_app()` builds the Blocks (Segment, Annotate, Train tabs); `main()` parses flags and
launches. Model choices come from flags or STEERSEG_BACKBONE / STEERSEG_SAM2 / STEERSEG_SOFT_PROMPTS;
writable paths from STEERSEG_DB, STEERSEG_CHECKPOINTS, STEERSEG_RUNS, STEERSEG_CACHE, STEERSEG_OUTPUTS;
service switches (Space, training, ZeroGPU slot) from ``service_from_env``. The environment is read
here and in steerseg_core/config.py only: ``context_from_env`` builds the AppContext the tabs share.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from ui import gpu  # noqa: E402,F401  (imports `spaces` before torch initialises CUDA)
from ui.context import AppContext  # noqa: E402

TITLE = "SteerSeg — reasoning video object segmentation you can inspect"
INTRO = (
    "Segment the object a sentence refers to in a video by **steering a frozen vision-language model's "
    "attention**, then tracking it with SAM2. Every step is shown: the model's reasoning and attributes, "
    "where it looked (attention rollout per keyframe and over the video), every candidate tracklet with "
    "its score — and you can pick another candidate or correct with clicks."
)


def context_from_env() -> AppContext:
    """The app's shared context from the environment (config, paths, service switches)."""
    from steerseg_core.config import SteerSegConfig, paths_from_env, service_from_env

    return AppContext.from_config(SteerSegConfig.from_env(), paths_from_env(), service_from_env())


def create_app(ctx: AppContext | None = None) -> gr.Blocks:
    from ui.annotate import ANNOTATE_SHORTCUTS_JS, build_annotate_tab
    from ui.segment import build_segment_tab
    from ui.train import build_train_tab

    ctx = ctx or context_from_env()
    age = int(ctx.outputs_max_age)  # Gradio's copies of uploads and downloads live as long as ours
    with gr.Blocks(title="SteerSeg", delete_cache=(min(3600, age), age)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Tab("Segment"):
            build_segment_tab(ctx)
        with gr.Tab("Annotate"):
            build_annotate_tab(ctx)
        with gr.Tab("Train"):
            build_train_tab(ctx)
    demo.steerseg_context = ctx
    demo.steerseg_js = ANNOTATE_SHORTCUTS_JS
    return demo


# Every waiting event (any tab) counts towards this; beyond it Gradio answers "Queue is full". The
# GPU line has its own, smaller bound (LimitsConfig.max_waiting_jobs, a "Busy" message), so this is
# only a safety net for the process: annotation events run 16 at a time and rarely wait.
QUEUE_MAX_SIZE = 256


def configure_queue(demo: gr.Blocks, ctx: AppContext) -> gr.Blocks:
    """The app's event queue (call after ``create_app``; ``demo.queue()`` replaces it): model work
    runs ``max_concurrent_jobs`` at a time in the "gpu" line, the rest 8 at a time per event."""
    return demo.queue(default_concurrency_limit=8, max_size=max(QUEUE_MAX_SIZE, 4 * ctx.config.limits.max_waiting_jobs))


def start_cache_janitor(ctx: AppContext):
    """Sweep Gradio's file cache of copies older than the outputs age (see ``ui.janitor``); started
    by ``main`` (and by the load test's server, which launches the app as main does)."""
    from ui.janitor import CacheJanitor

    if ctx.gradio_cache_dir is None:
        return None
    age = float(ctx.outputs_max_age)
    return CacheJanitor(ctx.gradio_cache_dir, age, every_s=min(3600.0, age)).start()


def launch_kwargs(args: argparse.Namespace, ctx: AppContext) -> dict:
    from ui.annotate import ANNOTATE_SHORTCUTS_JS
    from ui.segment import SEGMENT_CSS

    return dict(server_name=args.host, server_port=args.port, share=args.share,
                allowed_paths=[str(ctx.cache_dir), str(ctx.outputs_dir)],
                max_file_size=int(ctx.config.limits.max_upload_mb * 2**20), js=ANNOTATE_SHORTCUTS_JS,
                css=SEGMENT_CSS, theme=gr.themes.Soft(), ssr_mode=False, show_error=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SteerSeg web app")
    p.add_argument("--host", default=os.environ.get("STEERSEG_HOST", "127.0.0.1"),
                   help="interface to bind (default 127.0.0.1; use 0.0.0.0 to expose on the network)")
    p.add_argument("--port", type=int, default=int(os.environ.get("STEERSEG_PORT", os.environ.get("GRADIO_SERVER_PORT", 7860))))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    p.add_argument("--backbone", help="LVLM hub id or folder (env STEERSEG_BACKBONE)")
    p.add_argument("--sam2", help="SAM2 size, checkpoint or folder (env STEERSEG_SAM2)")
    p.add_argument("--soft-prompts", help="soft-prompt checkpoint (env STEERSEG_SOFT_PROMPTS)")
    p.add_argument("--examples", help="folder of example clips shown under the upload (env STEERSEG_EXAMPLES)")
    return p.parse_args(argv)


def preload(ctx: AppContext) -> None:
    """Load the configured models before serving; a model that cannot load is reported on the page
    when a run asks for it (with the way out), so startup goes on."""
    from steerseg_core.errors import SteerSegError
    from ui.gpu import preload_models

    try:
        preload_models(ctx.config)
    except SteerSegError as err:
        print(f"models not preloaded: {err}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ctx = context_from_env()
    if ctx.service.on_space:  # on Hugging Face Spaces the platform routes traffic to 0.0.0.0:7860
        args.host = "0.0.0.0"
    if args.backbone:
        ctx.config.grounding.backbone = args.backbone
    if args.sam2:
        ctx.config.segment.sam2 = args.sam2
    if args.soft_prompts:
        ctx.config.grounding.soft_prompts = args.soft_prompts
    if args.examples:
        from pathlib import Path

        ctx.examples_dir = Path(args.examples)
    if ctx.service.on_space:  # ZeroGPU: load the models at startup, on 'cuda' (see ui/gpu.py)
        preload(ctx)
    demo = create_app(ctx)
    configure_queue(demo, ctx)
    start_cache_janitor(ctx)
    demo.launch(**launch_kwargs(args, ctx))


if __name__ == "__main__":
    main()
