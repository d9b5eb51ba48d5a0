"""Readout comparison (Fig. 1b) on a real DAVIS clip with the tiny backbone: each of the five maps
equals the map the corresponding ablation run produces at that keyframe (raw = ``--no-cot
--no-soft-prompts``), the contrast map is the clipped difference with the neutral expression, and
the panel and result.json entry carry all five."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerseg_core.config import GroundingConfig
from steerseg_core.grounding import prompts, rollout
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.grounding.readouts import NEUTRAL_EXPRESSION, READOUTS, compare_readouts
from steerseg_core.video import load_clip
from steerseg_core.visualize import readout_panel

from .conftest import davis_frames

EXPR = "the black swan"


@pytest.fixture(scope="module")
def setup(tiny_models):
    clip = load_clip(davis_frames("blackswan"), max_side=128)
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=32, t_frame=4, t_video=2,
                          soft_prompts="seed", n_prompts=4, cot_max_new_tokens=16, query_max_new_tokens=2)
    return clip, Grounder.from_config(cfg)


def test_five_readouts_match_the_ablation_runs(setup):
    clip, grounder = setup
    runs = {(c, s): grounder.ground(clip, EXPR, use_cot=c, use_soft_prompts=s)
            for c in (False, True) for s in (False, True)}
    k = 2
    frame = int(runs[(False, False)].keyframes[k])
    cmp = compare_readouts(grounder, clip, EXPR, frame, runs[(True, False)].cot)
    assert set(cmp.maps) == set(READOUTS) and cmp.frame == frame
    for name, key in (("raw", (False, False)), ("soft_prompts", (False, True)), ("cot", (True, False)),
                      ("both", (True, True))):
        np.testing.assert_allclose(cmp.maps[name], runs[key].s_frm[k], atol=1e-5, err_msg=name)
    # contrast: the query's raw rollout row minus the neutral expression's, negative part dropped
    image = clip.frames[frame:frame + 1]
    q = grounder.frame_maps(image, prompts.query_prompt(EXPR, None), None)[0][0]
    n = grounder.frame_maps(image, prompts.query_prompt(NEUTRAL_EXPRESSION, None), None)[0][0]
    expected = rollout.normalise_maps((q - n).clamp_min(0), 2).numpy()
    np.testing.assert_allclose(cmp.maps["contrast"], expected, atol=1e-6)
    assert not np.allclose(cmp.maps["contrast"], cmp.maps["raw"])
    for name in READOUTS:
        m = cmp.maps[name]
        row, col = np.unravel_index(int(np.argmax(m)), m.shape)
        assert cmp.points[name] == cmp.geometry.cell_to_pixel(float(row), float(col))
    data = cmp.to_json()
    assert data["frame"] == frame and all(len(data["points"][r]) == 2 for r in READOUTS)
    panel = readout_panel(clip, cmp, tile_height=60)
    tile_w = round(clip.width * 60 / clip.height)
    assert panel.shape == (82, 5 * tile_w + 4 * 4, 3)


def test_without_soft_prompts_the_soft_readouts_are_absent(setup, tiny_models):
    clip, seeded = setup
    plain = Grounder(seeded.adapter, seeded.config)  # no soft prompts loaded
    cmp = compare_readouts(plain, clip, EXPR, 0, seeded.ground(clip, EXPR, use_cot=True,
                                                               use_soft_prompts=False).cot)
    assert cmp.maps["soft_prompts"] is None and cmp.maps["both"] is None and cmp.points["both"] is None
    assert cmp.notes and torch.isfinite(torch.from_numpy(cmp.maps["raw"])).all()
    assert readout_panel(clip, cmp, tile_height=40).shape[0] == 62
