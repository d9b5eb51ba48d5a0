"""The end-to-end benchmark's own pieces (benchmarks/end_to_end.py): the peers' rollout from eager
``output_attentions`` gives the same maps as our capture, the forced NMS keeps exactly N, forced
generation runs to its limit, and the fast random fill leaves no uninitialised values.

The benchmark's ratios are only meaningful if both ways compute the same thing; these checks are
what the CPU can say about that (the timings themselves need a GPU and real-size models).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from steerseg_core.config import GroundingConfig
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.soft_prompts import SoftPrompts

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import end_to_end as e2e  # noqa: E402


@pytest.fixture(scope="module")
def grounder(tiny_models):
    adapter = load_adapter(str(tiny_models / "qwen2_5_vl"), "cpu", "float32")
    cfg = GroundingConfig(t_frame=2, t_video=2, frame_max_tokens=16, query_max_new_tokens=3)
    return Grounder(adapter, cfg, SoftPrompts.from_seed(adapter, 4))


def test_peers_eager_rollout_equals_our_capture(grounder):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 56, 84, 3), dtype=np.uint8)
    prepared = grounder.adapter.build_frames(frames, "Expression: the red car", 16)
    soft = grounder.soft_prompts.frame
    tokens = torch.tensor([[7], [9]])
    with torch.no_grad():
        ours = grounder.branch_rollout(prepared, soft, tokens=tokens)
    with e2e.eager_attention(grounder.adapter):
        peers = e2e.eager_branch_rollout(grounder, prepared, soft, tokens=tokens)
    assert grounder.adapter.text_config._attn_implementation == e2e.ATTN_IMPLEMENTATION  # restored
    assert peers.maps.shape == ours.maps.shape
    torch.testing.assert_close(peers.maps.float(), ours.maps.float(), rtol=1e-4, atol=1e-6)
    assert peers.visual_mass == pytest.approx(ours.visual_mass, rel=1e-4)


def test_forced_generation_runs_to_its_limit(grounder):
    adapter = grounder.adapter
    prepared = adapter.build_frames(np.zeros((1, 56, 84, 3), np.uint8), "Expression: x", 16)
    eos = adapter.model.generation_config.eos_token_id
    forced = e2e.fixed_generation(adapter)
    new, _ = forced(prepared, 12)
    assert new.shape[1] == 12 and eos not in new[0, :-1].tolist()
    assert adapter.model.generation_config.min_new_tokens in (None, 0)  # restored


def test_forced_nms_keeps_exactly_n():
    masks = np.zeros((5, 8, 8), bool)
    masks[:, :4, :4] = True  # all identical: real NMS keeps one
    masks[4, 4:, 4:] = True  # …and this one differs
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2])
    kept = e2e.fixed_count_nms(3)(masks, scores, 0.7)
    assert len(kept) == 3 and len(set(kept)) == 3
    assert set(kept[:2]) == {1, 4}  # NMS's own survivors first, then by predicted IoU
    assert kept[2] == 2
    with pytest.raises(SystemExit):
        e2e.fixed_count_nms(6)(masks, scores, 0.7)


def test_fill_random_initialises_every_parameter():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.initialization import no_init_weights

    text = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, rope_parameters={"rope_type": "default", "rope_theta": 1e4,
                                                         "mrope_section": [1, 1, 2]})
    vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
                  fullatt_block_indexes=[0])
    with no_init_weights():
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision))
    e2e.fill_random(model)
    for name, p in model.named_parameters():
        assert torch.isfinite(p).all(), name
        if p.dim() >= 2:
            assert 0.01 < float(p.detach().std()) < 0.03, name
        elif "norm" in name and name.endswith("weight"):
            assert bool((p == 1).all()), name
