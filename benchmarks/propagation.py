"""Candidate tracking: SteerSeg's shared-feature, batched stage vs one sam2 state per candidate.

Both sides track the same candidates (one positive point on each of ``--candidates`` keyframes,
forward and backward through the clip) with the same SAM2 weights on a real DAVIS 480p clip:

- ours:  ``generate_candidates`` — every frame through the image encoder once, all candidates
         tracked together (``steerseg_core/segment/propagation.py``);
- naive: sam2's standard predictor API per candidate — ``init_state(video_path=<JPEG folder>)``,
         ``add_new_points_or_box`` on the keyframe, ``propagate_in_video`` forward then reverse.

The SAM2 is random-weight with a released architecture (hiera-t by default) at a realistic input
size, so the timings are real and the masks meaningless. Run from the repository root:

    python benchmarks/propagation.py                 # bmx-trees, first 24 frames, hiera-t @ 512
    python benchmarks/propagation.py --frames 80 --image-size 1024
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # sam2's per-pass progress bars

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steerseg_core.config import SegmentConfig  # noqa: E402
from steerseg_core.segment import build_sam2, generate_candidates  # noqa: E402
from steerseg_core.testing.tiny_sam2 import make_tiny_sam2  # noqa: E402
from steerseg_core.types import Clip, GroundingResult, TokenGeometry  # noqa: E402

# Real clips: the full data (all frames) from STEERSEG_DATA, a folder laid out like tests/data
# (davis2016/JPEGImages/480p/<seq>/, davis2016/Annotations/480p/<seq>/); without it, the 16-frame
# subset committed in tests/data (main() says so).
DATA = Path(os.environ.get("STEERSEG_DATA") or ROOT / "tests" / "data")
DATA_NOTE = ("note: STEERSEG_DATA is unset, so this uses the 16-frame clips committed in tests/data; "
             "set STEERSEG_DATA to a folder with the full clips for real measurements")
DAVIS = DATA / "davis2016"


def load_clip(seq: str, frames: int) -> tuple[Clip, list[Path], np.ndarray]:
    jpgs = sorted((DAVIS / "JPEGImages" / "480p" / seq).glob("*.jpg"))[:frames]
    pngs = sorted((DAVIS / "Annotations" / "480p" / seq).glob("*.png"))[:frames]
    rgb = np.stack([np.array(Image.open(p).convert("RGB")) for p in jpgs])
    gt = np.stack([np.array(Image.open(p).convert("L")) > 127 for p in pngs])
    return Clip(frames=rgb, fps=24.0, source=str(jpgs[0].parent), frame_names=tuple(p.stem for p in jpgs)), jpgs, gt


def grounding_on_object(gt: np.ndarray, keyframes: np.ndarray, grid=(18, 32)) -> GroundingResult:
    """Attention maps = the ground-truth object on the token grid, so each keyframe's point lands
    on the object (the benchmark is about tracking cost, not grounding)."""
    h, w = gt.shape[1:]
    maps = np.stack([np.array(Image.fromarray(gt[k].astype(np.float32)).resize(grid[::-1], Image.BOX))
                     for k in keyframes])
    vid = maps[:, ::2, ::2]
    return GroundingResult(
        expression="benchmark", cot=None, query_word="object", query_words_frames=(),
        keyframes=keyframes, video_frames=keyframes, s_frm=maps, s_vid=vid,
        frame_geometry=TokenGeometry(grid=grid, frame_size=(h, w)),
        video_geometry=TokenGeometry(grid=vid.shape[1:], frame_size=(h, w)),
        use_cot=False, use_soft_prompts=False, backbone="benchmark", layers=(0, 0))


class EncoderCounter:
    """Frames through SAM2's image encoder and the time spent in it (hooks around its forward)."""

    def __init__(self, model):
        self.frames = 0
        self.seconds = 0.0
        self._t0 = 0.0
        self._cuda = next(model.parameters()).is_cuda
        self._hooks = [model.image_encoder.register_forward_pre_hook(self._start),
                       model.image_encoder.register_forward_hook(self._hook)]

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def _start(self, module, args):
        self._sync()
        self._t0 = time.perf_counter()

    def _hook(self, module, args, output):
        self._sync()
        self.seconds += time.perf_counter() - self._t0
        self.frames += int(args[0].shape[0])

    def close(self) -> int:
        for h in self._hooks:
            h.remove()
        return self.frames


def run_ours(backend, clip, grounding) -> tuple[float, int, list, float]:
    """Wall time, frames through the encoder, tracklets, and the time spent in the encoder."""
    backend.clear_cache()
    counter = EncoderCounter(backend.model)
    t0 = time.perf_counter()
    tracklets = generate_candidates(backend, clip, grounding, SegmentConfig(nms_iou=1.0))
    elapsed = time.perf_counter() - t0
    return elapsed, counter.close(), tracklets, counter.seconds


def run_naive(backend, jpg_dir: Path, tracklets) -> tuple[float, int, list[np.ndarray], float]:
    model = backend.model
    counter = EncoderCounter(model)
    results = []
    t0 = time.perf_counter()
    with torch.inference_mode(), backend.autocast():
        for t in tracklets:
            state = model.init_state(video_path=str(jpg_dir))
            model.add_new_points_or_box(state, frame_idx=t.source_keyframe, obj_id=1,
                                        points=np.array([t.point_xy], np.float32),
                                        labels=np.array([1], np.int32))
            masks = np.zeros(t.masks.shape, dtype=bool)
            for reverse in (False, True):
                for f, _, video_res in model.propagate_in_video(state, reverse=reverse):
                    masks[f] = (video_res[0, 0] > 0).cpu().numpy()
            results.append(masks)
    elapsed = time.perf_counter() - t0
    return elapsed, counter.close(), results, counter.seconds


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq", default="bmx-trees")
    p.add_argument("--frames", type=int, default=24, help="first N frames of the clip (default 24)")
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--arch", default="tiny", help="released SAM2 architecture (random weights)")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    if not os.environ.get("STEERSEG_DATA"):
        print(DATA_NOTE, file=sys.stderr)

    clip, jpgs, gt = load_clip(args.seq, args.frames)
    keyframes = np.round(np.linspace(0, clip.num_frames - 1, args.candidates)).astype(np.int64)
    grounding = grounding_on_object(gt, keyframes)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_sam2(Path(tmp) / "sam2", args.image_size, arch=args.arch)
        backend = build_sam2(str(model_dir), args.device)
        # sam2's loader needs a folder holding exactly these frames
        jpg_dir = Path(tmp) / "frames"
        jpg_dir.mkdir()
        for i, src in enumerate(jpgs):
            (jpg_dir / f"{i:05d}.jpg").symlink_to(src)
        # warm-up (first-call allocations) on two frames
        warm = Clip(frames=clip.frames[:2], fps=24.0, source="warm-up")
        generate_candidates(backend, warm, grounding_on_object(gt[:2], np.array([0, 1])), SegmentConfig())

        t_ours, enc_ours, tracklets, t_encode = run_ours(backend, clip, grounding)
        if len(tracklets) != args.candidates:
            raise SystemExit(f"expected {args.candidates} candidates, got {len(tracklets)}")
        t_naive, enc_naive, naive_masks, naive_encode = run_naive(backend, jpg_dir, tracklets)

    agreement = np.mean([iou(t.masks, m) for t, m in zip(tracklets, naive_masks, strict=True)])
    print(f"clip {args.seq}: first {clip.num_frames} frames at {clip.width}x{clip.height}; "
          f"{args.candidates} candidates (keyframes {keyframes.tolist()}), each forward + backward")
    print(f"SAM2 {args.arch} architecture, random weights, image_size {args.image_size}, "
          f"device {backend.device}, torch threads {torch.get_num_threads()}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"{'':28s}{'ours':>12s}{'naive':>12s}")
    print(f"{'wall time (s)':28s}{t_ours:12.1f}{t_naive:12.1f}")
    print(f"{'frames through encoder':28s}{enc_ours:12d}{enc_naive:12d}")
    print(f"{'speed-up (naive / ours)':28s}{t_naive / t_ours:12.2f}x")
    # Breakdown: time inside SAM2's image encoder (measured by hooks on both sides) vs the rest
    # (keyframe masks, memory encoding, tracking; for the naive side also sam2's JPEG loading).
    print(f"{'image encoder (s)':28s}{t_encode:12.1f}{naive_encode:12.1f}")
    print(f"{'everything else (s)':28s}{t_ours - t_encode:12.1f}{t_naive - naive_encode:12.1f}")
    print(f"{'encoder share':28s}{t_encode / t_ours:12.0%}{naive_encode / t_naive:12.0%}")
    print(f"{'ratio if the rest were equal':28s}{(naive_encode + t_ours - t_encode) / t_ours:12.2f}x")
    print(f"mean mask IoU ours vs naive: {agreement:.3f} (different frame resizing; "
          "backward passes see the forward memories only in the naive run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
