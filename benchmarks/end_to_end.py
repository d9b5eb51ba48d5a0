"""The whole pipeline at the paper's size on one clip: per-stage time and peak memory, ours against
the peers' way, in one run.

Why: every other figure in this project is from tiny models or a few transformer layers; a user
wants to know whether SteerSeg at its real size fits a card and how long a clip takes. No weights
are reachable here, but the architectures are: ``--size real`` builds Qwen2.5-VL-7B from its
published configuration (hard-coded below) with random bf16 weights, and SAM2 hiera-large from the
``sam2`` package's own config with random weights. Times and memory are real; outputs are not.

Stages (the library's own code: ``Grounder`` and ``generate_candidates`` / ``score_tracklets``,
timed through thin wrappers that change nothing they wrap):

  cot          CoT generation over the T_v frames (forced to exactly ``--cot-tokens`` tokens)
  frame        T_f keyframe rollouts at the ``--frame-tokens`` budget (query generation included)
  video        the T_v video rollout
  sam2_encode  SAM2 image encoder over every frame of the clip
  keyframes    one mask per keyframe from its S_frm argmax point
  nms          mask NMS (forced to keep exactly ``--candidates`` candidates)
  tracking     all candidates tracked forward + backward (batched) — includes the prompted memory
  scoring      s_frm / s_vid correlations, best tracklet

The peers' way in the same process, on the same inputs: grounding with eager attention and
``output_attentions=True`` (all layers' H×N×N attentions returned; rollout of the query row from
them), and one sam2 video-predictor state per candidate (``init_state`` on the JPEG folder, which
re-encodes every frame, forward then reverse propagation). The peers' column leaves out keyframe
masks and NMS (it reuses our candidates' points) and keeps sdpa in the vision tower: both favour
the peers, so the ratio is a lower bound.

Random weights decide how long generation runs and how many candidates survive NMS, so both are
fixed: every generation runs to its token limit (EOS cannot end it early) and NMS keeps exactly
``--candidates`` masks (its survivors first, then the highest predicted IoU).

    # GPU (H100/H200), < 8 min in all: builds the models, warms up, runs ours then the peers
    python benchmarks/end_to_end.py --size real --device cuda --json e2e.json
    # CPU dry run at tiny size (tiny random Qwen2.5-VL, compact SAM2 at 256)
    python benchmarks/end_to_end.py --size tiny --frames 12

The clip is a DAVIS-2016 480p sequence (``--seq``, default bmx-trees, all 80 frames unless
``--frames``) from ``--data``, else ``$STEERSEG_DATA/davis2016`` (the full clips), else the 16-frame
subset committed in tests/data.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # sam2's per-pass progress bars

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from propagation import run_naive  # noqa: E402

import steerseg_core.segment.tracklets as tracklets_mod  # noqa: E402
from steerseg_core.config import GroundingConfig, SegmentConfig  # noqa: E402
from steerseg_core.grounding import prompts  # noqa: E402
from steerseg_core.grounding.grounder import BranchOutput, Grounder  # noqa: E402
from steerseg_core.grounding.lvlm import load_adapter  # noqa: E402
from steerseg_core.grounding.lvlm.qwen import QwenVLAdapter  # noqa: E402
from steerseg_core.grounding.rollout import ATTN_IMPLEMENTATION  # noqa: E402
from steerseg_core.grounding.soft_prompts import SoftPrompts  # noqa: E402
from steerseg_core.segment import build_sam2, generate_candidates, score_tracklets, select_best  # noqa: E402
from steerseg_core.testing.tiny_models import QWEN_CHAT_TEMPLATE, build_qwen_tokenizer, make_tiny_qwen  # noqa: E402
from steerseg_core.testing.tiny_sam2 import make_tiny_sam2  # noqa: E402
from steerseg_core.types import Clip  # noqa: E402

DEFAULT_DATA = Path(os.environ.get("STEERSEG_DATA") or ROOT / "tests" / "data") / "davis2016"
EXPRESSION = "the person riding the bike between the trees"

# Qwen/Qwen2.5-VL-7B-Instruct config.json as published (no hub here). transformers'
# Qwen2_5_VLConfig defaults are the 72B text model and a 3584-wide vision tower, so every value
# that matters is spelled out. Special-token ids come from the tokenizer actually used (the
# published ones are 151652/151653/151655/151656 for vision start/end/image/video): an id is only
# an index, it changes no shape or cost.
QWEN25_VL_7B_TEXT = dict(
    vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=128000,
    rms_norm_eps=1e-6, use_sliding_window=False, sliding_window=32768, max_window_layers=28,
    attention_dropout=0.0, tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
QWEN25_VL_7B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3, out_hidden_size=3584,
    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, hidden_act="silu",
)


# --- models ----------------------------------------------------------------------------------

def build_real_qwen(device: torch.device, workdir: Path, layers: int | None = None) -> QwenVLAdapter:
    """Qwen2.5-VL-7B architecture, random bf16 weights (``fill_random``), built directly on
    ``device`` with transformers' own initialisation switched off. The tokenizer is the
    project's small byte-level BPE trained on the prompts (no Qwen tokenizer is reachable): the
    prompts tokenise to a similar number of tokens, and the visual tokens — most of every
    sequence — are exactly the real model's. ``layers`` keeps only that many decoder layers (every
    width unchanged): a dry run of the real-size code path on a small machine."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = build_qwen_tokenizer(workdir / "tokenizer")
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    depth = dict(num_hidden_layers=layers, max_window_layers=layers) if layers else {}
    text = dict(QWEN25_VL_7B_TEXT, **depth, bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    config = Qwen2_5_VLConfig(text_config=text, vision_config=QWEN25_VL_7B_VISION, **ids)
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                                    video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    from transformers.initialization import no_init_weights

    with device, no_init_weights():  # the library's init of 8 B parameters takes minutes on a CPU
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, attn_implementation="sdpa",
                                                                dtype=torch.bfloat16)
    fill_random(model)
    return QwenVLAdapter(model.eval(), processor, name="Qwen2.5-VL-7B architecture (random weights)",
                         is_tiny=True)


def fill_random(model: torch.nn.Module, std: float = 0.02, seed: int = 0) -> None:
    """Random weights in seconds: every matrix is filled from one block of N(0, std²) samples
    (a prime length, so no two rows line up), norms get weight 1 and bias 0, other vectors 0.
    Buffers (rotary frequencies) were computed by the constructors and are kept."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    block = torch.randn(1_000_003, generator=gen, device=device) * std
    with torch.no_grad():
        for module in model.modules():
            is_norm = "norm" in type(module).__name__.lower()
            for name, p in module.named_parameters(recurse=False):
                if p.dim() >= 2:
                    flat = p.view(-1)
                    for start in range(0, flat.numel(), block.numel()):
                        part = flat[start:start + block.numel()]
                        part.copy_(block[: part.numel()])
                else:
                    p.fill_(1.0 if is_norm and name == "weight" else 0.0)


def build_models(args: argparse.Namespace, workdir: Path):
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.size == "real":
        adapter = build_real_qwen(device, workdir, args.lvlm_layers)
    else:
        adapter = load_adapter(str(make_tiny_qwen(workdir / "qwen2_5_vl")), str(device), "float32")
    sam_dir = make_tiny_sam2(workdir / "sam2", args.sam2_image_size, arch=args.sam2_arch)
    backend = build_sam2(str(sam_dir), str(device))
    return device, adapter, backend


# --- measuring -------------------------------------------------------------------------------

class Stages:
    """Time and peak memory of named stages (CUDA: peak allocated during the stage, weights
    included; CPU: none per stage, the process's peak RSS at the end)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.rows: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize(self.device)
            row = self.rows.setdefault(name, {"seconds": 0.0, "peak_gb": 0.0, "calls": 0})
            row["seconds"] += time.perf_counter() - t0
            row["calls"] += 1
            if self.cuda:
                row["peak_gb"] = max(row["peak_gb"], torch.cuda.max_memory_allocated(self.device) / 2**30)

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*a, **kw):
            with self.stage(name):
                return fn(*a, **kw)
        return timed

    def total(self) -> float:
        return sum(r["seconds"] for r in self.rows.values())

    def peak(self) -> float:
        return max((r["peak_gb"] for r in self.rows.values()), default=0.0)


@contextlib.contextmanager
def patched(obj, name: str, value) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def fixed_generation(adapter) -> Callable:
    """``adapter.generate`` that always runs to ``max_new_tokens`` (EOS cannot stop it early)."""
    real = adapter.generate
    gen_cfg = adapter.model.generation_config

    def generate(prepared, max_new_tokens, soft=None):
        old = gen_cfg.min_new_tokens
        gen_cfg.min_new_tokens = max_new_tokens
        try:
            return real(prepared, max_new_tokens, soft)
        finally:
            gen_cfg.min_new_tokens = old
    return generate


def fixed_count_nms(count: int) -> Callable:
    """The real mask NMS, then exactly ``count`` survivors: its own first, topped up (or cut) by
    the decoder's predicted IoU."""
    real = tracklets_mod.mask_nms

    def nms(masks, scores, iou_threshold=0.7):
        kept = list(real(masks, scores, iou_threshold))
        if len(masks) < count:
            raise SystemExit(f"only {len(masks)} keyframe masks for {count} forced candidates")
        rest = [int(i) for i in np.argsort(-np.asarray(scores)) if int(i) not in kept]
        return (kept + rest)[:count]
    return nms


# --- the peers' attention: eager, output_attentions ---------------------------------------------

@contextlib.contextmanager
def eager_attention(adapter) -> Iterator[None]:
    """The language model's attention as peers run it (eager, attentions returned)."""
    configs = {id(c): c for c in [adapter.text_config] + [getattr(layer.self_attn, "config", None)
                                                          for layer in adapter.decoder_layers()] if c is not None}
    for c in configs.values():
        c._attn_implementation = "eager"
    try:
        yield
    finally:
        for c in configs.values():
            c._attn_implementation = ATTN_IMPLEMENTATION


def eager_branch_rollout(grounder: Grounder, prepared, soft, tokens=None) -> BranchOutput:
    """``Grounder.branch_rollout`` the peers' way: a forward with ``output_attentions=True``
    returns every layer's (B, H, N, N) attention; the query row is rolled out from them."""
    adapter = grounder.adapter
    n_soft = soft.shape[0] if soft is not None else 0
    prepared = adapter.splice_placeholders(prepared, n_soft)
    words: list[str] = []
    if tokens is None:
        new, words = adapter.generate(prepared, grounder.config.query_max_new_tokens, soft)
        tokens = new[:, :1]
    full = prepared.with_appended_tokens(tokens)
    with torch.inference_mode(), adapter.soft_prompts_active(full, soft):
        out = adapter.model(**full.model_inputs, use_cache=False, logits_to_keep=1, output_attentions=True)
    lo, hi = grounder.layers
    attn = out.attentions
    b, n = attn[hi].shape[0], attn[hi].shape[-1]
    row = torch.zeros(b, n, dtype=torch.float32, device=attn[hi].device)
    row[:, -1] = 1.0
    pos = prepared.visual_positions
    for layer in range(hi, lo - 1, -1):  # top layer leftmost: row · Ã_L · Ã_(L−1) ⋯
        a = 0.5 * attn[layer].float().mean(dim=1)
        row = torch.einsum("bn,bnm->bm", row, a) + 0.5 * row
    # per layer (low → high): the raw head-mean attention row of the query on the visual tokens
    mass = [float(attn[layer][:, :, -1].float().mean(dim=1)[:, pos].sum(dim=-1).mean()) for layer in range(lo, hi + 1)]
    t, h, w = prepared.visual_grid
    maps = row[:, pos].reshape(-1, t, h, w)
    return BranchOutput(maps, tokens, [prompts.clean_query_word(x) for x in words], prepared.geometry, mass)


# --- one run ----------------------------------------------------------------------------------

def load_clip(data: Path, seq: str, frames: int | None) -> tuple[Clip, list[Path]]:
    jpgs = sorted((data / "JPEGImages" / "480p" / seq).glob("*.jpg"))
    if not jpgs:
        raise SystemExit(f"no frames in {data / 'JPEGImages' / '480p' / seq} (set --data or STEERSEG_DATA)")
    jpgs = jpgs[:frames] if frames else jpgs
    rgb = np.stack([np.array(Image.open(p).convert("RGB")) for p in jpgs])
    return Clip(frames=rgb, fps=24.0, source=str(jpgs[0].parent), frame_names=tuple(p.stem for p in jpgs)), jpgs


def run_ours(grounder: Grounder, backend, clip: Clip, seg: SegmentConfig, candidates: int,
             stages: Stages) -> tuple[list, object]:
    """The pipeline's own calls in the pipeline's order (``SteerSeg.ground`` → ``segment``)."""
    g = grounder
    with patched(g, "cot", stages.wrap("cot", g.cot)), \
         patched(g, "frame_maps", stages.wrap("frame", g.frame_maps)), \
         patched(g, "video_maps", stages.wrap("video", g.video_maps)):
        grounding = g.ground(clip, EXPRESSION)
    with patched(backend, "encode", stages.wrap("sam2_encode", backend.encode)), \
         patched(tracklets_mod, "segment_keyframes", stages.wrap("keyframes", tracklets_mod.segment_keyframes)), \
         patched(tracklets_mod, "mask_nms", stages.wrap("nms", fixed_count_nms(candidates))), \
         patched(tracklets_mod, "track_candidates", stages.wrap("tracking", tracklets_mod.track_candidates)):
        backend.clear_cache()
        tracklets = generate_candidates(backend, clip, grounding, seg)
    with stages.stage("scoring"):
        scored = score_tracklets(tracklets, grounding, seg.alpha)
        select_best(scored)
    if len(scored) != candidates:
        raise SystemExit(f"expected {candidates} candidates, got {len(scored)}")
    return scored, grounding


def run_peers(grounder: Grounder, backend, clip: Clip, jpg_dir: Path, ours: list, stages: Stages) -> None:
    """Same grounding calls with eager ``output_attentions``; one sam2 state per candidate."""
    g = grounder
    eager = lambda prepared, soft, tokens=None: eager_branch_rollout(g, prepared, soft, tokens)  # noqa: E731
    with eager_attention(g.adapter), patched(g, "branch_rollout", eager), \
         patched(g, "cot", stages.wrap("cot", g.cot)), \
         patched(g, "frame_maps", stages.wrap("frame", g.frame_maps)), \
         patched(g, "video_maps", stages.wrap("video", g.video_maps)):
        g.ground(clip, EXPRESSION)
    backend.clear_cache()
    with stages.stage("tracking (one state per candidate, own encoding)"):
        run_naive(backend, jpg_dir, ours)


def settings(args: argparse.Namespace) -> dict:
    tiny = args.size == "tiny"
    return {"frame_tokens": args.frame_tokens or (64 if tiny else 1024),
            "t_frame": args.t_frame or (8 if tiny else 16), "t_video": args.t_video or (4 if tiny else 8)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=("tiny", "real"), default="tiny",
                   help="real: Qwen2.5-VL-7B + SAM2 hiera-large architectures (random weights, GPU)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="DAVIS-2016 folder (JPEGImages/480p/<seq>); default $STEERSEG_DATA/davis2016")
    p.add_argument("--seq", default="bmx-trees")
    p.add_argument("--frames", type=int, help="first N frames (default: the whole clip)")
    p.add_argument("--candidates", type=int, default=4, help="candidates kept by NMS (forced)")
    p.add_argument("--cot-tokens", type=int, default=128, help="CoT length (forced)")
    p.add_argument("--frame-tokens", type=int, help="frame token budget (default 1024 real, 64 tiny)")
    p.add_argument("--t-frame", type=int, help="T_f (default 16 real, 8 tiny)")
    p.add_argument("--t-video", type=int, help="T_v (default 8 real, 4 tiny)")
    p.add_argument("--sam2-arch", help="SAM2 architecture (default large real, compact tiny)")
    p.add_argument("--sam2-image-size", type=int, help="SAM2 input size (default 1024 real, 256 tiny)")
    p.add_argument("--lvlm-layers", type=int, help="real: keep only N decoder layers (a CPU dry run of the "
                                                   "real-size code path; not a measurement)")
    p.add_argument("--no-peers", action="store_true", help="only our way")
    p.add_argument("--json", type=Path, help="write the measurements here")
    args = p.parse_args()
    args.sam2_arch = args.sam2_arch or ("large" if args.size == "real" else "compact")
    args.sam2_image_size = args.sam2_image_size or (1024 if args.size == "real" else 256)
    s = settings(args)

    clip, jpgs = load_clip(args.data, args.seq, args.frames)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        device, adapter, backend = build_models(args, tmp)
        build_s = time.perf_counter() - t0
        gcfg = GroundingConfig(t_frame=s["t_frame"], t_video=s["t_video"], frame_max_tokens=s["frame_tokens"],
                               cot_max_new_tokens=args.cot_tokens)
        grounder = Grounder(adapter, gcfg, SoftPrompts.from_seed(adapter, gcfg.n_prompts))
        seg = SegmentConfig()
        jpg_dir = tmp / "frames"  # sam2's loader reads a folder of exactly these frames
        jpg_dir.mkdir()
        for i, src in enumerate(jpgs):
            (jpg_dir / f"{i:05d}.jpg").symlink_to(src.resolve())
        with patched(adapter, "generate", fixed_generation(adapter)):
            # warm-up: first-call allocations, kernel compilation, cuBLAS/cuDNN set-up
            warm = Clip(frames=clip.frames[:4], fps=24.0, source="warm-up")
            wg = Grounder(adapter, GroundingConfig(t_frame=4, t_video=4, frame_max_tokens=s["frame_tokens"],
                                                   cot_max_new_tokens=4), grounder.soft_prompts)
            warm_tr, _ = run_ours(wg, backend, warm, seg, min(args.candidates, 4), Stages(device))
            if not args.no_peers:
                warm_dir = tmp / "warm"
                warm_dir.mkdir()
                for i, src in enumerate(jpgs[:4]):
                    (warm_dir / f"{i:05d}.jpg").symlink_to(src.resolve())
                run_peers(wg, backend, warm, warm_dir, warm_tr[:1], Stages(device))
            ours = Stages(device)
            tracklets, grounding = run_ours(grounder, backend, clip, seg, args.candidates, ours)
            peers = Stages(device)
            if not args.no_peers:
                run_peers(grounder, backend, clip, jpg_dir, tracklets, peers)
    wall = time.perf_counter() - t_start

    ftok = int(np.prod(grounding.frame_geometry.grid))
    vtok = int(np.prod(grounding.video_geometry.grid))
    info = {
        "size": args.size, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "sam2_arch": args.sam2_arch, "sam2_image_size": args.sam2_image_size,
        "lvlm_params_b": sum(p.numel() for p in adapter.model.parameters()) / 1e9,
        "dtype": str(adapter.dtype), "clip": f"{args.seq} {clip.num_frames} frames {clip.width}x{clip.height}",
        "t_frame": s["t_frame"], "t_video": s["t_video"], "frame_tokens_budget": s["frame_tokens"],
        "lvlm_layers": adapter.num_layers, "frame_grid_tokens": ftok, "video_grid_tokens_per_slot": vtok, "cot_tokens": args.cot_tokens,
        "candidates": args.candidates, "torch_threads": torch.get_num_threads(),
        "load_average_end": os.getloadavg()[0], "build_models_s": build_s, "script_wall_s": wall,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "ours": ours.rows, "peers": peers.rows,
        "ours_total_s": ours.total(), "peers_total_s": peers.total(),
        "ours_peak_gb": ours.peak(), "peers_peak_gb": peers.peak(),
    }
    print_table(info)
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return 0


def print_table(info: dict) -> None:
    print(f"{info['size']} size on {info['gpu'] or info['host']}; torch {info['torch']}, transformers "
          f"{info['transformers']}; LVLM {info['lvlm_params_b']:.2f} B params {info['dtype']}; SAM2 "
          f"{info['sam2_arch']} @ {info['sam2_image_size']}")
    print(f"clip {info['clip']}; T_f {info['t_frame']}, T_v {info['t_video']}, frame budget "
          f"{info['frame_tokens_budget']} ({info['frame_grid_tokens']} visual tokens per keyframe); CoT "
          f"{info['cot_tokens']} tokens; {info['candidates']} candidates; load average {info['load_average_end']:.1f}")
    cuda = info["gpu"] is not None
    print(f"\n| stage | ours s | {'ours peak GB | ' if cuda else ''}peers s | {'peers peak GB |' if cuda else ''}")
    print(f"|---|---:|{'---:|' if cuda else ''}---:|{'---:|' if cuda else ''}")
    for name in dict.fromkeys([*info["ours"], *info["peers"]]):
        o, q = info["ours"].get(name), info["peers"].get(name)
        cells = [f"{o['seconds']:.2f}" if o else "–"]
        if cuda:
            cells.append(f"{o['peak_gb']:.1f}" if o else "–")
        cells.append(f"{q['seconds']:.2f}" if q else "–")
        if cuda:
            cells.append(f"{q['peak_gb']:.1f}" if q else "–")
        print(f"| {name} | " + " | ".join(cells) + " |")
    tail = [f"{info['ours_total_s']:.2f}"] + ([f"{info['ours_peak_gb']:.1f}"] if cuda else [])
    tail += [f"{info['peers_total_s']:.2f}"] + ([f"{info['peers_peak_gb']:.1f}"] if cuda else [])
    print("| **total** | " + " | ".join(tail) + " |")
    if info["peers_total_s"]:
        print(f"\nspeed-up (peers / ours): {info['peers_total_s'] / info['ours_total_s']:.2f}x; "
              f"models built in {info['build_models_s']:.0f} s; whole script {info['script_wall_s']:.0f} s; "
              f"peak RSS {info['peak_rss_gb']:.1f} GB")


if __name__ == "__main__":
    raise SystemExit(main())
