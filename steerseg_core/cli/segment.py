"""`python -m steerseg_core segment VIDEO "EXPRESSION" --out DIR`: the headless one-shot command."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..stages import Stage
from .options import add_run_options, config_from_args

# The bars' labels line up: as wide as the longest stage name.
_STAGE_WIDTH = max(len(stage.value) for stage in Stage)


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
            self.bar = tqdm(total=100, desc=f"{stage:>{_STAGE_WIDTH}}", unit="%", file=sys.stderr, leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        target = int(round(100 * min(max(fraction, 0.0), 1.0)))
        self.bar.update(max(0, target - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(100 - self.bar.n)
            self.bar.close()
            self.bar = None


def _png(image) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _cmd(args: argparse.Namespace) -> int:
    from ..export import export_all
    from ..grounding.grounder import soft_prompts_note
    from ..pipeline import SteerSeg
    from ..video import load_clip, validate_expression

    cfg = config_from_args(args)
    expression = validate_expression(args.expression, cfg.limits)
    clip = load_clip(args.video, cfg.limits, max_side=args.max_side)
    bars = StageBars(enabled=not args.quiet)
    try:
        result = SteerSeg(cfg).run(clip, expression, progress=bars, attributes=args.attributes)
    finally:
        bars.close()
    comparison = None
    if args.compare_readouts is not None:
        frame = None if args.compare_readouts < 0 else args.compare_readouts
        comparison, result = SteerSeg(cfg).compare_readouts(result, clip, frame)
    if args.gt_masks:
        from ..eval.clip_eval import evaluate_against_gt

        evaluation = evaluate_against_gt(result, clip, args.gt_masks)
        result = dataclasses.replace(result, diagnostics={**result.diagnostics, "evaluation": evaluation})
    paths = export_all(result, clip, Path(args.out))
    if comparison is not None:
        from ..files import atomic_write_bytes
        from ..visualize import readout_panel

        paths["readouts"] = Path(args.out) / "readouts.png"
        atomic_write_bytes(paths["readouts"], _png(readout_panel(clip, comparison)))
        for name, xy in comparison.points.items():
            where = f"({xy[0]:.0f}, {xy[1]:.0f})" if xy is not None else "n/a"
            print(f"readout {name:>12} argmax on frame {comparison.frame}: {where}")
    g = result.grounding
    chosen = result.tracklets[result.chosen]
    reasoning = "(CoT off)" if g.cot is None else (g.reasoning or "(no reasoning parsed)")
    print(f"reasoning:  {reasoning}")
    if g.cot is not None and g.cot.issues:
        print(f"CoT parse notes: {'; '.join(g.cot.issues)}")
    source = {"user": " (given with --attributes; no CoT step)", "cot": ""}.get(g.attributes_source or "", "")
    print(f"attributes: {g.cot.attributes_text if g.cot else '-'}{source}")
    if g.attribute_attention:
        print("attribute attention: " + ", ".join(
            f"{a['attribute']} {a['share']:.0%}" for a in g.attribute_attention if a["share"] is not None))
    print(f"query word: {g.query_word or '-'}")
    for note in g.warnings:
        print(f"warning: {note}", file=sys.stderr)
    print("soft prompts: " + soft_prompts_note(
        g.soft_prompts_info, cfg.grounding.use_soft_prompts,
        how="pass --soft-prompts FILE.safetensors or a hub reference user/repo; --soft-prompts seed runs "
            "untrained seed prompts"))
    print(f"candidates: {len(result.tracklets)}; chosen #{result.chosen} (keyframe {chosen.source_keyframe}, "
          f"s={chosen.s:.3f}, s_frm={chosen.s_frm:.3f}, s_vid={chosen.s_vid:.3f})")
    ev = result.diagnostics.get("evaluation")
    if ev:
        print(f"ground truth: J&F {ev['J&F']:.4f}  J {ev['J']:.4f}  F {ev['F']:.4f}  alignment frame "
              f"{ev['alignment_frame']:.3f} / video {ev['alignment_video']:.3f} ({ev['gt_frames_matched']} frames)")
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
    p.add_argument("--max-side", type=int, default=None, help="downscale frames to this longest side first")
    p.add_argument("--gt-masks", metavar="DIR", default=None,
                   help="ground-truth masks (DAVIS layout: one PNG per frame named like the clip's frames, 0/255 "
                        "or palette) of the clip's size: score the run on the spot (result.json 'evaluation': "
                        "J&F, J, F as `eval-masks DIR OUT/masks --mode all-frames`, and the rollout-mask "
                        "alignments of the paper's Table 3)")
    p.add_argument("--attributes", default=None, metavar="TEXT",
                   help="counterfactual reasoning: use these attributes (e.g. \"black, swimming, on the left\") "
                        "in the query instead of the CoT step's; result.json says attributes_source 'user'")
    p.add_argument("--compare-readouts", nargs="?", type=int, const=-1, default=None, metavar="FRAME",
                   help="the paper's Fig. 1b on this clip: raw attention, contrast (query minus a neutral "
                        "expression, as DecAF), soft prompts only, CoT only and both at one frame (default: the "
                        "chosen tracklet's keyframe); writes DIR/readouts.png and the five argmax points into "
                        "result.json 'readouts'")
    add_run_options(p)
    p.set_defaults(func=_cmd)
