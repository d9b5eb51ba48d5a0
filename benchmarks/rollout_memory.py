"""Peak memory growth and time of our attention capture + rollout vs `output_attentions=True`.

Both are measured against a plain sdpa forward of the same language-model layers, side by side in
one run, on the real Qwen2.5-VL-7B layer shapes (hidden 3584, 28 heads, 4 KV heads, MLP 18944;
random weights, fp32, CPU; every layer inside the rollout range) at N ≈ 400 / 1,200 / 4,200 tokens.

Each (variant, N) runs in a fresh subprocess (after a tiny warm-up at N=64 for lazy imports and
kernel set-up): glibc keeps freed memory, so a second large run in one process would hide its peak. Peak = highest RSS sampled every millisecond during the run, minus the RSS
just before it. Time = a second, warm run in the same subprocess.

    python benchmarks/rollout_memory.py [--layers 4] [--tokens 400 1200 4200]
"""

from __future__ import annotations

import argparse
import ctypes
import json
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


def _child(variant: str, n: int, layers: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLTextModel

    from steerseg_core import rollout

    torch.manual_seed(0)
    cfg = Qwen2_5_VLConfig(text_config=dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=128, max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}))
    text_cfg = cfg.text_config
    rollout.register_attention()
    text_cfg._attn_implementation = {"plain": "sdpa", "ours": rollout.ATTN_IMPLEMENTATION,
                                     "output_attentions": "eager"}[variant]
    with torch.device("cpu"):
        model = Qwen2_5_VLTextModel(text_cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    def run(n: int = n) -> None:
        x = torch.randn(1, n, 3584) * 0.5
        with torch.inference_mode():
            if variant == "plain":
                model(inputs_embeds=x, use_cache=False)
            elif variant == "ours":
                with rollout.capturing([lay.self_attn for lay in model.layers]) as cap:
                    model(inputs_embeds=x, use_cache=False)
                rollout.rollout_row(cap.ordered(), -1)
            else:
                out = model(inputs_embeds=x, use_cache=False, output_attentions=True)
                rollout.dense_rollout_row(out.attentions, -1)

    run(64)  # warm-up: lazy imports and kernel set-up are not the method's memory
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = _rss()
    with PeakSampler() as s:
        run()
    growth = s.peak - base
    t0 = time.perf_counter()
    run()
    return {"variant": variant, "n": n, "growth_mb": growth / 2**20, "time_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokens", type=int, nargs="+", default=[400, 1200, 4200])
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child[0], int(args.child[1]), args.layers)))
        return
    print(f"Qwen2.5-VL-7B layer shapes, {args.layers} layers (all in the rollout range), fp32, CPU")
    print(f"{'N':>6} | {'plain MB':>9} {'plain s':>8} | {'ours MB':>8} {'ours s':>7} {'mem x':>6} {'time x':>6} "
          f"| {'out_attn MB':>11} {'s':>7} {'mem x':>6} {'time x':>6}")
    for n in args.tokens:
        res = {}
        for v in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--layers", str(args.layers), "--child", v, str(n)],
                                 capture_output=True, text=True, check=True)
            res[v] = json.loads(out.stdout.strip().splitlines()[-1])
        p, o, a = res["plain"], res["ours"], res["output_attentions"]
        print(f"{n:>6} | {p['growth_mb']:>9.0f} {p['time_s']:>8.2f} | {o['growth_mb']:>8.0f} {o['time_s']:>7.2f} "
              f"{o['growth_mb'] / p['growth_mb']:>6.2f} {o['time_s'] / p['time_s']:>6.2f} | "
              f"{a['growth_mb']:>11.0f} {a['time_s']:>7.2f} {a['growth_mb'] / p['growth_mb']:>6.2f} "
              f"{a['time_s'] / p['time_s']:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
