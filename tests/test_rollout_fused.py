"""The fused Triton kernels of the rollout capture, checked on the CPU through Triton's interpreter.

On a GPU the capture uses ``rollout_triton.head_mean_rows``; CI has no GPU, but Triton's
interpreter (``TRITON_INTERPRET=1``, read when the kernels are defined, hence a subprocess) runs
the same kernel code on CPU tensors. It checks fp32 inputs (the interpreter cannot emulate bf16
dot products; the bf16 path is checked on a real GPU in test_gpu.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import numpy as np
import torch
from steerseg_core.grounding import rollout, rollout_triton
from steerseg_core.grounding.lvlm import load_adapter

out = {"kernel": [], "calls": 0}
torch.manual_seed(0)
for b, h, kvh, n, d in [(2, 4, 2, 37, 8), (1, 6, 2, 70, 16), (1, 7, 1, 45, 24), (1, 4, 4, 130, 32)]:
    q = (torch.randn(b, n, h, d) * 2).transpose(1, 2)  # the strides a model's attention produces
    k = (torch.randn(b, n, kvh, d) * 2).transpose(1, 2)
    for r0, r1 in [(0, n), (5, n - 3), (n - 1, n)]:
        fused = rollout_triton.head_mean_rows(q, k, d ** -0.5, r0, r1)
        ref = rollout._rows(q, k, None, d ** -0.5, r0, r1)
        out["kernel"].append([list(fused.shape) == list(ref.shape), float((fused - ref).abs().max())])
    half = rollout_triton.head_mean_rows(q, k, d ** -0.5, 0, n, torch.float16)  # a 16-bit model's storage
    ref = rollout._rows(q, k, None, d ** -0.5, 0, n)
    out["half"] = [str(half.dtype), float(((half.float() - ref).abs() / ref.clamp_min(1e-3)).max())]

adapter = load_adapter(sys.argv[1])
real = rollout_triton.head_mean_rows
def counted(*a, **kw):
    out["calls"] += 1
    return real(*a, **kw)
rollout_triton.head_mean_rows = counted
frames = np.random.default_rng(0).integers(0, 255, (4, 90, 140, 3), dtype=np.uint8)
prepared = adapter.build_video(frames, "Expression: the dog on the left", 24, fps=4.0)
lo, hi = 2, adapter.num_layers - 1
with torch.no_grad():
    with rollout.capturing(adapter.attention_modules(lo, hi), 16) as cap:
        adapter.forward(prepared)
    fused_row = rollout.rollout_row(cap.ordered()).row
    with rollout.capturing(adapter.attention_modules(lo, hi), 16, fused=False) as cap:
        adapter.forward(prepared)
    torch_row = rollout.rollout_row(cap.ordered()).row
out["rollout"] = float((fused_row - torch_row).abs().max())
out["row_sum"] = float((fused_row.sum(-1) - 1).abs().max())
print(json.dumps(out))
"""


def test_fused_kernels_match_the_torch_path(tiny_models):
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_models / "qwen2_5_vl")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(res["kernel"]) == 12
    for same_shape, err in res["kernel"]:
        assert same_shape and err < 1e-6, res["kernel"]
    assert res["half"][0] == "torch.float16" and res["half"][1] < 1e-3, res["half"]
    assert res["calls"] > 0  # the capture took the fused path
    assert res["rollout"] < 1e-6 and res["row_sum"] < 1e-5, res
