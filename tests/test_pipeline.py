"""SteerSeg as one call and as resumable stages (choose, rescore, refine without the LVLM)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from steerseg_core import pipeline
from steerseg_core.config import LimitsConfig, SteerSegConfig
from steerseg_core.errors import InputError
from steerseg_core.stages import Stage
from steerseg_core.types import Clip
from steerseg_core.video import load_clip

from .conftest import davis_frames


@pytest.fixture(scope="module")
def clip() -> Clip:
    full = load_clip(davis_frames("camel"), max_side=160)
    return dataclasses.replace(full, frames=full.frames[:10], frame_names=full.frame_names[:10])


@pytest.fixture(scope="module")
def cfg(tiny_models) -> SteerSegConfig:
    c = SteerSegConfig()
    c.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    c.grounding.frame_max_tokens, c.grounding.t_frame, c.grounding.t_video = 24, 3, 4
    c.grounding.cot_max_new_tokens = 8
    c.segment.sam2 = str(tiny_models / "sam2")
    return c


def test_run_and_stages(clip, cfg):
    seg = pipeline.SteerSeg(cfg)
    reported: list[str] = []
    result = seg.run(clip, "the camel walking", progress=lambda stage, fraction: reported.append(stage))
    # every stage reported is one of the named stages, and each has its timings key
    assert set(reported) <= set(Stage) and len(set(reported)) == len(Stage)
    assert {s.timing_key for s in Stage} <= {k.removeprefix("grounding_") for k in result.timings}
    assert result.masks.shape == (10, clip.height, clip.width) and result.masks.dtype == bool
    s = [t.s for t in result.tracklets]
    assert result.chosen == int(np.nanargmax(s))
    for t in result.tracklets:
        assert np.isclose(t.s, 0.3 * t.s_frm + 0.7 * t.s_vid)
    assert {"grounding_cot", "grounding_frame_rollout", "grounding_video_rollout", "scoring", "total"} <= set(result.timings)
    assert result.config["grounding"]["t_frame"] == 3

    # the backbone is cached: a second pipeline with the same models reuses the loaded model
    g1 = pipeline.cached_grounder(cfg.grounding)
    assert pipeline.cached_grounder(cfg.grounding).adapter is g1.adapter

    other = (result.chosen + 1) % len(result.tracklets)
    assert pipeline.SteerSeg.choose(result, other).chosen == other
    with pytest.raises(InputError):
        pipeline.SteerSeg.choose(result, 99)
    frame_only = seg.rescore(result, 1.0)
    assert frame_only.chosen == int(np.nanargmax([t.s_frm for t in frame_only.tracklets]))
    assert frame_only.config["segment"]["alpha"] == 1.0
    with pytest.raises(InputError):
        seg.rescore(result, 1.5)

    refined = seg.refine(result, clip, [(4, 80.0, 45.0, 1), (6, 5.0, 5.0, 0)])
    chosen = refined.tracklets[refined.chosen]
    assert chosen.clicks and chosen.masks.shape == result.masks.shape
    with pytest.raises(InputError, match="outside the clip"):
        seg.refine(result, clip, [(50, 1.0, 1.0, 1)])

    pipeline.clear_model_cache()
    assert pipeline.cached_grounder(cfg.grounding).adapter is not g1.adapter


def test_the_request_limits_reach_the_grounder(clip, cfg):
    """One LimitsConfig per request: the pipeline checks the expression with it before loading a
    model, and the grounder (also used alone by the study tools) checks with the same one."""
    strict = dataclasses.replace(cfg, limits=LimitsConfig(max_expression_chars=5))
    pipeline.clear_model_cache()
    with pytest.raises(InputError, match="too long"):
        pipeline.SteerSeg(strict).run(clip, "the camel walking")
    assert pipeline.cached_models() == []  # refused before any model was loaded
    g = pipeline.cached_grounder(cfg.grounding, strict.limits)
    assert g.limits is strict.limits
    with pytest.raises(InputError, match="too long"):
        g.cot(clip, "the camel walking")
    long = "the camel " * 110  # 1,100 characters: over the default limit, within a raised one
    with pytest.raises(InputError, match="too long"):
        pipeline.cached_grounder(cfg.grounding).cot(clip, long)
    roomy = pipeline.cached_grounder(cfg.grounding, LimitsConfig(max_expression_chars=2000))
    assert isinstance(roomy.cot(clip, long).raw, str)
    with pytest.raises(InputError, match="too long"):
        roomy.cot(clip, long * 2)
