"""SAM2 stage with a tiny random-weight SAM2 on a real DAVIS clip: loading (and refusing unsafe or
missing weights), candidate generation, one encoder pass per frame, agreement with sam2's own
propagation, click refinement."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from steerseg_core.config import SegmentConfig
from steerseg_core.errors import CheckpointError, InputError, ModelLoadError
from steerseg_core.segment import (
    LOGIT_SIDE,
    build_sam2,
    generate_candidates,
    logit_grid,
    refine_tracklet,
)
from steerseg_core.segment.build_sam import load_weights
from steerseg_core.segment.propagation import low_res_to_outputs
from steerseg_core.testing.tiny_sam2 import make_tiny_sam2
from steerseg_core.types import Clip, GroundingResult, TokenGeometry

from .conftest import davis_frames

DAVIS = davis_frames("blackswan").parent
IMAGE_SIZE = 128
NUM_FRAMES = 8
SIZE = (240, 427)  # the 480p clip at half size


@pytest.fixture(scope="module")
def tiny_sam2(tmp_path_factory) -> Path:
    return make_tiny_sam2(tmp_path_factory.mktemp("sam2") / "tiny", image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def backend(tiny_sam2):
    return build_sam2(str(tiny_sam2), device="auto")


@pytest.fixture(scope="module")
def clip() -> Clip:
    files = sorted((DAVIS / "blackswan").glob("*.jpg"))[:NUM_FRAMES]
    frames = np.stack([np.array(Image.open(f).convert("RGB").resize(SIZE[::-1], Image.BILINEAR))
                       for f in files])
    return Clip(frames=frames, fps=24.0, source="davis2016/blackswan", frame_names=tuple(f.stem for f in files))


def make_grounding(keyframes, seed: int = 0, grid=(9, 15), video_grid=(5, 8)) -> GroundingResult:
    rng = np.random.default_rng(seed)
    keyframes = np.asarray(keyframes)
    video_frames = np.arange(0, NUM_FRAMES, 2)
    return GroundingResult(
        expression="the black swan", cot=None, query_word="swan", query_words_frames=(),
        keyframes=keyframes, video_frames=video_frames,
        s_frm=rng.random((len(keyframes), *grid)).astype(np.float32),
        s_vid=rng.random((len(video_frames), *video_grid)).astype(np.float32),
        frame_geometry=TokenGeometry(grid=grid, frame_size=SIZE),
        video_geometry=TokenGeometry(grid=video_grid, frame_size=SIZE),
        use_cot=False, use_soft_prompts=False, backbone="test", layers=(0, 0))


class EncoderCounter:
    """Counts frames through SAM2's image encoder (a forward hook on the module)."""

    def __init__(self, model):
        self.frames = 0
        self.calls = 0
        self._handle = model.image_encoder.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1
        self.frames += int(args[0].shape[0])

    def close(self):
        self._handle.remove()


@pytest.fixture(scope="module")
def candidates(backend, clip):
    backend.clear_cache()
    counter = EncoderCounter(backend.model)
    events = []
    try:
        grounding = make_grounding([0, 2, 5, 7])
        tracklets = generate_candidates(backend, clip, grounding, SegmentConfig(nms_iou=1.0),
                                        progress=lambda msg, f: events.append((msg, f)))
    finally:
        counter.close()
    return grounding, tracklets, counter, events


# ------------------------------------------------------------------------------------------------
# Loading


def test_tiny_sam2_is_deterministic_and_loads_from_folder_file_and_pt(tmp_path, tiny_sam2, backend):
    again = make_tiny_sam2(tmp_path / "again", image_size=IMAGE_SIZE)
    digest = [hashlib.sha256((p / "model.safetensors").read_bytes()).hexdigest() for p in (tiny_sam2, again)]
    assert digest[0] == digest[1]
    assert backend.image_size == IMAGE_SIZE and backend.device.type in ("cpu", "cuda", "mps")
    # a checkpoint file with its config beside it
    file_backend = build_sam2(str(again / "model.safetensors"), device="cpu")
    ref = backend.model.state_dict()
    assert all(torch.equal(v.cpu(), ref[k].cpu()) for k, v in file_backend.model.state_dict().items())
    # sam2's own .pt layout ({"model": state_dict}) through torch.load(weights_only=True)
    pt_dir = tmp_path / "pt"
    pt_dir.mkdir()
    torch.save({"model": load_weights(again / "model.safetensors")}, pt_dir / "sam2_tiny.pt")
    (pt_dir / "sam2_tiny.yaml").write_text((again / "config.yaml").read_text())
    assert build_sam2(str(pt_dir / "sam2_tiny.pt"), device="cpu").image_size == IMAGE_SIZE


class _Payload:
    """A pickle that creates a file when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_checkpoint_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "sam2_hiera_tiny.pt"
    evil.write_bytes(pickle.dumps({"model": {"w": _Payload(marker)}}, protocol=2))
    with pytest.raises(CheckpointError, match="weights_only"):
        build_sam2(str(evil), device="cpu")
    assert not marker.exists()
    # the payload is live: a plain unpickle would have run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()


def test_missing_checkpoint_and_unknown_names(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        build_sam2(str(tmp_path / "sam2_hiera_large.pt"), device="cpu")
    with pytest.raises(ModelLoadError, match="unknown SAM2 model"):
        build_sam2("enormous", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no SAM2 weights"):
        build_sam2(str(tmp_path / "empty"), device="cpu")


def test_hub_model_offline_names_the_model_and_how_to_get_it(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError) as err:
        build_sam2("large", device="cpu")
    message = str(err.value)
    assert "facebook/sam2-hiera-large" in message and "sam2_hiera_large.pt" in message
    assert "hf download" in message and "--sam2" in message
    with pytest.raises(ModelLoadError, match="facebook/sam2-hiera-base-plus"):
        build_sam2("base+", device="cpu")


def test_config_may_only_name_sam2_classes(tmp_path, tiny_sam2):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((tiny_sam2 / "model.safetensors").read_bytes())
    (bad / "config.yaml").write_text("model:\n  _target_: os.system\n  command: touch pwned\n")
    with pytest.raises(ModelLoadError, match="refusing config target"):
        build_sam2(str(bad), device="cpu")


def test_bare_checkpoint_without_config_must_be_recognisable(tmp_path):
    torch.save({"model": {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(7, 3, 7, 7)}},
               tmp_path / "mystery.pt")
    with pytest.raises(ModelLoadError, match="cannot tell which SAM2 configuration"):
        build_sam2(str(tmp_path / "mystery.pt"), device="cpu")


# ------------------------------------------------------------------------------------------------
# Candidates


def test_candidates_have_masks_at_original_size_and_logits_for_every_frame(candidates, clip):
    grounding, tracklets, _, events = candidates
    assert 1 <= len(tracklets) <= len(grounding.keyframes)
    lh, lw = logit_grid(*SIZE)
    assert max(lh, lw) == LOGIT_SIDE
    for t in tracklets:
        assert t.masks.shape == (NUM_FRAMES, *SIZE) and t.masks.dtype == bool
        assert t.logits.shape == (NUM_FRAMES, lh, lw) and t.logits.dtype == np.float32
        assert np.isfinite(t.logits).all() and np.abs(t.logits).max() <= SegmentConfig().logit_clip
        assert t.source_keyframe in grounding.keyframes.tolist()
        assert 0 <= t.point_xy[0] < SIZE[1] and 0 <= t.point_xy[1] < SIZE[0]
        assert t.masks.any()  # the tiny model's object head says "present"
        assert np.isnan(t.s)
    assert [t.source_keyframe for t in tracklets] == sorted(t.source_keyframe for t in tracklets)
    fractions = [f for _, f in events]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_image_encoder_runs_once_per_frame(candidates, backend, clip):
    _, tracklets, counter, _ = candidates
    assert len(tracklets) >= 2  # several candidates shared the same encoder pass
    assert counter.frames == NUM_FRAMES
    assert counter.calls == -(-NUM_FRAMES // backend.encode_batch_size)


def test_batched_tracking_matches_sam2_own_propagation(candidates, backend, clip):
    """Each candidate equals sam2's predictor API on a fresh state: prompt the keyframe, then
    propagate_in_video from it forward (one state) and in reverse (another state)."""
    _, tracklets, _, _ = candidates
    model = backend.model
    for t in tracklets:
        low = {}
        with backend.running():
            for reverse in (False, True):
                state = backend.init_state(clip)
                model.add_new_points_or_box(state, frame_idx=t.source_keyframe, obj_id=1,
                                            points=np.array([t.point_xy], np.float32),
                                            labels=np.array([1], np.int32))
                for _ in model.propagate_in_video(state, start_frame_idx=t.source_keyframe, reverse=reverse):
                    pass
                out = state["output_dict_per_obj"][0]
                low.update({**out["non_cond_frame_outputs"], **out["cond_frame_outputs"]})
        ref = torch.cat([low[f]["pred_masks"] for f in range(NUM_FRAMES)])
        masks, logits = low_res_to_outputs(ref, SIZE, logit_grid(*SIZE), SegmentConfig().logit_clip)
        np.testing.assert_allclose(t.logits, logits, atol=1e-4)
        assert (masks == t.masks).mean() > 0.9999


def test_duplicate_keyframes_collapse_and_bad_keyframes_are_refused(backend, clip):
    grounding = make_grounding([3, 3])
    grounding.s_frm[1] = grounding.s_frm[0]  # same map → same point → same mask
    tracklets = generate_candidates(backend, clip, grounding, SegmentConfig())
    assert len(tracklets) == 1
    with pytest.raises(InputError):
        generate_candidates(backend, clip, make_grounding([0, NUM_FRAMES]), SegmentConfig())


def test_refine_reuses_features_and_applies_clicks(candidates, backend, clip):
    _, tracklets, _, _ = candidates
    chosen = tracklets[0]
    counter = EncoderCounter(backend.model)
    try:
        same = refine_tracklet(backend, clip, chosen, [])
        f = (chosen.source_keyframe + 3) % NUM_FRAMES
        x, y = 200.0, 120.0
        refined = refine_tracklet(backend, clip, chosen, [(f, x, y, 0)])
        again = refine_tracklet(backend, clip, refined, [(f, 50.0, 60.0, 1)])
    finally:
        counter.close()
    assert counter.frames == 0  # the clip's encoded features were reused
    k = chosen.source_keyframe
    # no clicks: sam2's forward pass from the keyframe is exactly the candidate's forward pass
    np.testing.assert_allclose(same.logits[k:], chosen.logits[k:], atol=1e-4)
    assert refined.masks.shape == chosen.masks.shape and refined.logits.shape == chosen.logits.shape
    assert refined.clicks == ((f, x, y, 0),) and refined.point_xy == chosen.point_xy
    assert again.clicks == ((f, x, y, 0), (f, 50.0, 60.0, 1))
    assert np.abs(refined.logits[f] - chosen.logits[f]).max() > 1e-3  # the click changed frame f
    assert np.isnan(refined.s)
    with pytest.raises(InputError):
        refine_tracklet(backend, clip, chosen, [(NUM_FRAMES, 1.0, 1.0, 1)])
    with pytest.raises(InputError):
        refine_tracklet(backend, clip, chosen, [(0, 1.0, 1.0, 2)])
