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


@pytest.fixture(scope="module")
def clip_small():
    from steerseg_core.video import load_clip

    from .conftest import davis_frames

    return load_clip(davis_frames("blackswan"), max_side=96)


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


# -- honest sources: none unless asked, seed only by name, hub references, refusals ----------------

def test_no_source_means_no_soft_prompts(adapter, tiny_models, clip_small):
    from steerseg_core.config import GroundingConfig
    from steerseg_core.grounding.grounder import Grounder
    from steerseg_core.grounding.soft_prompts import resolve_soft_prompts

    for spec in (None, "", "none"):
        sp, info = resolve_soft_prompts(spec, adapter)
        assert sp is None and info == {"source": "none", "trained": False, "steps": None, "trained_with_cot": None}
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=24, t_frame=2, t_video=2,
                          use_cot=False)
    assert cfg.use_soft_prompts and cfg.soft_prompts is None  # the defaults
    g = Grounder.from_config(cfg)
    assert g.soft_prompts is None
    res = g.ground(clip_small, "the swan")
    assert res.use_soft_prompts is False and res.soft_prompts_info["source"] == "none"
    with pytest.raises(Exception, match="--soft-prompts seed"):
        g.ground(clip_small, "the swan", use_soft_prompts=True)


def test_seed_only_on_request_and_labelled(adapter, tiny_models, clip_small):
    from steerseg_core.config import GroundingConfig
    from steerseg_core.grounding.grounder import Grounder, soft_prompts_note
    from steerseg_core.grounding.soft_prompts import resolve_soft_prompts

    sp, info = resolve_soft_prompts("seed", adapter, 4)
    assert sp.n_prompts == 4 and info == {"source": "seed", "trained": False, "steps": 0, "trained_with_cot": None}
    cfg = GroundingConfig(backbone=str(tiny_models / "qwen2_5_vl"), frame_max_tokens=24, t_frame=2, t_video=2,
                          use_cot=False, soft_prompts="seed", n_prompts=4)
    res = Grounder.from_config(cfg).ground(clip_small, "the swan")
    assert res.use_soft_prompts and res.soft_prompts_info["source"] == "seed"
    assert "NOT trained" in soft_prompts_note(res.soft_prompts_info, True, how="x")


def test_trained_checkpoint_provenance(adapter, tmp_path):
    from steerseg_core.grounding.grounder import soft_prompts_label
    from steerseg_core.grounding.soft_prompts import resolve_soft_prompts

    path = SoftPrompts.from_seed(adapter, 4).save(tmp_path / "mine", steps=120, trained=True,
                                                  training={"use_cot": True})
    sp, info = resolve_soft_prompts(str(path), adapter)
    assert info == {"source": str(path), "trained": True, "steps": 120, "trained_with_cot": True}
    assert soft_prompts_label(info) == "mine.safetensors (120 steps, trained with CoT)"  # no server folders


def test_zero_prompt_rows_refused(adapter, tmp_path):
    from safetensors.torch import save_file

    d = adapter.hidden_size
    save_file({"frame": torch.zeros(0, d), "video": torch.zeros(0, d)}, str(tmp_path / "empty.safetensors"))
    with pytest.raises(CheckpointError, match="zero prompt rows"):
        SoftPrompts.load(tmp_path / "empty.safetensors", adapter.fingerprint)


def test_hub_reference_parsing(tmp_path):
    from steerseg_core.grounding.soft_prompts import hub_reference

    assert hub_reference("user/repo") == ("user/repo", "soft_prompts.safetensors")
    assert hub_reference("user/repo/np64.safetensors") == ("user/repo", "np64.safetensors")
    assert hub_reference("user/repo/sub/np64.safetensors") == ("user/repo", "sub/np64.safetensors")
    for not_hub in ("seed", "./a/b", "/abs/x.safetensors", "~/x/y", "user/repo/file.pt", str(tmp_path)):
        assert hub_reference(not_hub) is None


def test_hub_reference_downloads(adapter, tmp_path, monkeypatch):
    """The Hugging Face hub cannot be reached here: ``hf_hub_download`` is the one mock, serving a
    checkpoint folder laid out like the hub cache."""
    import huggingface_hub

    from steerseg_core.errors import ModelLoadError
    from steerseg_core.grounding.soft_prompts import resolve_soft_prompts

    repo_dir = tmp_path / "snapshot"
    SoftPrompts.from_seed(adapter, 4).save(repo_dir / "np4", steps=7, trained=True, training={"use_cot": False})
    asked = []

    def fake_download(repo_id: str, filename: str, **_: object) -> str:
        asked.append((repo_id, filename))
        if repo_id != "someone/steerseg-prompts" or not (repo_dir / filename).exists():
            raise huggingface_hub.errors.EntryNotFoundError(f"{repo_id}/{filename}")
        return str(repo_dir / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    sp, info = resolve_soft_prompts("someone/steerseg-prompts/np4.safetensors", adapter)
    assert sp.n_prompts == 4 and asked[0] == ("someone/steerseg-prompts", "np4.safetensors")
    assert info == {"source": "someone/steerseg-prompts/np4.safetensors", "trained": True, "steps": 7,
                    "trained_with_cot": False}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="offline here and it is not in the local cache.*hf download"):
        resolve_soft_prompts("someone/other", adapter)
    assert asked[-1] == ("someone/other", "soft_prompts.safetensors")
