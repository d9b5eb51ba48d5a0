"""InternVL3 and LLaVA-OneVision adapters on tiny random models: token layouts, rollout, grounding.

The layout checks go beyond counting: the language model's input embeddings at our visual
positions are compared with the vision features computed independently, and a bright square
planted in one cell of the frame (vision tower made token-local) must light up exactly that cell.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from steerseg_core.config import GroundingConfig
from steerseg_core.grounding.grounder import Grounder
from steerseg_core.grounding.lvlm import load_adapter
from steerseg_core.grounding.lvlm.internvl import InternVLAdapter
from steerseg_core.grounding.lvlm.llava_ov import LlavaOneVisionAdapter
from steerseg_core.grounding.soft_prompts import SoftPrompts
from steerseg_core.testing.tiny_families import make_tiny_internvl, make_tiny_llava_ov
from steerseg_core.video import load_clip

from .conftest import davis_frames
from .rollout_reference import captured_row, dense_row

FAMILIES = {"internvl": (make_tiny_internvl, InternVLAdapter), "llava_ov": (make_tiny_llava_ov, LlavaOneVisionAdapter)}
TEXT = "Expression: the dog on the left\n\nWhat is the main object?"


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_families")
    return {name: make(root / name) for name, (make, _) in FAMILIES.items()}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def adapter(request, family_dirs):
    return load_adapter(str(family_dirs[request.param]))


def _frames(t: int, seed: int = 0, size: tuple[int, int] = (90, 160)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (t, *size, 3), dtype=np.uint8)


def _side(adapter) -> tuple[int, int]:
    """(frame-branch side, video-branch side) from the model config, independently of the adapter."""
    vc = adapter.model.config.vision_config
    if isinstance(adapter, InternVLAdapter):
        n = int(vc.image_size[0] / vc.patch_size[0] * adapter.model.config.downsample_ratio)
        return n, n  # no spatial downsampling for InternVL video
    g = vc.image_size // vc.patch_size
    return g, -(-g // 2)


def _embeds(adapter, prepared) -> torch.Tensor:
    """The language model's input embeddings (B, N, d) for these inputs."""
    seen = {}

    def grab(module, args, kwargs):
        seen["x"] = kwargs["inputs_embeds"].detach().clone()

    handle = adapter.model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            adapter.forward(prepared)
    finally:
        handle.remove()
    return seen["x"]


@contextmanager
def token_local_vision(adapter):
    """Zero every value projection of the vision tower: attention no longer mixes patches, so each
    visual token depends only on its own pixels (restored afterwards)."""
    saved = []
    with torch.no_grad():
        for name, mod in adapter.model.model.vision_tower.named_modules():
            if name.endswith("v_proj"):
                saved.append((mod, mod.weight.clone(), None if mod.bias is None else mod.bias.clone()))
                mod.weight.zero_()
                if mod.bias is not None:
                    mod.bias.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for mod, w, b in saved:
                mod.weight.copy_(w)
                if b is not None:
                    mod.bias.copy_(b)


# -- layouts ---------------------------------------------------------------------------------------
def test_load_adapter_picks_the_family(adapter):
    assert adapter.family in ("internvl", "llava_onevision")
    assert adapter.fingerprint["model_type"] == adapter.model.config.model_type
    assert adapter.num_layers == 6 and adapter.hidden_size == 64


def test_frame_positions_are_the_grid_tokens(adapter):
    n, _ = _side(adapter)
    prepared = adapter.build_frames(_frames(3), TEXT, 40)
    ids = prepared.model_inputs["input_ids"]
    pos = prepared.visual_positions
    assert prepared.batch_size == 3 and prepared.visual_grid == (1, n, n) and pos.numel() == n * n
    assert torch.equal(pos, torch.arange(int(pos[0]), int(pos[0]) + n * n))  # one contiguous block
    if isinstance(adapter, InternVLAdapter):
        proc = adapter.processor
        assert torch.equal((ids[0] == adapter.model.config.image_token_id).nonzero().squeeze(1), pos)
        assert int(ids[0, pos[0] - 1]) == proc.start_image_token_id and int(ids[0, pos[-1] + 1]) == proc.end_image_token_id
        assert prepared.geometry.content_box is None
    else:
        image = (ids[0] == adapter.model.config.image_token_id).nonzero().squeeze(1)
        # the base grid comes first, then the any-res tiles with their newlines
        assert int(image[0]) == int(pos[0]) and image.numel() > n * n
        h, w = 90, 160
        expected = adapter.processor._get_number_of_features(h, w, adapter.tower_size, adapter.tower_size)
        assert image.numel() == expected
        assert prepared.geometry.content_box == pytest.approx((0, 0, 100 / 14, 100 / 14))
    assert prepared.geometry.grid == (n, n) and prepared.geometry.frame_size == (90, 160)


def test_video_positions_are_the_grid_tokens(adapter):
    t = 3
    _, v = _side(adapter)
    prepared = adapter.build_video(_frames(t), TEXT, 40, fps=4.0)
    ids = prepared.model_inputs["input_ids"][0]
    pos = prepared.visual_positions
    assert prepared.batch_size == 1 and prepared.visual_grid == (t, v, v) and pos.numel() == t * v * v
    if isinstance(adapter, InternVLAdapter):
        assert torch.equal((ids == adapter.model.config.image_token_id).nonzero().squeeze(1), pos)
        starts = (ids == adapter.processor.start_image_token_id).nonzero().squeeze(1)
        assert starts.numel() == t
        for k in range(t):  # frame k's tokens follow its own <img>
            assert int(pos[k * v * v]) == int(starts[k]) + 1
    else:
        video = (ids == adapter.model.config.video_token_id).nonzero().squeeze(1)
        assert video.numel() == t * v * v + 1 and torch.equal(video[:-1], pos)  # the last one is the newline
        assert prepared.geometry.content_box == pytest.approx((0, 0, 100 / 14 * 4 / 7, 100 / 14 * 4 / 7))


def _pixel_shuffle_ref(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, 2n, 2n, C) patches → (B, n·n, 4C): token (i, j) = patches (2i, 2j), (2i, 2j+1), (2i+1, 2j),
    (2i+1, 2j+1) — the reading that makes token k cover cell (k // n, k % n)."""
    b, _, _, c = x.shape
    return x.reshape(b, n, 2, n, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, n * n, 4 * c)


def test_frame_features_land_in_row_major_order(adapter):
    """Embeddings at the visual positions equal the frame's own vision features, row-major."""
    n, _ = _side(adapter)
    prepared = adapter.build_frames(_frames(2, seed=3), TEXT, 40)
    got = _embeds(adapter, prepared)[:, prepared.visual_positions]
    mm = adapter.model.model
    pv = prepared.model_inputs["pixel_values"]
    with torch.no_grad():
        if isinstance(adapter, InternVLAdapter):
            feats = mm.vision_tower(pixel_values=pv).last_hidden_state[:, 1:]  # drop CLS
            feats = _pixel_shuffle_ref(feats.reshape(pv.shape[0], 2 * n, 2 * n, -1), n)
            want = mm.multi_modal_projector(feats)
        else:
            base = pv[:, 0]  # the whole frame stretched to the tower size
            want = mm.multi_modal_projector(mm.vision_tower(base, output_hidden_states=True).hidden_states[-1])
    assert want.shape == got.shape
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def _plant(frames: np.ndarray, geometry, t: int, row: int, col: int) -> np.ndarray:
    """A white square in the middle half of token cell (row, col) of frame t (original pixels)."""
    out = frames.copy()
    gh, gw = geometry.grid
    y0, x0, y1, x1 = geometry.content_box or (0.0, 0.0, float(gh), float(gw))
    h, w = geometry.frame_size
    ya, yb = ((row + f - y0) / (y1 - y0) * h for f in (0.25, 0.75))
    xa, xb = ((col + f - x0) / (x1 - x0) * w for f in (0.25, 0.75))
    out[t, int(ya):int(np.ceil(yb)), int(xa):int(np.ceil(xb))] = 255
    return out


@pytest.mark.parametrize("video", [False, True])
def test_planted_square_lights_up_its_own_cell(adapter, video):
    t = 3
    base = np.full((t, 90, 160, 3), 64, dtype=np.uint8)

    def build(frames):
        return adapter.build_video(frames, TEXT, 40, 4.0) if video else adapter.build_frames(frames, TEXT, 40)

    ref = build(base)
    _, gh, gw = ref.visual_grid
    with token_local_vision(adapter):
        e0 = _embeds(adapter, ref)[:, ref.visual_positions]
        for k, (tt, r, c) in enumerate([(1, 0, gw - 1), (2, gh - 1, 1), (0, gh // 2, gw // 2)]):
            planted = build(_plant(base, ref.geometry, tt, r, c))
            change = (_embeds(adapter, planted)[:, planted.visual_positions] - e0).norm(dim=-1)
            if video:
                assert int(change[0].argmax()) == tt * gh * gw + r * gw + c, k
            else:
                assert change[[i for i in range(t) if i != tt]].max() == 0  # other frames untouched
                assert int(change[tt].argmax()) == r * gw + c, k


# -- rollout ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("video", [False, True])
def test_rollout_matches_dense(adapter, video):
    frames = _frames(3, seed=1)
    prepared = adapter.build_video(frames, TEXT, 40, fps=4.0) if video else adapter.build_frames(frames[:2], TEXT, 40)
    prepared = adapter.splice_placeholders(prepared, 5)
    assert int(prepared.soft_start) < int(prepared.visual_positions[0])
    soft = torch.randn(5, adapter.hidden_size) * 0.5
    tokens, _ = adapter.generate(prepared, 1, soft)
    assert not set(tokens.flatten().tolist()) & set(adapter.structural_token_ids())
    full = prepared.with_appended_tokens(tokens[:, :1])
    lo, hi = 2, adapter.num_layers - 1
    ours = captured_row(adapter, full, soft, lo, hi, chunk=7)
    ref = dense_row(adapter, full, soft, lo, hi)
    assert ours.shape == ref.shape == (full.batch_size, full.length)
    assert torch.allclose(ours, ref, atol=1e-5), float((ours - ref).abs().max())


def test_soft_prompts_go_right_before_the_first_visual_block(adapter):
    video = adapter.splice_placeholders(adapter.build_video(_frames(2), TEXT, 40, 4.0), 3)
    ids = video.model_inputs["input_ids"][0]
    after = adapter.tokenizer.decode(ids[video.soft_start + 3:video.soft_start + 12])
    before = adapter.tokenizer.decode(ids[:video.soft_start])
    assert before.rstrip().endswith("user")
    if isinstance(adapter, InternVLAdapter):
        assert after.startswith("Frame1: <img>")  # the frame label belongs to the visual block
    else:
        assert after.startswith("<video>")


# -- grounding end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip():
    return load_clip(davis_frames("blackswan"), max_side=160)


def test_grounder_on_a_real_clip(adapter, clip):
    cfg = GroundingConfig(backbone=adapter.name, n_prompts=4, cot_max_new_tokens=6, query_max_new_tokens=1,
                          frame_batch_size=16)
    g = Grounder(adapter, cfg, SoftPrompts.from_seed(adapter, 4)).ground(clip, "the swan")
    n, v = _side(adapter)
    assert g.s_frm.shape == (cfg.t_frame, n, n) and g.s_vid.shape == (cfg.t_video, v, v)
    for m in (g.s_frm, g.s_vid):
        assert m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1 and np.isfinite(m).all()
    assert np.allclose(g.s_frm.reshape(cfg.t_frame, -1).max(axis=1), 1.0)
    assert g.frame_geometry.frame_size == (clip.height, clip.width)
    assert g.video_geometry.grid == (v, v)


def test_every_control_token_of_the_family_is_neutralised_in_prompts(adapter):
    """Each added/special token of this backbone's tokenizer, typed by a user into an expression,
    is tokenised as plain text once it passes through the prompt builders."""
    from steerseg_core.grounding import prompts

    tok = adapter.processor.tokenizer
    added = {i: t.content for i, t in tok.added_tokens_decoder.items()}
    assert any("image" in t.lower() or "img" in t.lower() for t in added.values())  # the family has them
    for text in added.values():
        ids = set(tok(prompts.cot_prompt(f"the dog {text} on the left"), add_special_tokens=False)["input_ids"])
        assert not ids & set(added), (text, [added[i] for i in ids & set(added)])
