"""Attribute attention (Fig. 4b) and counterfactual attributes on a real DAVIS clip with the tiny
backbone: the shares sum to 1 and equal a direct computation from the rollout row; user attributes
reach the query as typed and replace the CoT step; a counterfactual re-run reuses SAM2's encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steerseg_core.config import GroundingConfig, SteerSegConfig
from steerseg_core.export import validate_result_json, write_result_json
from steerseg_core.grounding import prompts
from steerseg_core.grounding.attribute_attention import ATTRIBUTES_MARKER
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.video import load_clip

from .conftest import davis_frames

EXPR = "the black swan"
TYPED = "black and white, swimming, on the left"


@pytest.fixture(scope="module")
def clip():
    return load_clip(davis_frames("blackswan"), max_side=128)


@pytest.fixture(scope="module")
def grounder(tiny_models):
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=32, t_frame=3, t_video=2,
                          soft_prompts="seed", n_prompts=4, query_max_new_tokens=2)
    return Grounder.from_config(cfg)


def _direct_positions(tok, ids: list[int], attributes: list[str]) -> list[list[int]]:
    """Brute force, independent of the module: the shortest token window after the marker whose
    decoded text contains each attribute, searched in order."""
    dec = lambda a, b: tok.decode(ids[a:b]).lower()  # noqa: E731
    m = next(j for j in range(len(ids) + 1) if ATTRIBUTES_MARKER.lower() in dec(0, j))
    out, cursor = [], m - 1  # the token completing the marker may start the first attribute
    for attr in attributes:
        e = next(j for j in range(cursor, len(ids) + 1) if attr.lower() in dec(cursor, j))
        s = max(i for i in range(cursor, e) if attr.lower() in dec(i, e))
        out.append(list(range(s, e)))
        cursor = e
    return out


def test_user_attributes_as_typed_and_shares_from_the_row(grounder, clip):
    g = grounder.ground(clip, EXPR, attributes=TYPED)
    assert g.attributes_source == "user" and g.cot.attributes_text == TYPED  # not rewritten
    assert g.attributes == ("black", "white", "swimming", "on the left")  # parsed: display/statistics
    shares = [a["share"] for a in g.attribute_attention]
    assert [a["attribute"] for a in g.attribute_attention] == list(g.attributes)
    assert abs(sum(shares) - 1.0) < 1e-9 and all(s > 0 for s in shares)
    assert abs(sum(a["share"] for a in g.attribute_attention_video) - 1.0) < 1e-9
    for branch in ("frame", "video"):
        split = g.row_split[branch]
        assert abs(sum(split.values()) - 1.0) < 1e-9 and split["soft_prompts"] > 0 and split["visual"] > 0

    # direct: the rollout rows of the same query, the attribute tokens found by brute force
    caps = []
    grounder.frame_maps(clip.frames[g.keyframes], prompts.query_prompt(EXPR, TYPED), grounder.soft_prompts.frame,
                        captures=caps)
    tok = grounder.adapter.tokenizer
    per_row = []
    for cap in caps:
        for b in range(cap.rows.shape[0]):
            row = cap.rows[b].double().numpy()
            pos = _direct_positions(tok, cap.input_ids[b].tolist(), list(g.attributes))
            mass = np.array([row[p].sum() for p in pos])
            per_row.append(mass / mass.sum())
    assert len(per_row) == len(g.keyframes)
    np.testing.assert_allclose(shares, np.mean(per_row, axis=0), atol=1e-9)


def test_cot_attributes_keep_the_written_form():
    cot = prompts.parse_cot("Reasoning: it swims.\nAttributes: black and white, long neck.")
    assert cot.attributes == ("black", "white", "long neck")
    assert cot.attributes_text == "black and white, long neck"
    assert "target: black and white, long neck." in prompts.query_prompt("x", cot.attributes_text)


@pytest.mark.slow
def test_counterfactual_rerun_through_the_pipeline(tiny_models, tmp_path):
    from steerseg_core import pipeline

    clip6 = load_clip(davis_frames("blackswan"), max_side=96)
    clip6 = type(clip6)(clip6.frames[:6], clip6.fps, clip6.source, clip6.frame_names[:6])
    cfg = SteerSegConfig()
    cfg.grounding.backbone = str(tiny_models / "qwen2_5_vl")
    cfg.grounding.frame_max_tokens, cfg.grounding.t_frame, cfg.grounding.t_video = 24, 2, 2
    cfg.grounding.cot_max_new_tokens = 16
    cfg.segment.sam2, cfg.segment.device, cfg.grounding.device = str(tiny_models / "sam2"), "cpu", "cpu"
    seg = pipeline.SteerSeg(cfg)
    first = seg.run(clip6, EXPR)
    assert first.grounding.attributes_source == "cot"
    backend = pipeline.cached_sam2(cfg.segment.sam2, "cpu")
    encoded = backend._last
    again = seg.with_attributes(first, clip6, "white, flying, on the right")
    assert backend._last is encoded  # the clip's SAM2 encoding was reused
    g = again.grounding
    assert g.attributes_source == "user" and g.cot.attributes_text == "white, flying, on the right"
    assert g.timings["cot"] < 0.01 and not np.allclose(g.s_frm, first.grounding.s_frm)
    data = json.loads(write_result_json(again, tmp_path / "result.json").read_text())
    validate_result_json(data)
    assert data["attributes_source"] == "user" and len(data["attribute_attention"]) == 3
    assert abs(sum(a["share"] for a in data["attribute_attention"]) - 1) < 1e-9
