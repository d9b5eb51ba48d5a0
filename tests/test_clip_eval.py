"""Ground-truth mode (``segment --gt-masks``): J&F equal to ``eval-masks --mode all-frames`` and the
rollout–mask alignments equal to a direct Pearson computation, on a real DAVIS clip with the tiny
backbone (masks derived from the ground truth, so no SAM2 is needed for the library test)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from steerseg_core.cli import main as cli_main
from steerseg_core.config import GroundingConfig
from steerseg_core.errors import InputError
from steerseg_core.eval.clip_eval import evaluate_against_gt
from steerseg_core.export import validate_result_json, write_palette_pngs, write_result_json
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.types import Clip, SegmentationResult, Tracklet

from .conftest import davis_frames, davis_masks

SIZE = (160, 90)  # (W, H) the clip is segmented at
N = 10


def _small_clip_and_gt(tmp_path, n: int = N) -> tuple[Clip, object, object]:
    """The first n frames of DAVIS blackswan at 160x90 as a frame folder, and its GT resized (nearest)
    as 0/255 PNGs named like the frames."""
    frames_dir, gt_dir = tmp_path / "frames", tmp_path / "gt"
    frames_dir.mkdir()
    gt_dir.mkdir()
    for p in sorted(davis_frames("blackswan").glob("*.jpg"))[:n]:
        Image.open(p).resize(SIZE, Image.BILINEAR).save(frames_dir / p.name, quality=95)
        m = np.array(Image.open(davis_masks("blackswan") / f"{p.stem}.png"))
        Image.fromarray(((m > 0) * 255).astype(np.uint8)).resize(SIZE, Image.NEAREST).save(gt_dir / f"{p.stem}.png")
    from steerseg_core.video import load_clip

    return load_clip(frames_dir), frames_dir, gt_dir


def _area_resize(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Exact area average onto the token grid by an independent route: repeat every pixel rows x cols
    times, then average (H, W) blocks (cell i covers upsampled rows i*H .. (i+1)*H)."""
    rows, cols = grid
    h, w = mask.shape
    up = np.repeat(np.repeat(mask.astype(np.float64), rows, axis=0), cols, axis=1)
    return up.reshape(rows, h, cols, w).mean(axis=(1, 3))


def test_gt_mode_matches_eval_masks_and_direct_pearson(tiny_models, tmp_path, capsys):
    clip, _, gt_dir = _small_clip_and_gt(tmp_path)
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=40, t_frame=4, t_video=4,
                          use_cot=False)
    g = Grounder.from_config(cfg).ground(clip, "the black swan")
    gt = np.stack([np.array(Image.open(gt_dir / f"{n}.png")) > 0 for n in clip.names()])
    # A prediction that differs from the GT: the GT shifted by 6 px, empty on the last frame.
    pred = np.roll(gt, 6, axis=2)
    pred[-1] = False
    result = SegmentationResult(clip.source, "the black swan", g, (Tracklet(0, (1.0, 1.0), pred),), 0, {})
    ev = evaluate_against_gt(result, clip, gt_dir)

    write_palette_pngs(pred, tmp_path / "out" / "masks", list(clip.names()))
    assert cli_main(["eval-masks", str(gt_dir), str(tmp_path / "out" / "masks"), "--mode", "all-frames",
                     "--json", str(tmp_path / "report.json"), "--quiet"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert 0.2 < ev["J&F"] < 0.99
    for ours, theirs in (("J&F", "J&F-Mean"), ("J", "J-Mean"), ("F", "F-Mean")):
        assert abs(ev[ours] - report[theirs]) <= 1e-9

    def direct(maps: np.ndarray, frames: np.ndarray) -> float:
        vals = [np.corrcoef(m.reshape(-1), _area_resize(gt[t], m.shape).reshape(-1))[0, 1]
                for m, t in zip(maps, frames, strict=True)]
        return float(np.mean(vals))

    assert g.frame_geometry.content_box is None
    assert abs(ev["alignment_frame"] - direct(g.s_frm, g.keyframes)) < 1e-5
    assert abs(ev["alignment_video"] - direct(g.s_vid, g.video_frames)) < 1e-5
    assert ev["gt_frames"] == ev["gt_frames_matched"] == N

    result = SegmentationResult(clip.source, "x", g, result.tracklets, 0, {}, diagnostics={"evaluation": ev})
    data = json.loads(write_result_json(result, tmp_path / "result.json").read_text())
    validate_result_json(data)
    assert data["evaluation"]["J&F"] == pytest.approx(ev["J&F"], abs=1e-12)


def test_gt_mode_refuses_other_sizes_and_names(tiny_models, tmp_path):
    clip, _, gt_dir = _small_clip_and_gt(tmp_path, n=3)
    g_cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=24, t_frame=2, t_video=2,
                            use_cot=False)
    g = Grounder.from_config(g_cfg).ground(clip, "the swan")
    result = SegmentationResult(clip.source, "x", g, (Tracklet(0, (1.0, 1.0), np.zeros((3, 90, 160), bool)),), 0, {})
    big = tmp_path / "big"
    big.mkdir()
    Image.fromarray(np.zeros((480, 854), np.uint8)).save(big / "00000.png")
    with pytest.raises(InputError, match="854x480 but the clip was segmented at 160x90"):
        evaluate_against_gt(result, clip, big)
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(np.zeros((90, 160), np.uint8)).save(other / "frame_a.png")
    with pytest.raises(InputError, match="no ground-truth frame name matches"):
        evaluate_against_gt(result, clip, other)


@pytest.mark.slow
def test_segment_cli_gt_masks(tiny_models, tmp_path, capsys):
    """`segment --gt-masks --compare-readouts` end to end: result.json's evaluation equals eval-masks
    on OUT/masks, a run without a checkpoint says it had no soft prompts, the readout panel is written."""
    _, frames_dir, gt_dir = _small_clip_and_gt(tmp_path, n=6)
    out = tmp_path / "out"
    assert cli_main(["segment", str(frames_dir), "the black swan", "--out", str(out), "--quiet",
                     "--backbone", str(tiny_models / "qwen2_5_vl"), "--sam2", str(tiny_models / "sam2"),
                     "--t-frame", "2", "--t-video", "2", "--frame-tokens", "24", "--gt-masks", str(gt_dir),
                     "--compare-readouts"]) == 0
    printed = capsys.readouterr().out
    assert "soft prompts: none - no trained checkpoint given" in printed and "ground truth: J&F" in printed
    data = json.loads((out / "result.json").read_text())
    validate_result_json(data)
    assert data["soft_prompts"] == {"source": "none", "trained": False, "steps": None, "trained_with_cot": None}
    assert data["use_soft_prompts"] is False
    # --compare-readouts: the panel and the five argmax points (the soft-prompt ones absent here)
    assert data["readouts"]["frame"] == data["tracklets"][data["chosen"]]["source_keyframe"]
    points = data["readouts"]["points"]
    assert points["soft_prompts"] is None and points["both"] is None
    assert all(len(points[k]) == 2 for k in ("raw", "contrast", "cot"))
    assert Image.open(out / "readouts.png").size[1] == 240 + 22 and "readout          raw" in printed
    assert cli_main(["eval-masks", str(gt_dir), str(out / "masks"), "--mode", "all-frames",
                     "--json", str(tmp_path / "r.json"), "--quiet"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    for ours, theirs in (("J&F", "J&F-Mean"), ("J", "J-Mean"), ("F", "F-Mean")):
        assert abs(data["evaluation"][ours] - report[theirs]) <= 1e-9
