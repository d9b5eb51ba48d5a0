"""steerseg_core.export: palette PNGs, zip, overlay MP4, COCO RLE, result JSON and export_all.

Masks are the real DAVIS-2016 ground truth (0/255 grayscale PNGs) read in place; results are
built by hand from the dataclasses in steerseg_core.types.
"""

from __future__ import annotations

import json
import math
import tempfile
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from steerseg_core import export as export_mod
from steerseg_core.errors import InputError
from steerseg_core.export import (
    RESULT_SCHEMA_KEYS,
    coco_rle_to_mask,
    davis_palette,
    export_all,
    masks_to_coco_rle,
    validate_result_json,
    write_coco_rle_json,
    write_overlay_mp4,
    write_palette_pngs,
    write_result_json,
    zip_dir,
)
from steerseg_core.types import Clip, CoTResult, GroundingResult, SegmentationResult, TokenGeometry, Tracklet

NF = 6  # frames used from each real clip


@pytest.fixture(scope="module")
def davis(data_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """First NF real blackswan frames (RGB) and ground-truth masks (bool), 480×854, with names."""
    root = data_dir / "davis2016"
    names = tuple(f"{i:05d}" for i in range(NF))
    frames = np.stack([np.asarray(Image.open(root / f"JPEGImages/480p/blackswan/{n}.jpg").convert("RGB")) for n in names])
    masks = np.stack([np.asarray(Image.open(root / f"Annotations/480p/blackswan/{n}.png")) for n in names])
    assert set(np.unique(masks)) == {0, 255}
    return frames, masks > 0, names


def real_masks(data_dir: Path, seq: str, count: int = 2) -> list[np.ndarray]:
    folder = data_dir / "davis2016" / "Annotations" / "480p" / seq
    return [np.asarray(Image.open(p)) > 0 for p in sorted(folder.glob("*.png"))[:count]]


def make_result(masks: np.ndarray, source: str = "/srv/uploads/secret/blackswan") -> SegmentationResult:
    t, h, w = masks.shape
    geom = TokenGeometry(grid=(4, 6), frame_size=(h, w))
    grounding = GroundingResult(
        expression="the black swan",
        cot=CoTResult(
            raw="Reasoning: The swan is the bird.\n\nAttributes: black, large, swimming",
            reasoning="The swan is the bird.",
            attributes=("black", "large", "swimming"),
            issues=("attributes had a trailing period",),
        ),
        query_word="swan",
        query_words_frames=("swan",) * 4,
        keyframes=np.array([0, 2, 3, t - 1], dtype=np.int64),
        video_frames=np.array([0, t - 1], dtype=np.int64),
        s_frm=np.random.default_rng(0).random((4, 4, 6), dtype=np.float32),
        s_vid=np.random.default_rng(1).random((2, 2, 3), dtype=np.float32),
        frame_geometry=geom,
        video_geometry=TokenGeometry(grid=(2, 3), frame_size=(h, w)),
        use_cot=True,
        use_soft_prompts=False,
        backbone="tiny-qwen2.5-vl",
        layers=(2, 3),
        layer_summaries={"frame": [0.25, 0.5], "video": [0.1, float("nan")]},
        timings={"cot_s": 0.5, "query_s": 0.25},
    )
    other = np.zeros_like(masks)
    other[:, :10, :10] = True
    tracklets = (
        Tracklet(source_keyframe=2, point_xy=(400.5, 200.25), masks=masks, s_frm=0.8, s_vid=float("nan"),
                 s=0.56, clicks=((1, 300.0, 150.0, 0), (3, 410.0, 220.0, 1))),
        Tracklet(source_keyframe=0, point_xy=(5.0, 5.0), masks=other, s_frm=-0.1, s_vid=0.2, s=float("inf")),
    )
    config = {"grounding": {"layers": (2, 3), "t_frame": 4}, "segment": {"alpha": 0.3}}
    return SegmentationResult(clip_source=source, expression="the black swan", grounding=grounding,
                              tracklets=tracklets, chosen=0, config=config,
                              timings={"sam2_s": 1.5, "scoring_s": float("nan")})


def read_png(path: Path) -> tuple[Image.Image, np.ndarray]:
    img = Image.open(path)
    img.load()
    return img, np.asarray(img)


def decode_mp4(path: Path) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream, frames


# --------------------------------------------------------------------------- palette PNGs


def test_davis_palette_is_the_voc_bit_pattern():
    pal = davis_palette()
    assert pal.shape == (256, 3) and pal.dtype == np.uint8
    expected = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128),
                (0, 128, 128), (128, 128, 128), (64, 0, 0), (192, 0, 0)]
    assert [tuple(c) for c in pal[:10].tolist()] == expected
    assert tuple(pal[255]) == (224, 224, 192)  # VOC's "void" colour
    assert len({tuple(c) for c in pal.tolist()}) == 256


def test_palette_pngs_from_real_masks(tmp_path, davis):
    _, masks, names = davis
    paths = write_palette_pngs(masks, tmp_path / "masks", names)
    assert [p.name for p in paths] == [f"{n}.png" for n in names]
    for path, mask in zip(paths, masks, strict=True):
        img, arr = read_png(path)
        assert img.mode == "P" and img.size == (854, 480)
        assert img.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        assert set(np.unique(arr)) <= {0, 1}
        np.testing.assert_array_equal(arr, mask.astype(np.uint8))
        # Rendered through the palette, the object is DAVIS object-1 red.
        rgb = np.asarray(img.convert("RGB"))
        assert tuple(rgb[mask][0]) == (128, 0, 0) and tuple(rgb[~mask][0]) == (0, 0, 0)


def test_palette_pngs_default_names_object_id_and_label_maps(tmp_path):
    masks = np.zeros((3, 5, 7), bool)
    masks[1, 2, 3] = True
    paths = write_palette_pngs(masks, tmp_path / "a", object_id=3)
    assert [p.name for p in paths] == ["00000.png", "00001.png", "00002.png"]
    assert read_png(paths[1])[1][2, 3] == 3
    labels = np.arange(3 * 5 * 7).reshape(3, 5, 7).astype(np.uint8) % 5
    for p, lab in zip(write_palette_pngs(labels, tmp_path / "b"), labels, strict=True):
        np.testing.assert_array_equal(read_png(p)[1], lab)


def test_palette_pngs_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        write_palette_pngs(np.zeros((5, 7), bool), tmp_path)
    with pytest.raises(ValueError, match="bool or integer"):
        write_palette_pngs(np.zeros((1, 5, 7), np.float32), tmp_path)
    with pytest.raises(ValueError, match="0..255"):
        write_palette_pngs(np.full((1, 2, 2), 300, np.int32), tmp_path)
    with pytest.raises(ValueError, match="2 names for 1 frames"):
        write_palette_pngs(np.zeros((1, 2, 2), bool), tmp_path, names=["a", "b"])


def test_palette_png_names_cannot_escape(tmp_path):
    out = tmp_path / "deep" / "masks"
    names = ["../../x", "..", "/etc/passwd", "a/b", "..\\..\\win", ".hidden", "x", "ok name!"]
    paths = write_palette_pngs(np.zeros((len(names), 2, 2), bool), out, names)
    assert len({p.name for p in paths}) == len(names)  # nothing overwritten
    for p in paths:
        assert p.parent == out and p.exists() and not p.name.startswith(".")
    everything = sorted(q.relative_to(tmp_path).as_posix() for q in tmp_path.rglob("*") if q.is_file())
    assert all(q.startswith("deep/masks/") for q in everything), everything
    assert [p.stem for p in paths][:4] == ["x", "00001", "passwd", "b"]


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9),
                  elements=st.integers(0, 6)))
def test_palette_png_round_trip_property(labels):
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_palette_pngs(labels, Path(tmp))
        back = np.stack([read_png(p)[1] for p in paths])
    np.testing.assert_array_equal(back, labels)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_palette_pngs(labels > 2, Path(tmp))
        back = np.stack([read_png(p)[1] for p in paths])
    np.testing.assert_array_equal(back, (labels > 2).astype(np.uint8))


# --------------------------------------------------------------------------- zip


def test_zip_dir(tmp_path, davis):
    _, masks, names = davis
    src = tmp_path / "masks"
    write_palette_pngs(masks[:3], src, names[:3])
    (src / "sub").mkdir()
    (src / "sub" / "note.txt").write_text("x")
    (src / "link.png").symlink_to(src / "00000.png")
    out = zip_dir(src, src / "masks.zip")  # zipping into the folder itself must not recurse
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["masks/00000.png", "masks/00001.png", "masks/00002.png", "masks/sub/note.txt"]
        assert zf.read("masks/00001.png") == (src / "00001.png").read_bytes()
    assert not [p for p in src.iterdir() if p.name.startswith(".")]  # no temp file left
    with pytest.raises(ValueError, match="not a folder"):
        zip_dir(tmp_path / "missing", tmp_path / "z.zip")


# --------------------------------------------------------------------------- overlay MP4


def test_overlay_mp4_real_frames(tmp_path, davis):
    frames, masks, _ = davis
    points = {1: [(100.0, 100.0, 1), (700.0, 400.0, 0)]}
    path = write_overlay_mp4(frames, masks, tmp_path / "overlay.mp4", fps=24.0, points=points)
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: browsers can start playing at once
    stream, decoded = decode_mp4(path)
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert float(stream.average_rate) == 24.0
    assert len(decoded) == NF and decoded[0].shape == (480, 854, 3)
    # Inside the mask the frame is tinted red; far from it the frame is unchanged (up to H.264).
    inside = masks[0] & (np.abs(np.diff(masks[0].astype(int), axis=0, prepend=0)) == 0)
    d0, f0 = decoded[0].astype(int), frames[0].astype(int)
    assert (d0[inside][:, 0] - d0[inside][:, 2]).mean() > (f0[inside][:, 0] - f0[inside][:, 2]).mean() + 40
    assert np.abs(d0[:40, :40] - f0[:40, :40]).mean() < 8
    # Click markers: positive green, negative red.
    g = decoded[1][100, 100].astype(int)
    r = decoded[1][400, 700].astype(int)
    assert g[1] > 150 and g[0] < 100 and r[0] > 150 and r[1] < 100


def test_overlay_mp4_odd_size_and_fps(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 55, 97, 3), dtype=np.uint8)
    masks = np.zeros((4, 55, 97), bool)
    masks[:, 10:30, 20:50] = True
    path = write_overlay_mp4(frames, masks, tmp_path / "sub" / "o.mp4", fps=29.97)
    stream, decoded = decode_mp4(path)
    assert len(decoded) == 4 and decoded[0].shape == (56, 98, 3)
    assert float(stream.average_rate) == pytest.approx(29.97, abs=1e-3)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["o.mp4"]


def test_overlay_mp4_refuses_bad_input(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="do not match"):
        write_overlay_mp4(frames, np.zeros((3, 8, 8), bool), tmp_path / "a.mp4", 10)
    with pytest.raises(ValueError, match="fps"):
        write_overlay_mp4(frames, np.zeros((2, 8, 8), bool), tmp_path / "a.mp4", float("nan"))
    with pytest.raises(ValueError, match="uint8"):
        write_overlay_mp4(frames.astype(np.float32), np.zeros((2, 8, 8), bool), tmp_path / "a.mp4", 10)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- COCO RLE


@pytest.mark.parametrize(
    ("mask", "counts"),
    [
        ([[0, 1], [1, 1]], "13"),  # column-major: 0,1 | 1,1 → runs [1, 3]
        ([[1, 1], [1, 1]], "04"),  # starts with a zero-length run of zeros
        ([[0, 0], [0, 0]], "4"),
        ([[0] * 100], "T3"),  # 100 = 0b11_00100 → two 5-bit groups, the first with the "more" bit
        ([[0, 0, 0] + [1] * 10 + [0, 0, 1]], "3:2G"),  # runs [3, 10, 2, 1]; the 4th is stored as 1 − 10
    ],
)
def test_coco_rle_hand_computed(mask, counts):
    mask = np.array(mask, bool)
    rle = masks_to_coco_rle(mask)
    assert rle == {"size": list(mask.shape), "counts": counts}
    np.testing.assert_array_equal(coco_rle_to_mask(rle), mask)


def test_coco_rle_round_trip_real_masks(data_dir):
    for seq in ("blackswan", "bmx-trees", "car-roundabout", "libby"):
        for mask in real_masks(data_dir, seq):
            rle = masks_to_coco_rle(mask)
            assert rle["size"] == [480, 854] and isinstance(rle["counts"], str)
            back = coco_rle_to_mask(rle)
            assert back.dtype == bool and back.flags["C_CONTIGUOUS"]
            np.testing.assert_array_equal(back, mask)
            # bytes counts (as pycocotools gives them) decode the same
            np.testing.assert_array_equal(coco_rle_to_mask({**rle, "counts": rle["counts"].encode()}), mask)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own numpy-2 notice
def test_coco_rle_matches_pycocotools(data_dir):
    mask_utils = pytest.importorskip("pycocotools.mask")
    for seq in ("blackswan", "cows", "kite-surf"):
        for mask in real_masks(data_dir, seq):
            ours = masks_to_coco_rle(mask)
            ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert ours["counts"] == ref["counts"].decode() and ours["size"] == ref["size"]
            np.testing.assert_array_equal(coco_rle_to_mask({**ref}), mask_utils.decode(ref).astype(bool))
            assert int(mask_utils.area(ref)) == int(mask.sum())


def test_coco_rle_uncompressed_and_invalid():
    np.testing.assert_array_equal(coco_rle_to_mask({"size": [2, 2], "counts": [1, 2, 1]}),
                                  np.array([[0, 1], [1, 0]], bool))
    for bad, match in [
        ({"size": [2, 2], "counts": "5"}, "cover 5 pixels"),
        ({"size": [2, 2], "counts": "1\x7f"}, "invalid character"),
        ({"size": [2, 2], "counts": "T"}, "truncated"),
        ({"counts": "4"}, "not a COCO RLE"),
    ]:
        with pytest.raises(InputError, match=match):
            coco_rle_to_mask(bad)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        masks_to_coco_rle(np.zeros((1, 2, 2), bool))


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=16)))
def test_coco_rle_round_trip_property(mask):
    rle = masks_to_coco_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert all(48 <= ord(c) < 112 for c in rle["counts"])
    np.testing.assert_array_equal(coco_rle_to_mask(rle), mask)
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        return
    if mask.size:
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def test_write_coco_rle_json(tmp_path, davis):
    _, masks, names = davis
    path = write_coco_rle_json(masks, tmp_path / "rle.json", names)
    data = json.loads(path.read_text())
    assert (data["format"], data["height"], data["width"], data["num_frames"]) == ("coco_rle", 480, 854, NF)
    assert [f["name"] for f in data["frames"]] == list(names)
    for f, mask in zip(data["frames"], masks, strict=True):
        assert f["area"] == int(mask.sum())
        np.testing.assert_array_equal(coco_rle_to_mask(f["segmentation"]), mask)


# --------------------------------------------------------------------------- result JSON


def strict_load(path: Path) -> dict:
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


def test_result_json(tmp_path):
    masks = np.zeros((4, 6, 8), bool)
    masks[1:3, 2:4, 2:6] = True
    result = make_result(masks)
    path = write_result_json(result, tmp_path / "result.json", extra={"note": "ünïcode ✓", "score": float("nan")})
    data = strict_load(path)
    validate_result_json(data)
    assert set(RESULT_SCHEMA_KEYS) <= set(data)
    assert data["expression"] == "the black swan" and data["query_word"] == "swan"
    assert data["reasoning"] == "The swan is the bird." and data["attributes"] == ["black", "large", "swimming"]
    assert data["cot_raw"].startswith("Reasoning:") and data["cot_issues"] == ["attributes had a trailing period"]
    assert data["keyframes"] == [0, 2, 3, 3] and data["video_frames"] == [0, 3]
    assert data["chosen"] == 0 and data["backbone"] == "tiny-qwen2.5-vl"
    assert data["use_cot"] is True and data["use_soft_prompts"] is False and data["soft_prompts"] == {
        "source": "none", "trained": False, "steps": None, "trained_with_cot": None}
    t0, t1 = data["tracklets"]
    assert t0["source_keyframe"] == 2 and t0["point_xy"] == [400.5, 200.25]
    assert (t0["s_frm"], t0["s_vid"], t0["s"]) == (0.8, None, 0.56)  # NaN → null
    assert t1["s"] is None  # inf → null
    assert t0["clicks"] == [[1, 300.0, 150.0, 0], [3, 410.0, 220.0, 1]]
    assert t0["mask_area"] == {"frames": 4, "frames_with_mask": 2, "first_frame": 1, "last_frame": 2,
                               "mean_area_px": 4.0, "max_area_px": 8}
    assert data["timings"] == {"grounding": {"cot_s": 0.5, "query_s": 0.25},
                               "segmentation": {"sam2_s": 1.5, "scoring_s": None}}
    assert data["config"]["grounding"]["layers"] == [2, 3]
    assert set(data["versions"]) >= {"steerseg", "torch", "transformers", "sam2", "gradio"}
    assert data["versions"]["torch"]  # installed here
    assert data["layer_summaries"]["video"] == [0.1, None]
    assert data["extra"] == {"note": "ünïcode ✓", "score": None}
    assert data["clip"] == "blackswan" and "/srv" not in path.read_text()  # no server paths
    from datetime import datetime

    created = datetime.fromisoformat(data["created"])
    assert created.utcoffset().total_seconds() == 0


def test_result_json_without_cot(tmp_path):
    masks = np.ones((2, 3, 3), bool)
    base = make_result(masks)
    from dataclasses import replace

    result = replace(base, grounding=replace(base.grounding, cot=None, use_cot=False))
    data = strict_load(write_result_json(result, tmp_path / "r.json"))
    assert data["cot_raw"] is None and data["reasoning"] == "" and data["attributes"] == [] and data["cot_issues"] == []


def test_validate_result_json_rejects_bad_data(tmp_path):
    good = strict_load(write_result_json(make_result(np.ones((2, 3, 3), bool)), tmp_path / "r.json"))
    validate_result_json(good)
    cases = [
        ({k: v for k, v in good.items() if k != "query_word"}, "missing key 'query_word'"),
        ({**good, "keyframes": [0, "2"]}, "'keyframes' must be a list of integers"),
        ({**good, "chosen": 5}, "'chosen' = 5 is not a tracklet index"),
        ({**good, "chosen": True}, "'chosen' must be an integer"),
        ({**good, "created": "yesterday"}, "'created' is not an ISO timestamp"),
        ({**good, "timings": {"grounding": {}}}, "'segmentation'"),
        ({**good, "tracklets": [{"source_keyframe": 0}]}, "tracklet 0 is missing 'point_xy'"),
        ({**good, "tracklets": [{**good["tracklets"][0], "s": "high"}]}, "'s' must be a number or null"),
        ({**good, "versions": {"torch": 2}}, "'versions'"),
    ]
    for data, match in cases:
        with pytest.raises(ValueError, match=match):
            validate_result_json(data)
    with pytest.raises(ValueError, match="must be an object"):
        validate_result_json([])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- export_all


def hidden_leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_export_all_real_clip(tmp_path, davis):
    frames, masks, names = davis
    clip = Clip(frames=frames, fps=24.0, source="/srv/x/blackswan", frame_names=names)
    out = tmp_path / "run1"
    paths = export_all(make_result(masks), clip, out)
    assert paths == {"masks_dir": out / "masks", "zip": out / "masks.zip", "overlay": out / "overlay.mp4",
                     "result_json": out / "result.json", "coco_rle": out / "masks_coco_rle.json"}
    assert sorted(p.name for p in out.iterdir()) == ["masks", "masks.zip", "masks_coco_rle.json", "overlay.mp4", "result.json"]
    pngs = sorted(paths["masks_dir"].iterdir())
    assert [p.name for p in pngs] == [f"{n}.png" for n in names]
    for p, mask in zip(pngs, masks, strict=True):
        img, arr = read_png(p)
        assert img.mode == "P" and img.size == (854, 480)
        np.testing.assert_array_equal(arr, mask.astype(np.uint8))
    with zipfile.ZipFile(paths["zip"]) as zf:
        assert zf.namelist() == [f"masks/{n}.png" for n in names]
    _, decoded = decode_mp4(paths["overlay"])
    assert len(decoded) == NF and decoded[0].shape == (480, 854, 3)
    # the chosen tracklet's keyframe point (positive, green) is drawn on its keyframe
    px = decoded[2][200, 400].astype(int)
    assert px[1] > 150 and px[0] < 100
    data = strict_load(paths["result_json"])
    validate_result_json(data)
    assert data["extra"]["fps"] == 24.0
    rle = json.loads(paths["coco_rle"].read_text())
    np.testing.assert_array_equal(coco_rle_to_mask(rle["frames"][3]["segmentation"]), masks[3])
    assert hidden_leftovers(tmp_path) == [] and hidden_leftovers(out) == []


def test_export_all_replaces_an_older_export(tmp_path):
    out = tmp_path / "out"
    frames = np.zeros((3, 8, 10, 3), np.uint8)
    masks = np.zeros((3, 8, 10), bool)
    masks[:, 2:5, 3:7] = True
    export_all(make_result(masks), Clip(frames, 10.0, "a"), out)
    (out / "user_notes.txt").write_text("keep me")
    export_all(make_result(masks[:2]), Clip(frames[:2], 10.0, "b"), out)
    assert sorted(p.name for p in (out / "masks").iterdir()) == ["00000.png", "00001.png"]  # no stale 00002
    assert (out / "user_notes.txt").read_text() == "keep me"
    assert hidden_leftovers(tmp_path) == [] and hidden_leftovers(out) == []


def test_export_all_failure_leaves_nothing(tmp_path, monkeypatch):
    frames = np.zeros((2, 8, 10, 3), np.uint8)
    masks = np.ones((2, 8, 10), bool)

    def broken(*_a, **_k):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(export_mod, "write_overlay_mp4", broken)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        export_all(make_result(masks), Clip(frames, 10.0, "a"), tmp_path / "new")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.undo()
    old = tmp_path / "old"
    export_all(make_result(masks), Clip(frames, 10.0, "a"), old)
    before = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}
    monkeypatch.setattr(export_mod, "write_coco_rle_json", broken)
    with pytest.raises(RuntimeError):
        export_all(make_result(~masks), Clip(frames, 10.0, "a"), old)
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()} == before
    assert hidden_leftovers(tmp_path) == []


def test_export_all_sanitises_frame_names(tmp_path):
    names = ("../../evil", "../../../etc/cron.d/x", "fine")
    frames = np.zeros((3, 4, 6, 3), np.uint8)
    out = tmp_path / "a" / "out"
    paths = export_all(make_result(np.ones((3, 4, 6), bool)), Clip(frames, 5.0, "a", names), out)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert all(f.startswith("a/out/") for f in files), files
    assert sorted(p.name for p in paths["masks_dir"].iterdir()) == ["evil.png", "fine.png", "x.png"]
    with zipfile.ZipFile(paths["zip"]) as zf:
        assert all(n.startswith("masks/") and ".." not in n for n in zf.namelist())


def test_export_all_refuses_mismatched_masks(tmp_path):
    clip = Clip(np.zeros((3, 4, 6, 3), np.uint8), 5.0, "a")
    with pytest.raises(ValueError, match="do not match the clip"):
        export_all(make_result(np.ones((2, 4, 6), bool)), clip, tmp_path / "o")
    assert not (tmp_path / "o").exists() and hidden_leftovers(tmp_path) == []


def test_nan_fps_falls_back(tmp_path):
    clip = Clip(np.zeros((2, 4, 6, 3), np.uint8), math.nan, "a")
    paths = export_all(make_result(np.ones((2, 4, 6), bool)), clip, tmp_path / "o")
    stream, decoded = decode_mp4(paths["overlay"])
    assert len(decoded) == 2 and float(stream.average_rate) == 24.0
