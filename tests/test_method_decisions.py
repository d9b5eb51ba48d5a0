"""The steps that decide which object the method picks, checked against numbers worked out here.

Scoring from SAM2's stored logits (not the binary masks; clipped; padding cells of a letterboxed
grid as background), NMS inside candidate generation with NMS *on* (the higher predicted IoU
survives, empty keyframe masks never become candidates), and the benchmark rule for dataset means
(over objects, not over sequences).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steerseg_core.config import SegmentConfig
from steerseg_core.eval.folder_eval import SequenceScores, summarize_sequences
from steerseg_core.segment import score_tracklets
from steerseg_core.types import Clip, GroundingResult, TokenGeometry, Tracklet

CLIP = 20.0
ALPHA = 0.3
T = 6
KEYFRAMES = np.array([0, 2, 5])
VIDEO_FRAMES = np.array([1, 3, 4, 5])


def _grounding(s_frm, s_vid, frame_geometry, video_geometry) -> GroundingResult:
    return GroundingResult(
        expression="the object", cot=None, query_word="object", query_words_frames=(),
        keyframes=KEYFRAMES, video_frames=VIDEO_FRAMES,
        s_frm=np.asarray(s_frm, dtype=np.float32), s_vid=np.asarray(s_vid, dtype=np.float32),
        frame_geometry=frame_geometry, video_geometry=video_geometry,
        use_cot=False, use_soft_prompts=False, backbone="test", layers=(0, 0))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def _blocks(x: np.ndarray, by: int, bx: int) -> np.ndarray:
    """Mean over non-overlapping by × bx pixel blocks: (n, H, W) → (n, H/by, W/bx)."""
    n, h, w = x.shape
    return x.reshape(n, h // by, by, w // bx, bx).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def disagreeing_tracklet() -> Tracklet:
    """Logits (8 × 12 per frame) whose pattern is NOT their own threshold's: a soft ramp plus
    extreme values (±1e4) the scorer must clip; masks are a fixed box unrelated to the logits."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:8, 0:12]
    logits = np.stack([(xx - 2.0 * t) * 3.0 - yy + rng.normal(0, 2, (8, 12)) for t in range(T)])
    logits[:, 0, 0] = 1e4
    logits[:, 7, 11] = -1e4
    logits = logits.astype(np.float32)
    masks = np.zeros((T, 16, 24), dtype=bool)
    masks[:, 4:12, 2:8] = True
    return Tracklet(source_keyframe=0, point_xy=(0.0, 0.0), masks=masks, logits=logits)


def test_scores_come_from_clipped_logits_not_masks(disagreeing_tracklet):
    rng = np.random.default_rng(1)
    s_frm, s_vid = rng.random((3, 4, 6)), rng.random((4, 2, 3))
    g = _grounding(s_frm, s_vid, TokenGeometry(grid=(4, 6), frame_size=(16, 24)),
                   TokenGeometry(grid=(2, 3), frame_size=(16, 24)))
    (scored,) = score_tracklets([disagreeing_tracklet], g, ALPHA, CLIP)
    clipped = np.clip(disagreeing_tracklet.logits.astype(np.float64), -CLIP, CLIP)
    exp_frm = _corr(_blocks(clipped[KEYFRAMES], 2, 2), s_frm)
    exp_vid = _corr(_blocks(clipped[VIDEO_FRAMES], 4, 4), s_vid)
    assert scored.s_frm == pytest.approx(exp_frm, abs=1e-5)
    assert scored.s_vid == pytest.approx(exp_vid, abs=1e-5)
    assert scored.s == pytest.approx(ALPHA * exp_frm + (1 - ALPHA) * exp_vid, abs=1e-5)
    # the fixture tells the paths apart: the masks, or the unclipped logits, give other scores
    from_masks = np.where(disagreeing_tracklet.masks, CLIP, -CLIP).astype(np.float64)
    assert abs(_corr(_blocks(from_masks[KEYFRAMES], 4, 4), s_frm) - exp_frm) > 0.05
    raw = disagreeing_tracklet.logits.astype(np.float64)
    assert abs(_corr(_blocks(raw[KEYFRAMES], 2, 2), s_frm) - exp_frm) > 0.05


def test_extreme_logits_rank_like_their_clipped_values():
    """A ±1e6 logit on one cell must not decide the ranking: after clipping, the tracklet that
    covers the attended region wins."""
    att = np.zeros((3, 4, 6))
    att[:, 1:3, 1:3] = 1.0
    g = _grounding(att, np.tile(att[:1, ::2, ::2], (4, 1, 1)),
                   TokenGeometry(grid=(4, 6), frame_size=(8, 12)), TokenGeometry(grid=(2, 3), frame_size=(8, 12)))
    good = np.full((T, 4, 6), -CLIP, dtype=np.float32)
    good[:, 1:3, 1:3] = CLIP
    spiky = np.full((T, 4, 6), -CLIP, dtype=np.float32)
    spiky[:, 1, 1] = 1e6  # one huge cell inside the region, the rest of the region empty
    spiky[:, 3, 5] = 5.0
    masks = np.zeros((T, 8, 12), dtype=bool)
    scored = score_tracklets([Tracklet(0, (0.0, 0.0), masks, logits=spiky),
                              Tracklet(0, (0.0, 0.0), masks, logits=good)], g, ALPHA, CLIP)
    assert scored[1].s_frm == pytest.approx(1.0, abs=1e-6)
    exp = _corr(np.clip(spiky[KEYFRAMES], -CLIP, CLIP), att)  # the logits are on the token grid already
    assert scored[0].s_frm == pytest.approx(exp, abs=1e-5)
    assert scored[0].s_frm < scored[1].s_frm


def test_letterbox_padding_cells_read_as_background(disagreeing_tracklet):
    """content_box rows 1..5 of a 6 × 6 grid show the image; rows 0 and 5 are padding and must
    read as −logit_clip (not 0, not image content)."""
    rng = np.random.default_rng(2)
    fgeo = TokenGeometry(grid=(6, 6), frame_size=(16, 24), content_box=(1.0, 0.0, 5.0, 6.0))
    vgeo = TokenGeometry(grid=(3, 3), frame_size=(16, 24), content_box=(0.5, 0.0, 2.5, 3.0))
    s_frm = rng.random((3, 6, 6))
    s_vid = rng.random((4, 3, 3))
    s_frm[:, 0] += 1.5  # attention on the padding rows: scoring padding as 0 would change the sign
    g = _grounding(s_frm, s_vid, fgeo, vgeo)
    (scored,) = score_tracklets([disagreeing_tracklet], g, ALPHA, CLIP)
    clipped = np.clip(disagreeing_tracklet.logits.astype(np.float64), -CLIP, CLIP)
    grid = np.full((3, 6, 6), -CLIP)
    grid[:, 1:5, :] = _blocks(clipped[KEYFRAMES], 2, 2)
    assert scored.s_frm == pytest.approx(_corr(grid, s_frm), abs=1e-5)
    # video grid: half-cell padding rows; the image spans rows 0.5..2.5 → each cell of rows 0 and
    # 2 is half padding, half the image's top / bottom quarter
    quarters = _blocks(clipped[VIDEO_FRAMES], 2, 4)  # (4, 4, 3): image quarters by row
    vgrid = np.empty((4, 3, 3))
    vgrid[:, 0] = 0.5 * (-CLIP) + 0.5 * quarters[:, 0]
    vgrid[:, 1] = 0.5 * (quarters[:, 1] + quarters[:, 2])
    vgrid[:, 2] = 0.5 * quarters[:, 3] + 0.5 * (-CLIP)
    assert scored.s_vid == pytest.approx(_corr(vgrid, s_vid), abs=1e-5)
    zero_pad = grid.copy()
    zero_pad[:, [0, 5]] = 0.0
    assert abs(_corr(zero_pad, s_frm) - scored.s_frm) > 0.05


# ------------------------------------------------------------------------------------------------
# NMS inside candidate generation (tiny random-weight SAM2 on a real DAVIS clip)

DAVIS = Path(__file__).resolve().parent / "data" / "davis2016" / "JPEGImages" / "480p"
SIZE = (240, 427)


def _nms_by_hand(masks: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Greedy mask NMS written out: best predicted IoU first, drop overlaps above thr."""
    flat = masks.reshape(len(masks), -1)
    kept: list[int] = []
    for i in sorted(range(len(masks)), key=lambda k: (-scores[k], k)):
        ok = True
        for j in kept:
            union = np.logical_or(flat[i], flat[j]).sum()
            iou = np.logical_and(flat[i], flat[j]).sum() / union if union else 1.0
            if iou > thr:
                ok = False
        if ok:
            kept.append(i)
    return kept


def test_candidate_stage_with_nms_on(tmp_path_factory, monkeypatch):
    """Keyframe 1's mask is replaced by a copy of keyframe 0's with a higher predicted IoU, and
    keyframe 2's by an empty mask with the highest predicted IoU (planted outputs, so the test
    knows the answer): NMS at 0.7 must keep keyframe 1 over 0 and never keep the empty one."""
    import torch

    from steerseg_core.segment import build_sam2, generate_candidates
    from steerseg_core.segment import tracklets as tracklets_module
    from steerseg_core.testing.tiny_sam2 import make_tiny_sam2

    backend = build_sam2(str(make_tiny_sam2(tmp_path_factory.mktemp("sam2") / "tiny", image_size=128)),
                         device="cpu")
    files = sorted((DAVIS / "blackswan").glob("*.jpg"))[:6]
    frames = np.stack([np.array(Image.open(f).convert("RGB").resize(SIZE[::-1], Image.BILINEAR)) for f in files])
    clip = Clip(frames=frames, fps=24.0, source="davis2016/blackswan", frame_names=tuple(f.stem for f in files))
    keyframes = np.array([0, 2, 3, 5])
    rng = np.random.default_rng(3)
    g = GroundingResult(
        expression="the swan", cot=None, query_word="swan", query_words_frames=(), keyframes=keyframes,
        video_frames=np.arange(0, 6, 2), s_frm=rng.random((4, 9, 15)).astype(np.float32),
        s_vid=rng.random((3, 5, 8)).astype(np.float32), frame_geometry=TokenGeometry(grid=(9, 15), frame_size=SIZE),
        video_geometry=TokenGeometry(grid=(5, 8), frame_size=SIZE), use_cot=False, use_soft_prompts=False,
        backbone="test", layers=(0, 0))

    real = tracklets_module.segment_keyframes
    seen = {}

    def planted(*args, **kwargs):
        key = real(*args, **kwargs)
        low = key.low_res.clone()
        if not (low[0] > 0).any():
            low[0] = -30.0
            low[0, 0, 10:20, 10:20] = 5.0
        low[1] = low[0]  # the same object seen from keyframe 1
        low[2] = -30.0  # SAM2 says "absent" on keyframe 2
        if not (low[3] > 0).any():
            low[3] = -30.0
            low[3, 0, :8, :8] = 5.0  # a small real object elsewhere
        iou = torch.tensor([0.40, 0.90, 0.99, 0.50], dtype=key.iou.dtype)
        key = dataclasses.replace(key, low_res=low, iou=iou)
        seen["key"] = key
        return key

    monkeypatch.setattr(tracklets_module, "segment_keyframes", planted)
    cands = generate_candidates(backend, clip, g, SegmentConfig(nms_iou=0.7))
    key = seen["key"]
    masks = (key.low_res[:, 0] > 0).numpy()
    present = [i for i in range(4) if masks[i].any()]
    expected = sorted(present[i] for i in _nms_by_hand(masks[present], key.iou.numpy()[present], 0.7))
    assert 1 in expected and 0 not in expected and 2 not in expected  # what the plant guarantees
    assert [c.source_keyframe for c in cands] == [int(keyframes[i]) for i in expected]
    for c in cands:  # a kept candidate is really tracked: its keyframe mask is not empty
        assert c.masks[c.source_keyframe].any()


# ------------------------------------------------------------------------------------------------
# Dataset means: over objects (davis2017-evaluation), not over sequences


def test_dataset_means_are_over_objects_not_sequences():
    """Sequence A has two objects, B one. davis2017-evaluation averages the 3 objects; a mean of
    the two sequence means would differ. Numbers worked out by hand."""
    a = SequenceScores("A", ["1", "2", "3", "4"],
                       j={"1": np.array([1.0, 1.0, 1.0, 1.0]), "2": np.array([0.0, 0.0, 0.0, 0.0])},
                       f={"1": np.array([1.0, 1.0, 1.0, 1.0]), "2": np.array([0.0, 0.0, 0.0, 0.0])})
    b = SequenceScores("B", ["1", "2", "3", "4"], j={"1": np.array([0.8, 0.8, 0.8, 0.8])},
                       f={"1": np.array([0.2, 0.2, 0.2, 0.2])})
    report = summarize_sequences([a, b], "semi-supervised")
    # objects: J = 1, 0, 0.8 → 0.6; F = 1, 0, 0.2 → 0.4 (sequences would give 0.65 and 0.35)
    assert report["J-Mean"] == pytest.approx(0.6)
    assert report["F-Mean"] == pytest.approx(0.4)
    assert report["J&F-Mean"] == pytest.approx(0.5)
    assert report["J-Recall"] == pytest.approx(2 / 3)  # J > 0.5: objects A/1 and B/1
    assert report["F-Recall"] == pytest.approx(1 / 3)
    assert report["num_objects"] == 3 and report["num_sequences"] == 2
    # per sequence: the mean over its own objects
    assert report["sequences"]["A"]["J-Mean"] == pytest.approx(0.5)
    assert report["sequences"]["A"]["objects"]["2"]["F-Mean"] == pytest.approx(0.0)
    assert report["sequences"]["B"]["J&F-Mean"] == pytest.approx(0.5)


def test_revos_overall_is_the_mean_of_its_two_groups(tmp_path):
    """ReVOS official script: overall = mean(referring, reasoning), not the mean over expressions.
    Two referring expressions at 1.0 and one reasoning at 0.0 → 0.5 (the pooled mean is 2/3)."""
    from steerseg_core.datasets import open_benchmark
    from steerseg_core.eval.summaries import summarize

    from .test_eval_benchmarks import build_revos

    bench = open_benchmark("revos", build_revos(tmp_path / "revos"))
    records = [{"key": "a", "group": "referring", "J": 1.0, "F": 1.0},
               {"key": "b", "group": "referring", "J": 1.0, "F": 0.8},
               {"key": "c", "group": "reasoning", "J": 0.0, "F": 0.2},
               {"key": "d", "group": "no-target", "J": None, "F": None}]
    groups = {g["name"]: g for g in summarize(bench, records)["groups"]}
    assert groups["referring"]["J"] == pytest.approx(1.0) and groups["referring"]["F"] == pytest.approx(0.9)
    assert groups["reasoning"]["J&F"] == pytest.approx(0.1)
    assert groups["overall"]["J"] == pytest.approx(0.5) and groups["overall"]["F"] == pytest.approx(0.55)
    assert groups["overall"]["J&F"] == pytest.approx(0.525) and groups["overall"]["n"] == 3


def test_refdavis_overall_is_the_mean_of_annotator_runs(tmp_path):
    """Ref-DAVIS17: each annotator run scored on its own, the headline their mean (unequal
    numbers of expressions per run must not weigh the runs)."""
    from steerseg_core.datasets import open_benchmark
    from steerseg_core.datasets.refdavis import ANNOTATORS
    from steerseg_core.eval.summaries import summarize

    from .test_eval_benchmarks import build_refdavis

    bench = open_benchmark("refdavis", build_refdavis(tmp_path / "rd"))
    keys = [e.key for e in bench.expressions()]
    a, b = ANNOTATORS[0], ANNOTATORS[1]
    records = [{"key": keys[0], "group": a, "J": 1.0, "F": 1.0},
               {"key": keys[1], "group": a, "J": 1.0, "F": 1.0},
               {"key": keys[2], "group": b, "J": 0.0, "F": 0.4}]
    groups = {g["name"]: g for g in summarize(bench, records)["groups"]}
    assert groups["overall"]["J"] == pytest.approx(0.5) and groups["overall"]["F"] == pytest.approx(0.7)
    assert groups["overall"]["J&F"] == pytest.approx(0.6)
