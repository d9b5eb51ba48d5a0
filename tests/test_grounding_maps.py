"""What the grounder makes of the rollout row, checked against an independent computation.

``test_rollout.py`` pins the rollout row itself; here the *maps* the real grounder returns
(``Grounder.ground`` on the tiny Qwen models, random weights) are compared with maps built by hand:
the dense eager rollout (``output_attentions`` + explicit matrix products, over the layer range
computed here from the paper's 14..27 of 28), over prompt + the first generated token, the visual
tokens found by their token id, reshaped row-major by the processor's own grid, frame slots
repeated, min-max normalised per keyframe (S_frm) and jointly over the clip (S_vid). Also the
paper's defaults (Table 5 / §4) and a float64 gradient check from the soft prompts to the map.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from steerseg_core.config import GroundingConfig, SegmentConfig, SteerSegConfig, default_layer_range
from steerseg_core.grounding import prompts
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.soft_prompts import SoftPrompts
from steerseg_core.video import load_clip

from .conftest import davis_frames
from .rollout_reference import dense_row

EXPRESSION = "the black swan swimming"
N_SOFT = 4
NEW_TOKENS = 3


@pytest.fixture(scope="module")
def clip():
    # 854×480 DAVIS frames: a non-square token grid, so a transposed reshape cannot pass
    return load_clip(davis_frames("blackswan"), max_side=224)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def grounder(request, tiny_models):
    cfg = GroundingConfig(backbone=str(tiny_models / request.param), frame_max_tokens=40, n_prompts=N_SOFT,
                          t_frame=3, t_video=4, use_cot=False, query_max_new_tokens=NEW_TOKENS,
                          frame_batch_size=3)
    adapter = load_adapter(cfg.backbone)
    # random, well-separated frame and video soft prompts (seeded): swapping them changes the maps
    gen = torch.Generator().manual_seed(0)
    soft = SoftPrompts(torch.randn(N_SOFT, adapter.hidden_size, generator=gen) * 2.0,
                       torch.randn(N_SOFT, adapter.hidden_size, generator=gen) * 2.0,
                       {"trained": False})
    return Grounder(adapter, cfg, soft)


@pytest.fixture(scope="module")
def grounded(grounder, clip):
    return grounder.ground(clip, EXPRESSION, use_cot=False, use_soft_prompts=True)


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


def _paper_layers(num_layers: int) -> tuple[int, int]:
    """14..27 of 28 at the same relative depth, written out here rather than imported."""
    return round(num_layers * 0.5), num_layers - 1


def _first_token_by_hand(adapter, spliced, soft: torch.Tensor) -> torch.Tensor:
    """Greedy first response token from one plain forward (structural tokens excluded)."""
    with torch.no_grad(), adapter.soft_prompts_active(spliced, soft):
        logits = adapter.model(**spliced.model_inputs, use_cache=False).logits[:, -1].float()
    logits[:, adapter.structural_token_ids()] = float("-inf")
    return logits.argmax(dim=-1, keepdim=True)


def _append_by_hand(spliced, q: torch.Tensor):
    """prompt + q: the token appended, attended to (mask 1), a text token (type 0)."""
    mi = dict(spliced.model_inputs)
    ids = mi["input_ids"]
    mi["input_ids"] = torch.cat([ids, q], dim=1)
    for key, fill in (("attention_mask", 1), ("mm_token_type_ids", 0), ("token_type_ids", 0)):
        if key in mi:
            mi[key] = torch.cat([mi[key], torch.full_like(q, fill, dtype=mi[key].dtype)], dim=1)
    return dataclasses.replace(spliced, model_inputs=mi)


def _reference_rows(adapter, prepared, soft: torch.Tensor):
    """(dense rollout row over prompt + first generated token, the generated tokens, inputs)."""
    spliced = adapter.splice_placeholders(prepared, soft.shape[0])
    new, _ = adapter.generate(spliced, NEW_TOKENS, soft)
    q = _first_token_by_hand(adapter, spliced, soft)
    assert torch.equal(new[:, :1], q), "generate() with soft prompts disagrees with a plain forward"
    full = _append_by_hand(spliced, q)
    lo, hi = _paper_layers(adapter.num_layers)
    return dense_row(adapter, full, soft, lo, hi).numpy(), new, spliced, full


def _visual_cells(adapter, full, token_attr: str, grid_key: str):
    ids = full.model_inputs["input_ids"][0]
    pos = (ids == int(getattr(adapter.model.config, token_attr))).nonzero().squeeze(1).numpy()
    t, gh, gw = (int(x) for x in full.model_inputs[grid_key][0])
    merge = adapter.model.config.vision_config.spatial_merge_size
    return pos, t, gh // merge, gw // merge


def test_frame_maps_match_dense_rollout_by_hand(grounder, clip, grounded):
    adapter = grounder.adapter
    text = prompts.query_prompt(EXPRESSION, None)
    prepared = adapter.build_frames(clip.frames[grounded.keyframes], text, 40)
    row, new, spliced, full = _reference_rows(adapter, prepared, grounder.soft_prompts.frame.detach())
    pos, t, rows, cols = _visual_cells(adapter, full, "image_token_id", "image_grid_thw")
    assert t == 1 and rows != cols, "the test needs a non-square grid"
    expected = np.stack([_minmax(r[pos].reshape(rows, cols)) for r in row])
    assert grounded.s_frm.shape == expected.shape
    np.testing.assert_allclose(grounded.s_frm, expected, atol=1e-4)

    # The test can tell the query token apart: the prompt's last token and the last generated token
    # give other maps here (else a grounder using either would pass).
    assert (new[:, 0] != new[:, -1]).any(), "greedy decoding repeated the first token"
    lo, hi = _paper_layers(adapter.num_layers)
    soft = grounder.soft_prompts.frame.detach()
    prompt_last = dense_row(adapter, spliced, soft, lo, hi).numpy()
    other = np.stack([_minmax(r[pos].reshape(rows, cols)) for r in prompt_last])
    assert np.abs(other - expected).max() > 1e-3  # 10× the tolerance of the match above


def test_video_map_repeats_slots_and_is_normalised_jointly(grounder, clip, grounded):
    adapter = grounder.adapter
    text = prompts.query_prompt(EXPRESSION, None)
    k = len(grounded.video_frames)
    fps = k / (clip.num_frames / clip.fps)
    prepared = adapter.build_video(clip.frames[grounded.video_frames], text, 40, fps)
    row, _, _, full = _reference_rows(adapter, prepared, grounder.soft_prompts.video.detach())
    pos, t, rows, cols = _visual_cells(adapter, full, "video_token_id", "video_grid_thw")
    assert t == k // 2 and rows != cols
    slots = row[0, pos].reshape(t, rows, cols)
    raw = np.stack([slots[i // 2] for i in range(k)])  # two frames per temporal slot: 0,0,1,1,…
    expected = _minmax(raw)  # one min and one max over the whole (T_v, h, w) stack
    assert grounded.s_vid.shape == expected.shape
    np.testing.assert_allclose(grounded.s_vid, expected, atol=1e-4)
    # joint normalisation: not every frame reaches 1 (per-frame normalisation would)
    assert grounded.s_vid.reshape(k, -1).max(axis=1).min() < 0.99


def test_branches_use_their_own_soft_prompts(grounder, clip, grounded):
    """The frame branch is steered by the frame prompts only (and the video by the video ones)."""
    adapter = grounder.adapter
    text = prompts.query_prompt(EXPRESSION, None)
    prepared = adapter.build_frames(clip.frames[grounded.keyframes], text, 40)
    row, _, _, full = _reference_rows(adapter, prepared, grounder.soft_prompts.video.detach())
    pos, _, rows, cols = _visual_cells(adapter, full, "image_token_id", "image_grid_thw")
    swapped = np.stack([_minmax(r[pos].reshape(rows, cols)) for r in row])
    assert np.abs(swapped - grounded.s_frm).max() > 1e-3  # 10× the tolerance of the match above


def test_grounder_rolls_out_the_paper_layer_range(grounder, grounded):
    n = grounder.adapter.num_layers
    assert grounder.layers == _paper_layers(n) == grounded.layers
    assert grounded.layer_summaries["layers"] == list(range(n // 2, n))


def test_paper_defaults_are_pinned():
    """Every method default is the paper's (Table 5 / §4); changing one must be deliberate."""
    g, s = GroundingConfig(), SegmentConfig()
    assert (g.t_frame, g.t_video, g.n_prompts, g.layers) == (16, 8, 64, None)
    assert g.use_cot and g.use_soft_prompts
    assert default_layer_range(28) == (14, 27)  # Qwen2.5-VL-7B: 28 layers
    assert default_layer_range(6) == (3, 5) and default_layer_range(32) == (16, 31)
    assert (s.alpha, s.nms_iou) == (0.3, 0.7)
    assert SteerSegConfig().grounding == g and SteerSegConfig().segment == s
    from steerseg_core.segment import nms, scoring
    from steerseg_core.training.config import TrainConfig

    assert nms.mask_nms.__defaults__ == (0.7,)
    assert s.logit_clip == scoring.DEFAULT_LOGIT_CLIP
    t = TrainConfig()
    assert (t.steps, t.lr, t.batch_size, t.n_prompts, t.input_frames, t.t_frame, t.t_video) == (
        6500, 5e-4, 4, 64, 16, 16, 8)
    assert SoftPrompts.from_seed.__defaults__[0] == 64


def test_gradcheck_soft_prompts_to_rollout_map(tiny_models, monkeypatch):
    """float64 gradient check of soft prompts → captured rollout → visual map (the training path)."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    def rms_norm_in_input_dtype(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # transformers' RMSNorm always computes in float32, which would make the float64 finite
        # differences of gradcheck noise; same formula, kept in the input's dtype
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    monkeypatch.setattr(modeling_qwen2_5_vl.Qwen2_5_VLRMSNorm, "forward", rms_norm_in_input_dtype)
    adapter = load_adapter(str(tiny_models / "qwen2_5_vl"), dtype="float32")
    adapter.model.double()
    try:
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 255, (1, 56, 84, 3), dtype=np.uint8)
        prepared = adapter.build_frames(frames, "Expression: the dog", 6)
        prepared.model_inputs["pixel_values"] = prepared.model_inputs["pixel_values"].double()
        base = torch.randn(2, adapter.hidden_size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        grounder = Grounder(adapter, GroundingConfig(backbone="tiny", t_frame=1, t_video=2))
        cols = torch.arange(3)  # a few entries of one soft vector, to keep the check short

        def visual_map(x: torch.Tensor) -> torch.Tensor:
            soft = base.clone()
            soft[0, cols] = x
            out = grounder.branch_rollout(prepared, soft, tokens=torch.tensor([[65]]))
            return out.maps

        x = base[0, cols].clone().requires_grad_(True)
        assert visual_map(x).dtype == torch.float64
        assert torch.autograd.gradcheck(visual_map, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
        # the map depends on the soft prompts at all (a detached path would give zero gradients)
        (grad,) = torch.autograd.grad(visual_map(x)[0, 0, 0, 0], x)
        assert grad.abs().max() > 0
    finally:
        adapter.model.float()


def test_keyframe_batches_and_sampling(grounder, clip, grounded):
    """Keyframes in batches of 2 (3 keyframes: a full batch and a partial one) give the maps of
    one batch, in keyframe order; the frames are the uniform samples of the clip."""
    assert clip.num_frames == 16  # the committed 16-frame cut of blackswan
    assert grounded.keyframes.tolist() == [0, 8, 15]  # linspace(0, 15, 3) = 0, 7.5, 15, rounded half to even
    assert grounded.video_frames.tolist() == [0, 5, 10, 15]
    cfg = dataclasses.replace(grounder.config, frame_batch_size=2)
    batched = Grounder(grounder.adapter, cfg, grounder.soft_prompts).ground(
        clip, EXPRESSION, use_cot=False, use_soft_prompts=True)
    np.testing.assert_allclose(batched.s_frm, grounded.s_frm, atol=1e-4)
    np.testing.assert_allclose(batched.s_vid, grounded.s_vid, atol=1e-6)
    assert len(batched.query_words_frames) == 3


def test_soft_prompts_replace_the_placeholder_embeddings_in_order(grounder, clip):
    """During a forward the embedding output holds the soft vectors, in order, exactly at the
    spliced placeholders, and the plain token embeddings everywhere else."""
    adapter = grounder.adapter
    prepared = adapter.build_frames(clip.frames[:1], prompts.query_prompt(EXPRESSION, None), 40)
    soft = grounder.soft_prompts.frame.detach()
    spliced = adapter.splice_placeholders(prepared, soft.shape[0])
    ids = spliced.model_inputs["input_ids"]
    at = spliced.soft_start
    assert (ids[0, at:at + N_SOFT] == adapter.placeholder_id).all()
    assert int((ids[0] == adapter.placeholder_id).sum()) == N_SOFT
    seen = []
    handle = adapter.input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    try:
        adapter.forward(spliced, soft)
    finally:
        handle.remove()
    emb = seen[-1][0].float()
    torch.testing.assert_close(emb[at:at + N_SOFT], soft.float())
    plain = adapter.input_embeddings().weight[ids[0]].float()
    keep = torch.ones(ids.shape[1], dtype=torch.bool)
    keep[at:at + N_SOFT] = False
    torch.testing.assert_close(emb[keep], plain[keep])


def test_cot_step_reads_tv_frames_without_soft_prompts(grounder, clip, monkeypatch):
    """The CoT answer is the greedy answer to the verbatim CoT prompt over the T_v video frames,
    with no soft prompts (those steer the query step only)."""
    cfg = dataclasses.replace(grounder.config, cot_max_new_tokens=8, t_frame=2)
    g = Grounder(grounder.adapter, cfg, grounder.soft_prompts)
    adapter = g.adapter
    video_frames = np.round(np.linspace(0, clip.num_frames - 1, cfg.t_video)).astype(int)

    def answer(frames, soft=None) -> str:
        prepared = adapter.build_video(clip.frames[frames], prompts.cot_prompt(EXPRESSION), 40,
                                       len(frames) / (clip.num_frames / clip.fps))
        if soft is not None:
            prepared = adapter.splice_placeholders(prepared, soft.shape[0])
        return adapter.generate(prepared, 8, soft)[1][0]

    expected = answer(video_frames)
    assert g.cot(clip, EXPRESSION).raw == expected
    # and no soft prompts reach any generation of the CoT step (on random weights a soft prompt may
    # leave the greedy text unchanged, so the call itself is checked too)
    seen: list = []
    real_generate = adapter.generate

    def spy(prepared, max_new_tokens, soft=None):
        seen.append(soft)
        return real_generate(prepared, max_new_tokens, soft)

    monkeypatch.setattr(adapter, "generate", spy)
    g.cot(clip, EXPRESSION)
    assert seen and all(x is None for x in seen)
    # (random tiny weights barely look at the pixels, so which frames it reads is checked directly:
    # a recorder around the adapter's real build_video)
    calls = []
    real = adapter.build_video

    def recording_build_video(frames, *args, **kwargs):
        calls.append(np.asarray(frames))
        return real(frames, *args, **kwargs)

    monkeypatch.setattr(adapter, "build_video", recording_build_video)
    g.cot(clip, EXPRESSION)
    assert len(calls) == 1 and np.array_equal(calls[0], clip.frames[video_frames])


def test_video_frame_rate_reaches_the_model(grounder, clip):
    """Qwen2.5-VL places video tokens in time by second_per_grid_ts = temporal patch / fps: the
    effective rate of the sampled frames must get there (the processor assumed 24 fps before)."""
    adapter = grounder.adapter
    frames = clip.frames[:4]
    for fps in (1.92, 6.0):
        mi = adapter.build_video(frames, "Expression: x", 40, fps).model_inputs
        if adapter.model.config.model_type == "qwen2_vl":  # no time positions in Qwen2-VL
            assert "second_per_grid_ts" not in mi
        else:
            assert float(mi["second_per_grid_ts"][0]) == pytest.approx(2 / fps, rel=1e-5)
