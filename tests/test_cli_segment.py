"""`python -m steerseg_core segment` end to end on a real DAVIS clip with the tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from steerseg_core.export import validate_result_json

from .conftest import DAVIS_FIXTURE_FRAMES as N
from .conftest import ROOT, davis_frames


def _run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "steerseg_core", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)


@pytest.mark.slow
def test_segment_cli_on_real_clip(tiny_models, tmp_path):
    out = tmp_path / "out"
    r = _run("segment", str(davis_frames("blackswan")), "the black swan on the water", "--out", str(out),
             "--backbone", str(tiny_models / "qwen2_5_vl"), "--sam2", str(tiny_models / "sam2"),
             "--t-frame", "4", "--t-video", "4", "--frame-tokens", "24", "--max-side", "160")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "chosen #" in r.stdout
    masks = sorted((out / "masks").glob("*.png"))
    assert [p.stem for p in masks] == [f"{i:05d}" for i in range(N)]  # DAVIS frame names kept
    first = Image.open(masks[0])
    assert first.mode == "P" and first.size == (160, 90)  # the size the clip was segmented at
    assert (out / "masks.zip").stat().st_size > 0
    with av.open(str(out / "overlay.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == N and frames[0].shape[:2] == (90, 160)
    data = json.loads((out / "result.json").read_text())
    validate_result_json(data)
    assert data["expression"] == "the black swan on the water"
    assert len(data["keyframes"]) == 4 and 0 <= data["chosen"] < len(data["tracklets"])
    scores = [t["s"] for t in data["tracklets"]]
    assert data["tracklets"][data["chosen"]]["s"] == max(s for s in scores if s is not None)
    rle = json.loads((out / "masks_coco_rle.json").read_text())
    assert rle["format"] == "coco_rle" and rle["num_frames"] == N and len(rle["frames"]) == N
    from steerseg_core.export import coco_rle_to_mask

    for entry, png in zip(rle["frames"], masks, strict=True):  # the RLE file says what the PNGs say
        assert np.array_equal(coco_rle_to_mask(entry["segmentation"]), np.array(Image.open(png)) > 0)
    labels = np.unique(np.concatenate([np.unique(np.array(Image.open(p))) for p in masks]))
    assert set(labels.tolist()) <= {0, 1}


def test_segment_cli_bad_input_one_line_error(tmp_path, tiny_models):
    bad = tmp_path / "notavideo.mp4"
    bad.write_text("hello")
    r = _run("segment", str(bad), "the dog", "--out", str(tmp_path / "o"),
             "--backbone", str(tiny_models / "qwen2_5_vl"), "--sam2", str(tiny_models / "sam2"))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "notavideo.mp4" in err[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()

    r = _run("segment", str(davis_frames("blackswan")), "   ", "--out", str(tmp_path / "o2"))
    assert r.returncode == 2 and "expression" in r.stderr.lower() and "Traceback" not in r.stderr

    r = _run("segment", str(davis_frames("blackswan")), "the swan", "--out", str(tmp_path / "o3"),
             "--backbone", str(tmp_path / "missing_model"), "--sam2", str(tiny_models / "sam2"))
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_segment_help():
    r = _run("segment", "--help")
    assert r.returncode == 0
    for flag in ("--backbone", "--sam2", "--soft-prompts", "--device", "--alpha", "--t-frame", "--t-video",
                 "--layers", "--no-cot", "--no-soft-prompts", "--out"):
        assert flag in r.stdout


def test_segment_cli_bad_layers_and_sam2_are_one_line_errors(tmp_path, tiny_models):
    """Probe set II: ``--layers 5-999`` ended in a raw ValueError, and a bad ``--sam2`` was reported
    only after the whole grounding stage; both are one-line errors now, the SAM2 one first."""
    common = ["segment", str(davis_frames("blackswan")), "the swan", "--backbone", str(tiny_models / "qwen2_5_vl"),
              "--t-frame", "2", "--t-video", "2", "--frame-tokens", "8", "--max-side", "64"]
    r = _run(*common, "--out", str(tmp_path / "a"), "--sam2", str(tiny_models / "sam2"), "--layers", "5-999")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "rollout layers 5-999 are outside the model's layers" in r.stderr
    r = _run(*common, "--out", str(tmp_path / "b"), "--sam2", "enormous")
    assert r.returncode == 2 and "unknown SAM2 model 'enormous'" in r.stderr and "Traceback" not in r.stderr
    assert "CoT" not in r.stderr and not (tmp_path / "b").exists()
