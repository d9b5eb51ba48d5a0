"""The app's "See why" section (ui/diagnostics.py): each handler on a run of the tiny backbone over
a real DAVIS clip (masks derived from its ground truth so only the counterfactual re-run needs SAM2)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steerseg_core.config import SteerSegConfig
from steerseg_core.pipeline import SteerSeg
from steerseg_core.types import Clip, SegmentationResult, Tracklet

from .conftest import davis_frames, davis_masks

N = 6


@pytest.fixture(scope="module")
def session(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("diag")
    frames = [np.asarray(Image.open(p).convert("RGB").resize((128, 72)))
              for p in sorted(davis_frames("blackswan").glob("*.jpg"))[:N]]
    clip = Clip(np.stack(frames), 24.0, "blackswan", tuple(f"{i:05d}" for i in range(N)))
    gt = np.stack([np.asarray(Image.open(davis_masks("blackswan") / f"{i:05d}.png").resize((128, 72), Image.NEAREST)) > 0
                   for i in range(N)])
    clip_dir = root / "clip"  # the session keeps the clip's path (the app re-decodes it), not the frames
    clip_dir.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(clip_dir / f"{i:05d}.png")
    gt_files = []
    for i in range(N):
        Image.fromarray(gt[i].astype(np.uint8) * 255).save(root / f"{i:05d}.png")
        gt_files.append(str(root / f"{i:05d}.png"))
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.grounding.frame_max_tokens, cfg.grounding.t_frame, cfg.grounding.t_video = 24, 2, 2
    cfg.grounding.soft_prompts, cfg.grounding.n_prompts = "seed", 4
    cfg.segment.sam2 = str(tiny_models / "sam2")
    g = SteerSeg(cfg).ground(clip, "the black swan", attributes="black, swimming")
    result = SegmentationResult(clip.source, "the black swan", g, (Tracklet(0, (5.0, 5.0), gt.copy()),), 0,
                                cfg.to_dict())
    return {"result": result, "video": str(clip_dir), "clicks": [], "config": cfg, "gt_files": gt_files,
            "root": root}


def _ctx(tmp_path: Path, session: dict):
    from ui.context import AppContext

    return AppContext(config=session["config"], outputs_dir=tmp_path / "outputs")


def test_attribute_view_and_readouts(session, monkeypatch, tmp_path):
    from ui import diagnostics

    ctx = _ctx(tmp_path, session)
    pieces, summary = diagnostics.attribute_view(session)
    scored = [(t, s) for t, s in pieces if s is not None]
    assert [t for t, _ in scored] == ["black", "swimming"] and max(s for _, s in scored) == 1.0
    assert "share (frame)" in summary and "soft prompts" in summary and "your attributes" in summary
    panel, text, path, sess = diagnostics.compare_readouts(ctx, session, None)
    assert panel.ndim == 3 and "contrast" in text.lower() and "DecAF" in text
    data = json.loads(Path(path).read_text())
    assert data["readouts"]["frame"] == 0 and all(v is not None for v in data["readouts"]["points"].values())


def test_ground_truth_upload(session, monkeypatch, tmp_path):
    from ui import diagnostics

    ctx = _ctx(tmp_path, session)
    text, path, sess = diagnostics.score_ground_truth(ctx, session, session["gt_files"])
    assert "J&F 1.000" in text  # the masks are the ground truth itself
    ev = json.loads(Path(path).read_text())["evaluation"]
    assert ev["J&F"] == pytest.approx(1.0) and ev["gt_frames_matched"] == N
    zpath = tmp_path / "gt.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in session["gt_files"]:
            z.write(f, arcname=f"blackswan/{f.rsplit('/', 1)[-1]}")
    text2, _, _ = diagnostics.score_ground_truth(ctx, session, [str(zpath)])
    assert text2 == text


@pytest.mark.slow
def test_counterfactual_handler(session, monkeypatch, tmp_path):
    from ui import diagnostics

    ctx = _ctx(tmp_path, session)
    moved, heatmaps, pieces, summary, path, sess = diagnostics.rerun_with_attributes(ctx, session, "white, on the right")
    assert "chosen tracklet" in moved and len(heatmaps) == 2
    assert json.loads(Path(path).read_text())["attributes_source"] == "user"
    assert [t for t, s in pieces if s is not None] == ["white", "on the right"]


def test_app_soft_prompt_choice_is_never_a_silent_seed(tmp_path):
    from ui import segment
    from ui.context import AppContext

    ctx = AppContext(config=SteerSegConfig(), checkpoints_dir=tmp_path)
    assert segment.default_soft_prompt_choice(ctx) == segment.NO_SOFT_PROMPTS
    assert segment.soft_prompt_choices(ctx)[:2] == [segment.NO_SOFT_PROMPTS, segment.SEED_INIT]
    args = ("", True, True, 0.3, 2, 2, "", 0.7, "")
    assert segment.build_config(ctx, "", segment.NO_SOFT_PROMPTS, *args[1:]).grounding.soft_prompts is None
    assert segment.build_config(ctx, "", segment.SEED_INIT, *args[1:]).grounding.soft_prompts == "seed"
    ctx.config.grounding.soft_prompts = "someone/steerseg-prompts"  # STEERSEG_SOFT_PROMPTS / --soft-prompts
    assert segment.default_soft_prompt_choice(ctx) == segment.CONFIGURED
    cfg = segment.build_config(ctx, "", segment.CONFIGURED, *args[1:])
    assert cfg.grounding.soft_prompts == "someone/steerseg-prompts"
