"""The run options every command that runs the method shares, defined once.

``segment``, ``eval``, ``eval-ablation`` and ``annotate generate`` take the same model and method
options (``--backbone``, ``--sam2``, ``--layers``, …); ``train`` takes the grounding subset. Each
option is spelled, typed and explained here only, and ``apply_run_options`` is the one place that
turns them into a configuration. Unset options keep the configuration's values (the paper's
defaults, or the environment's model choices read by ``SteerSegConfig.from_env``).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..config import SteerSegConfig, parse_layer_range
from ..errors import InputError


def layers_type(text: str) -> tuple[int, int]:
    """argparse type for ``--layers``: '14-27' → (14, 27)."""
    try:
        return parse_layer_range(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# name → (flags, argparse keyword arguments). Defaults are None: "keep the configuration's value".
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "backbone": (("--backbone",), dict(help="LVLM hub id or local folder (env STEERSEG_BACKBONE; "
                                            "default Qwen/Qwen2.5-VL-7B-Instruct)")),
    "sam2": (("--sam2",), dict(help="SAM2 size (tiny/small/base+/large), hub id, checkpoint file or "
                                    "folder (env STEERSEG_SAM2; default large)")),
    "soft_prompts": (("--soft-prompts",), dict(
        metavar="SOURCE", help="trained soft prompts: a .safetensors checkpoint or a Hugging Face hub reference "
                               "(user/repo or user/repo/file.safetensors); 'seed' = untrained seed-initialised "
                               "prompts, 'none' = no soft prompts (env STEERSEG_SOFT_PROMPTS; default: none - "
                               "without a trained checkpoint a run has no soft prompts)")),
    "no_cot": (("--no-cot",), dict(action="store_true", help="ablation: skip the chain-of-thought step")),
    "no_soft_prompts": (("--no-soft-prompts",), dict(action="store_true",
                                                     help="ablation: query without soft prompts")),
    "device": (("--device",), dict(help="cuda, cuda:1, mps, cpu or auto (default auto; one GPU per "
                                        "process under accelerate launch)")),
    "alpha": (("--alpha",), dict(type=float, help="weight of s_frm in s = α·s_frm + (1−α)·s_vid (default 0.3)")),
    "t_frame": (("--t-frame",), dict(type=int, help="keyframes of the frame branch, T_f (default 16)")),
    "t_video": (("--t-video",), dict(type=int, help="frames of the video branch, T_v (default 8)")),
    "layers": (("--layers",), dict(type=layers_type, help="rollout layers FIRST-LAST, inclusive (default: "
                                                         "14-27 of 28, scaled to the model's depth)")),
    "nms_iou": (("--nms-iou",), dict(type=float, help="mask NMS IoU threshold (default 0.7)")),
    "frame_tokens": (("--frame-tokens",), dict(type=int, help="visual-token budget per keyframe (default 1024)")),
    "n_prompts": (("--n-prompts",), dict(type=int, help="soft prompts per branch, N_p (default 64)")),
    "frame_normalisation": (("--frame-normalisation",), dict(
        choices=("per_keyframe", "joint"), help="min-max normalisation of S_frm: each keyframe on its own or one "
                                               "min/max over all keyframes (default per_keyframe; the paper "
                                               "does not say)")),
}
RUN_OPTIONS = tuple(OPTIONS)


def add_run_options(p: argparse.ArgumentParser, names: tuple[str, ...] = RUN_OPTIONS,
                    defaults: dict[str, Any] | None = None) -> None:
    """Add the named shared options (all by default) to ``p`` under one heading."""
    g = p.add_argument_group("models and method options (defaults = the paper)")
    for name in names:
        flags, kwargs = OPTIONS[name]
        kwargs = dict(kwargs)
        if defaults and name in defaults:
            kwargs["default"] = defaults[name]
        g.add_argument(*flags, **kwargs)


def apply_run_options(cfg: SteerSegConfig, args: argparse.Namespace) -> SteerSegConfig:
    """Apply the options given on a command line to ``cfg`` (options left unset keep ``cfg``'s
    values) and validate the result. Commands with fewer options simply lack them."""
    gr, seg = cfg.grounding, cfg.segment
    if getattr(args, "backbone", None):
        gr.backbone = args.backbone
    if getattr(args, "sam2", None):
        seg.sam2 = args.sam2
    if getattr(args, "soft_prompts", None):
        gr.soft_prompts = args.soft_prompts
    if getattr(args, "no_cot", False):
        gr.use_cot = False
    if getattr(args, "no_soft_prompts", False):
        gr.use_soft_prompts = False
    if getattr(args, "device", None):
        gr.device = seg.device = args.device
    for name, target, attr in (("alpha", seg, "alpha"), ("t_frame", gr, "t_frame"), ("t_video", gr, "t_video"),
                               ("layers", gr, "layers"), ("nms_iou", seg, "nms_iou"),
                               ("frame_tokens", gr, "frame_max_tokens"), ("n_prompts", gr, "n_prompts"),
                               ("frame_normalisation", gr, "frame_normalisation")):
        value = getattr(args, name, None)
        if value is not None:
            setattr(target, attr, value)
    if not 0.0 <= seg.alpha <= 1.0:
        raise InputError("--alpha must be between 0 and 1")
    if gr.t_frame < 1 or gr.t_video < 1:
        raise InputError("--t-frame and --t-video must be at least 1")
    if not 0.0 < seg.nms_iou <= 1.0:
        raise InputError("--nms-iou must be in (0, 1]")
    if gr.n_prompts < 1:
        raise InputError("--n-prompts must be at least 1")
    return cfg


def config_from_args(args: argparse.Namespace) -> SteerSegConfig:
    """The run configuration: the environment's (``SteerSegConfig.from_env``), then the options."""
    return apply_run_options(SteerSegConfig.from_env(), args)
