"""Soft prompts: seed initialisation, safetensors round trip, refusal of foreign checkpoints."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from steerseg_core.errors import CheckpointError
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.soft_prompts import SoftPrompts, repeat_truncate


@pytest.fixture(scope="module")
def adapter(tiny_models):
    return load_adapter(str(tiny_models / "qwen2_5_vl"))


def test_repeat_truncate():
    e = torch.arange(6.0).view(3, 2)
    out = repeat_truncate(e, 7)
    assert out.shape == (7, 2)
    assert torch.equal(out[3:6], e) and torch.equal(out[6], e[0])


def test_seed_init_uses_token_embeddings(adapter):
    sp = SoftPrompts.from_seed(adapter, n_prompts=9, seed_frame="look at it", seed_video="watch it")
    emb = adapter.token_embeddings("look at it")
    assert sp.frame.shape == (9, adapter.hidden_size)
    assert torch.allclose(sp.frame[: emb.shape[0]], emb)
    assert not torch.allclose(sp.frame, sp.video)


def test_round_trip_and_meta(adapter, tmp_path):
    sp = SoftPrompts.from_seed(adapter, n_prompts=4)
    path = sp.save(tmp_path / "mine", steps=12, trained=True)
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    back = SoftPrompts.load(path, adapter.fingerprint)
    assert torch.equal(back.frame, sp.frame) and back.meta["steps"] == 12
    assert json.loads(path.with_suffix(".json").read_text())["fingerprint"] == adapter.fingerprint


def test_refuses_other_backbone(adapter, tiny_models, tmp_path):
    other = load_adapter(str(tiny_models / "qwen2_vl"))
    path = SoftPrompts.from_seed(other, n_prompts=4).save(tmp_path / "other")
    with pytest.raises(CheckpointError, match="different backbone"):
        SoftPrompts.load(path, adapter.fingerprint)


def test_refuses_wrong_shapes_and_dtypes(adapter, tmp_path):
    from safetensors.torch import save_file

    save_file({"frame": torch.zeros(4, 7), "video": torch.zeros(4, 7)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match="hidden size 7"):
        SoftPrompts.load(tmp_path / "w.safetensors", adapter.fingerprint)
    save_file({"frame": torch.zeros(4, 64, dtype=torch.int32), "video": torch.zeros(4, 64)},
              str(tmp_path / "d.safetensors"))
    with pytest.raises(CheckpointError, match="float"):
        SoftPrompts.load(tmp_path / "d.safetensors")
    save_file({"frame": torch.zeros(4, 64)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(CheckpointError, match="'frame' and 'video'"):
        SoftPrompts.load(tmp_path / "m.safetensors")


class _Boom:
    def __reduce__(self):
        return (open, ("/tmp/steerseg_pickle_was_loaded", "w"))


def test_never_unpickles(tmp_path):
    bad = tmp_path / "prompts.pt"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="never opened"):
        SoftPrompts.load(bad)
    renamed = tmp_path / "evil.safetensors"
    renamed.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        SoftPrompts.load(renamed)
    import os
    assert not os.path.exists("/tmp/steerseg_pickle_was_loaded")


def test_soft_prompts_change_maps_and_get_gradients(adapter):
    import numpy as np

    from steerseg_core.config import GroundingConfig
    from steerseg_core.grounding.grounder import Grounder

    g = Grounder(adapter, GroundingConfig(backbone="tiny", frame_max_tokens=24, n_prompts=6))
    sp = SoftPrompts.from_seed(adapter, n_prompts=6)
    frames = np.random.default_rng(0).integers(0, 255, (2, 84, 112, 3), dtype=np.uint8)
    prepared = adapter.build_frames(frames, "Expression: the cat", 24)
    tokens = torch.tensor([[7], [7]])
    with torch.no_grad():
        plain = g.branch_rollout(prepared, None, tokens).maps
    steered = g.branch_rollout(prepared, sp.frame, tokens).maps
    assert plain.shape == steered.shape
    assert not torch.allclose(plain, steered.detach(), atol=1e-6)
    steered.sum().backward()
    assert sp.frame.grad is not None and sp.frame.grad.abs().sum() > 0
    assert all(p.grad is None for p in adapter.model.parameters())
