"""Peak memory growth and time of our attention capture + rollout vs `output_attentions=True`.

Both are measured against a plain sdpa forward of the same language-model layers, side by side in
one run, on the real Qwen2.5-VL-7B layer shapes (hidden 3584, 28 heads, 4 KV heads, MLP 18944;
random weights; every layer inside the rollout range) at N ≈ 400 / 1,200 / 4,200 tokens.

CPU (fp32): each (variant, N) runs in a fresh subprocess (after a tiny warm-up at N=64 for lazy
imports and kernel set-up): glibc keeps freed memory, so a second large run in one process would
hide its peak, and glibc's mmap threshold is fixed so that freed tensors leave RSS. Peak =
highest RSS sampled every millisecond during the run, minus the RSS just before it. Time = runs
of the three variants interleaved in one more subprocess; the ratio of
medians and of minima is printed (the minimum is the least disturbed by other jobs).

CUDA (``--device cuda``, bf16 by default): one process; peak = torch's peak allocated memory
during the run minus what was allocated before it (the weights); time = CUDA-synchronised
median of ``--reps`` runs. It also times our capture on the plain torch path (``ours_torch``,
the fused Triton kernels switched off) to show what the kernels buy.

    python benchmarks/rollout_memory.py [--layers 4] [--tokens 400 1200 4200] [--device cuda]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "ours", "output_attentions")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __enter__(self) -> PeakSampler:
        self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _build(layers: int, device: str, dtype: str):
    import torch
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLTextModel

    from steerseg_core.grounding import rollout

    torch.manual_seed(0)
    cfg = Qwen2_5_VLConfig(text_config=dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=128, max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}))
    text_cfg = cfg.text_config
    rollout.register_attention()
    with torch.device(device):
        model = Qwen2_5_VLTextModel(text_cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    model.to(getattr(torch, dtype))
    impl = {"plain": "sdpa", "ours": rollout.ATTN_IMPLEMENTATION, "ours_torch": rollout.ATTN_IMPLEMENTATION,
            "output_attentions": "eager"}

    def run(variant: str, n: int) -> None:
        text_cfg._attn_implementation = impl[variant]
        x = (torch.randn(1, n, 3584, device=device) * 0.5).to(getattr(torch, dtype))
        with torch.inference_mode():
            if variant == "plain":
                model(inputs_embeds=x, use_cache=False)
            elif variant.startswith("ours"):
                with rollout.capturing([lay.self_attn for lay in model.layers], fused=variant == "ours") as cap:
                    model(inputs_embeds=x, use_cache=False)
                rollout.rollout_row(cap.ordered(), -1)
            else:
                out = model(inputs_embeds=x, use_cache=False, output_attentions=True)
                rollout.dense_rollout_row(out.attentions, -1)
    return run


def _child(mode: str, n: int, layers: int, reps: int = 1) -> dict:
    """mode: a variant name (memory of that variant) or 'time' (all three, interleaved)."""
    sys.path.insert(0, str(ROOT))
    run = _build(layers, "cpu", "float32")

    if mode == "time":
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for v in VARIANTS:
            run(v, 64)
        for rep in range(reps):
            for v in VARIANTS[rep % 3:] + VARIANTS[:rep % 3]:
                t0 = time.perf_counter()
                run(v, n)
                times[v].append(time.perf_counter() - t0)
        return {"n": n, "time_s": {v: statistics.median(t) for v, t in times.items()},
                "min_s": {v: min(t) for v, t in times.items()}}
    run(mode, 64)  # warm-up: lazy imports and kernel set-up are not the method's memory
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = _rss()
    with PeakSampler() as s:
        run(mode, n)
    return {"variant": mode, "n": n, "growth_mb": (s.peak - base) / 2**20}


def _cuda(args: argparse.Namespace) -> None:
    """All variants in this process: CUDA's allocator reports an exact peak per run."""
    sys.path.insert(0, str(ROOT))
    import torch

    from steerseg_core.grounding import rollout_triton

    run = _build(args.layers, "cuda", args.dtype)
    variants = ("plain", "ours", "ours_torch", "output_attentions")
    print(f"Qwen2.5-VL-7B layer shapes, {args.layers} layers (all in the rollout range), {args.dtype}, "
          f"{torch.cuda.get_device_name()}, torch {torch.__version__}; fused kernels: "
          f"{rollout_triton.triton is not None}; time = median of {args.reps} synchronised runs")
    print(f"{'N':>6} | {'plain MB':>9} {'ms':>7} | {'ours MB':>8} {'ms':>7} {'mem x':>6} {'time x':>6} "
          f"| {'torch-path ms':>13} {'time x':>6} | {'out_attn MB':>11} {'ms':>7} {'mem x':>6} {'time x':>6}")
    for n in args.tokens:
        mem, ms = {}, {}
        for v in variants:
            run(v, 64)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            run(v, n)
            torch.cuda.synchronize()
            mem[v] = (torch.cuda.max_memory_allocated() - base) / 2**20
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.reps):
            for v in variants:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                run(v, n)
                torch.cuda.synchronize()
                times[v].append(time.perf_counter() - t0)
        ms = {v: 1000 * statistics.median(t) for v, t in times.items()}
        p, o, ot, a = variants
        print(f"{n:>6} | {mem[p]:>9.0f} {ms[p]:>7.1f} | {mem[o]:>8.0f} {ms[o]:>7.1f} {mem[o] / mem[p]:>6.2f} "
              f"{ms[o] / ms[p]:>6.2f} | {ms[ot]:>13.1f} {ms[ot] / ms[p]:>6.2f} | {mem[a]:>11.0f} {ms[a]:>7.1f} "
              f"{mem[a] / mem[p]:>6.2f} {ms[a] / ms[p]:>6.2f}", flush=True)


def _spawn(args: argparse.Namespace, mode: str, n: int) -> dict:
    env = dict(os.environ)
    if mode != "time":
        # A fixed mmap threshold turns off glibc's dynamic one: every large tensor is mmapped and
        # returned on free, so RSS follows live memory instead of the allocator's history.
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 17)
    out = subprocess.run([sys.executable, __file__, "--layers", str(args.layers), "--reps", str(args.reps),
                          "--child", mode, str(n)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokens", type=int, nargs="+", default=[400, 1200, 4200])
    ap.add_argument("--reps", type=int, default=3, help="timing repetitions per variant")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", default="bfloat16", help="CUDA only (the CPU runs fp32)")
    ap.add_argument("--only", choices=("memory", "time"), help="CPU: measure only this (the other prints 0)")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]), args.layers, args.reps)))
        return
    if args.device == "cuda":
        _cuda(args)
        return
    print(f"Qwen2.5-VL-7B layer shapes, {args.layers} layers (all in the rollout range), fp32, CPU; "
          f"time = {args.reps} interleaved runs: ratio of medians (ratio of minima)")
    print(f"{'N':>6} | {'plain MB':>9} {'plain s':>8} | {'ours MB':>8} {'ours s':>7} {'mem x':>6} {'time x':>13} "
          f"| {'out_attn MB':>11} {'s':>7} {'mem x':>6} {'time x':>13}")
    for n in args.tokens:
        mem = {v: _spawn(args, v, n)["growth_mb"] if args.only != "time" else 0.0 for v in VARIANTS}
        if args.only == "memory":
            t = m = {v: 0.0 for v in VARIANTS}
        else:
            timed = _spawn(args, "time", n)
            t, m = timed["time_s"], timed["min_s"]
        if args.only:
            mem = {v: x or float("nan") for v, x in mem.items()}
            t = {v: x or float("nan") for v, x in t.items()}
            m = {v: x or float("nan") for v, x in m.items()}
        p, o, a = "plain", "ours", "output_attentions"
        print(f"{n:>6} | {mem[p]:>9.0f} {t[p]:>8.2f} | {mem[o]:>8.0f} {t[o]:>7.2f} {mem[o] / mem[p]:>6.2f} "
              f"{t[o] / t[p]:>6.2f} ({m[o] / m[p]:.2f}) | {mem[a]:>11.0f} {t[a]:>7.2f} {mem[a] / mem[p]:>6.2f} "
              f"{t[a] / t[p]:>6.2f} ({m[a] / m[p]:.2f})", flush=True)


if __name__ == "__main__":
    main()
