"""`python -m steerseg_core segment VIDEO "EXPRESSION" --out DIR`: the headless one-shot command.

Also owns the shared model/run options (``add_run_options`` / ``config_from_args``) so that every
command that runs the pipeline (segment, eval, annotate generate) spells them the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import LimitsConfig, SteerSegConfig
from .errors import InputError


def parse_layers(text: str) -> tuple[int, int]:
    """'14-27' or '14,27' → (14, 27)."""
    for sep in ("-", ",", ":"):
        if sep in text:
            a, b = text.split(sep, 1)
            try:
                return int(a), int(b)
            except ValueError:
                break
    raise argparse.ArgumentTypeError(f"layers must look like 14-27, got {text!r}")


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and method options (defaults = the paper)")
    g.add_argument("--backbone", default=os.environ.get("STEERSEG_BACKBONE"),
                   help="LVLM hub id or local folder (env STEERSEG_BACKBONE; default Qwen/Qwen2.5-VL-7B-Instruct)")
    g.add_argument("--sam2", default=os.environ.get("STEERSEG_SAM2"),
                   help="SAM2 size (tiny/small/base+/large), checkpoint file or folder (env STEERSEG_SAM2)")
    g.add_argument("--soft-prompts", default=os.environ.get("STEERSEG_SOFT_PROMPTS"),
                   help="soft-prompt checkpoint (.safetensors); without one, seed-initialised prompts are used")
    g.add_argument("--no-cot", action="store_true", help="ablation: skip the chain-of-thought step")
    g.add_argument("--no-soft-prompts", action="store_true", help="ablation: query without soft prompts")
    g.add_argument("--device", default="auto", help="cuda, mps, cpu or auto")
    g.add_argument("--alpha", type=float, default=None, help="weight of the frame score (default 0.3)")
    g.add_argument("--t-frame", type=int, default=None, help="keyframes T_f (default 16)")
    g.add_argument("--t-video", type=int, default=None, help="video-branch frames T_v (default 8)")
    g.add_argument("--layers", type=parse_layers, default=None, help="rollout layers, e.g. 14-27")
    g.add_argument("--nms-iou", type=float, default=None, help="mask NMS IoU threshold (default 0.7)")
    g.add_argument("--frame-tokens", type=int, default=None, help="token budget per keyframe (default 1024)")
    g.add_argument("--max-side", type=int, default=None, help="downscale frames to this longest side first")


def apply_run_options(cfg: SteerSegConfig, args: argparse.Namespace) -> SteerSegConfig:
    """Apply the model/method options given on a command line to ``cfg`` (options left unset keep
    ``cfg``'s values) and validate the result. Commands with fewer options simply lack them."""
    gr, seg = cfg.grounding, cfg.segment
    if args.backbone:
        gr.backbone = args.backbone
    if args.sam2:
        seg.sam2 = args.sam2
    if args.soft_prompts:
        gr.soft_prompts = args.soft_prompts
    if args.no_cot:
        gr.use_cot = False
    if args.no_soft_prompts:
        gr.use_soft_prompts = False
    if getattr(args, "device", None):
        gr.device = seg.device = args.device
    for name, target, attr in (("alpha", seg, "alpha"), ("t_frame", gr, "t_frame"), ("t_video", gr, "t_video"),
                               ("layers", gr, "layers"), ("nms_iou", seg, "nms_iou"),
                               ("frame_tokens", gr, "frame_max_tokens"), ("n_prompts", gr, "n_prompts")):
        value = getattr(args, name, None)
        if value is not None:
            setattr(target, attr, value)
    if not 0.0 <= seg.alpha <= 1.0:
        raise InputError("--alpha must be between 0 and 1")
    if gr.t_frame < 1 or gr.t_video < 1:
        raise InputError("--t-frame and --t-video must be at least 1")
    if not 0.0 < seg.nms_iou <= 1.0:
        raise InputError("--nms-iou must be in (0, 1]")
    return cfg


def config_from_args(args: argparse.Namespace) -> SteerSegConfig:
    """The run configuration from the options; input limits from STEERSEG_MAX_* (as in the app)."""
    return apply_run_options(SteerSegConfig(limits=LimitsConfig.from_env()), args)


class StageBars:
    """A tqdm bar per pipeline stage, driven by the pipeline's (stage, fraction) callback."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=f"{stage:>18}", unit="%", file=sys.stderr, leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        target = int(round(100 * min(max(fraction, 0.0), 1.0)))
        self.bar.update(max(0, target - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(100 - self.bar.n)
            self.bar.close()
            self.bar = None


def _cmd(args: argparse.Namespace) -> int:
    from .export import export_all
    from .pipeline import SteerSeg
    from .video import load_clip, validate_expression

    cfg = config_from_args(args)
    expression = validate_expression(args.expression, cfg.limits)
    clip = load_clip(args.video, cfg.limits, max_side=args.max_side)
    bars = StageBars(enabled=not args.quiet)
    try:
        result = SteerSeg(cfg).run(clip, expression, progress=bars)
    finally:
        bars.close()
    paths = export_all(result, clip, Path(args.out))
    g = result.grounding
    chosen = result.tracklets[result.chosen]
    reasoning = "(CoT off)" if g.cot is None else (g.reasoning or "(no reasoning parsed)")
    print(f"reasoning:  {reasoning}")
    if g.cot is not None and g.cot.issues:
        print(f"CoT parse notes: {'; '.join(g.cot.issues)}")
    print(f"attributes: {', '.join(g.attributes) or '-'}")
    print(f"query word: {g.query_word or '-'}   soft prompts: {g.soft_prompts_label}")
    print(f"candidates: {len(result.tracklets)}; chosen #{result.chosen} (keyframe {chosen.source_keyframe}, "
          f"s={chosen.s:.3f}, s_frm={chosen.s_frm:.3f}, s_vid={chosen.s_vid:.3f})")
    for key, path in paths.items():
        print(f"{key:>12}: {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment the object an expression refers to in a video",
                       description="Segment VIDEO (a video file or a folder of JPEG/PNG frames) with EXPRESSION; "
                                   "writes DIR/masks/*.png, DIR/overlay.mp4, DIR/result.json and more.")
    p.add_argument("video", help="video file (mp4, webm, mov, avi, gif) or folder of frames")
    p.add_argument("expression", help="the referring or reasoning expression")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_run_options(p)
    p.set_defaults(func=_cmd)
