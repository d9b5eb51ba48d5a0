"""Training data readers: real Ref-YouTube-VOS expression files, the train layout with bad data,
the generic folder layout on real DAVIS clips, and the synthetic generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steerseg_core.errors import InputError
from steerseg_core.testing.synthetic import COLOURS, make_synthetic_dataset, palette
from steerseg_core.training import data as D

from .conftest import DAVIS_FIXTURE_FRAMES, REFYTVOS


@pytest.fixture(scope="module")
def ytvos_valid():
    root = REFYTVOS
    meta = D.parse_meta_expressions(root / "valid" / "meta_expressions.json")
    objects = D.parse_object_expressions(root / "original_release" / "meta_expressions_valid.json")
    return meta, objects


def test_real_valid_expressions_parse_and_get_object_ids(ytvos_valid):
    meta, objects = ytvos_valid
    assert len(meta) == 507
    assert sum(len(v["expressions"]) for v in meta.values()) == 2096
    assert sum(len(v) for v in objects.values()) == 1063
    # the benchmark file has no obj_id ...
    assert all(oid is None for v in meta.values() for _, _, oid in v["expressions"])
    joined = D.attach_object_ids(meta, objects)
    # ... and the object-level file gives every expression one
    assert all(oid is not None for v in joined.values() for _, _, oid in v["expressions"])
    dog = joined["0062f687f1"]
    assert dog["frames"][:3] == ["00000", "00005", "00010"]
    assert [(e, o) for e, _, o in dog["expressions"]] == [("0", 1), ("1", 1), ("2", 2), ("3", 2), ("4", 3), ("5", 3)]
    assert dog["expressions"][2][1] == "a puppy dog on the left drinking milk from its mother"
    assert dog["categories"][1] == "dog"


def _write_train_layout(root: Path, meta: dict, objects: dict, videos: list[str], size=(36, 48)) -> dict:
    """Ref-YouTube-VOS train layout with the real expressions of ``videos`` (object ids from the
    object-level file) and small generated frames + palette masks where each object is a block."""
    joined = D.attach_object_ids({v: meta[v] for v in videos}, objects)
    out = {"videos": {}}
    pal = palette()
    h, w = size
    for vid in videos:
        frames = joined[vid]["frames"][:6]
        oids = sorted({o for _, _, o in joined[vid]["expressions"]})
        for t, name in enumerate(frames):
            (root / "JPEGImages" / vid).mkdir(parents=True, exist_ok=True)
            (root / "Annotations" / vid).mkdir(parents=True, exist_ok=True)
            img = np.full((h, w, 3), 40, np.uint8)
            m = np.zeros((h, w), np.uint8)
            for k, oid in enumerate(oids):
                x0 = 2 + 10 * k + t
                m[5:15, x0:x0 + 8] = oid
                img[5:15, x0:x0 + 8] = (200, 50 * k, 50)
            Image.fromarray(img).save(root / "JPEGImages" / vid / f"{name}.jpg")
            pm = Image.fromarray(m, mode="P")
            pm.putpalette(pal)
            pm.save(root / "Annotations" / vid / f"{name}.png")
        exps = {e: {"exp": text, "obj_id": str(o)} for e, text, o in joined[vid]["expressions"]}
        out["videos"][vid] = {"expressions": exps, "frames": frames}
    (root / "meta_expressions.json").write_text(json.dumps(out))
    return out


def test_ytvos_train_layout_skips_bad_data_with_counts(tmp_path, ytvos_valid):
    meta, objects = ytvos_valid
    videos = list(meta)[:4]
    root = tmp_path / "train"
    layout = _write_train_layout(root, meta, objects, videos)
    v0, v1, v2, v3 = videos
    # bad data: an empty expression, an expression without obj_id, a video without frames,
    # a missing mask, an unreadable frame, an object that is in no mask
    layout["videos"][v0]["expressions"]["0"]["exp"] = "   "
    layout["videos"][v0]["expressions"]["1"].pop("obj_id")
    layout["videos"]["ghost"] = {"expressions": {"0": {"exp": "a ghost", "obj_id": "1"}}, "frames": ["00000"]}
    (root / "meta_expressions.json").write_text(json.dumps(layout))
    frames1 = layout["videos"][v1]["frames"]
    (root / "Annotations" / v1 / f"{frames1[-1]}.png").unlink()
    frames2 = layout["videos"][v2]["frames"]
    (root / "JPEGImages" / v2 / f"{frames2[0]}.jpg").write_bytes(b"not a jpeg")
    layout["videos"][v3]["expressions"]["0"]["obj_id"] = "9"
    (root / "meta_expressions.json").write_text(json.dumps(layout))

    ds = D.open_dataset(root)
    assert ds.layout == "ref-youtube-vos"
    assert ds.skipped.to_dict() == {"empty expression": 1, "no frames": 1, "no object id": 1}
    expected = sum(len(layout["videos"][v]["expressions"]) for v in videos) - 2
    assert len(ds) == expected

    skipped = D.SkipCounter()
    samples = []
    for r in ds.records:
        try:
            samples.append(D.load_sample(r, 6))
        except D.BadSample as bad:
            skipped.add(bad.reason)
    n1 = sum(r.video == v1 for r in ds.records)
    n2 = sum(r.video == v2 for r in ds.records)
    assert skipped.to_dict() == {"missing mask": n1, "unreadable frame": n2, "object absent": 1}
    assert len(samples) == expected - n1 - n2 - 1
    s = samples[0]
    assert s.frames.shape == (6, 36, 48, 3) and s.frames.dtype == np.uint8
    assert s.masks.shape == (6, 36, 48) and s.masks.dtype == bool and s.masks.any()
    # the mask is exactly the object's palette index
    rec = next(r for r in ds.records if r.key == s.key)
    raw = np.asarray(Image.open(rec.mask_paths[0]))
    assert np.array_equal(s.masks[0], raw == rec.obj_id)


def test_ytvos_dataset_root_layout(tmp_path, ytvos_valid):
    meta, objects = ytvos_valid
    root = tmp_path / "ref-youtube-vos"
    _write_train_layout(root / "train", meta, objects, list(meta)[:1])
    (root / "meta_expressions" / "train").mkdir(parents=True)
    (root / "train" / "meta_expressions.json").rename(root / "meta_expressions" / "train" / "meta_expressions.json")
    ds = D.open_dataset(root)
    assert len(ds) == len(meta[list(meta)[0]]["expressions"])
    assert ds.root == root / "train"


def test_open_dataset_rejects_unknown_folder(tmp_path):
    with pytest.raises(InputError, match="neither a Ref-YouTube-VOS"):
        D.open_dataset(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        D.open_dataset(tmp_path / "nope")


def test_generic_folder_on_real_davis_clips(tmp_path, data_dir):
    davis = data_dir / "davis2016"
    spec = {"clips": {
        "blackswan": {"frames": str(davis / "JPEGImages" / "480p" / "blackswan"),
                      "masks": str(davis / "Annotations" / "480p" / "blackswan"),
                      "expressions": [{"exp": "the black swan"}, "a bird swimming", ""], "fps": 24},
        "camel": {"frames": str(davis / "JPEGImages" / "480p" / "camel"),
                  "masks": str(davis / "Annotations" / "480p" / "camel"),
                  "expressions": [{"exp": "the camel walking", "obj_id": 255}]},
        "missing": {"expressions": ["nothing here"]},
    }}
    (tmp_path / "expressions.json").write_text(json.dumps(spec))
    ds = D.open_dataset(tmp_path)
    assert ds.layout == "folder"
    assert [r.expression for r in ds.records] == ["the black swan", "a bird swimming", "the camel walking"]
    assert ds.skipped.to_dict() == {"empty expression": 1, "no frames": 1}
    swan = D.load_sample(ds.records[0], 16)
    assert swan.frames.shape == (16, 480, 854, 3)
    assert swan.indices[0] == 0 and swan.indices[-1] == DAVIS_FIXTURE_FRAMES - 1  # both ends
    frac = swan.masks.mean(axis=(1, 2))
    assert np.all(frac > 0.01) and np.all(frac < 0.5)  # the swan, not the whole frame
    camel = D.load_sample(ds.records[2], 4, max_side=240)
    assert camel.frames.shape == (4, 135, 240, 3) and camel.masks.shape == (4, 135, 240)
    assert camel.masks.any()


def test_frame_indices_uniform_and_jittered():
    assert D.frame_indices(50, 4).tolist() == [0, 16, 33, 49]
    assert D.frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    rng = np.random.default_rng(0)
    for n, k in [(50, 16), (16, 16), (5, 8), (100, 3)]:
        idx = D.frame_indices(n, k, rng)
        assert len(idx) == k and idx.min() >= 0 and idx.max() < n
        assert np.all(np.diff(idx) >= 0)
    # every draw stays inside its segment, and draws differ between calls
    draws = {tuple(D.frame_indices(100, 4, rng)) for _ in range(10)}
    assert len(draws) > 1
    for d in draws:
        assert [i // 25 for i in d] == [0, 1, 2, 3]


def test_synthetic_dataset_is_consistent_and_deterministic(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", videos=3, frames=5, size=64, objects=(2, 3), seed=7)
    b = make_synthetic_dataset(tmp_path / "b", videos=3, frames=5, size=64, objects=(2, 3), seed=7)
    assert (a / "meta_expressions.json").read_text() == (b / "meta_expressions.json").read_text()
    assert (a / "Annotations/syn0001/00010.png").read_bytes() == (b / "Annotations/syn0001/00010.png").read_bytes()
    ds = D.open_dataset(a)
    assert ds.skipped.total == 0 and len(ds) >= 3 * 2 * 2
    for rec in ds.records:
        colour, shape, direction = rec.expression.split()[1], rec.expression.split()[2], rec.expression.split()[-1]
        assert shape in ("circle", "square", "triangle")
        s = D.load_sample(rec, 5)
        # pixels of the object have the named colour (JPEG tolerance)
        pix = s.frames[0][s.masks[0]].astype(int)
        assert np.abs(np.median(pix, axis=0) - COLOURS[colour]).max() < 30
        # the centroid moves the way the expression says
        ys, xs = np.nonzero(s.masks[0])
        ye, xe = np.nonzero(s.masks[-1])
        dy, dx = ye.mean() - ys.mean(), xe.mean() - xs.mean()
        move = {"left": -dx, "right": dx, "up": -dy, "down": dy}[direction]
        assert move > 5, (rec.expression, dy, dx)


def test_split_holds_out_whole_videos(tmp_path):
    ds = D.open_dataset(make_synthetic_dataset(tmp_path, videos=6, frames=2, size=32, objects=2))
    train, val = ds.split(2, seed=0)
    assert len(val) == 2 and len({r.video for r in val.records}) == 2
    assert not {r.video for r in train.records} & {r.video for r in val.records}
    assert [r.key for r in ds.split(2, seed=0)[1].records] == [r.key for r in val.records]


def test_training_reads_meta_through_the_shared_parser(tmp_path):
    """training.data parses meta_expressions.json with datasets.meta (one parser for every layout):
    ids in numeric order, text stripped, a broken entry is an error naming the video."""
    meta = tmp_path / "meta_expressions.json"
    meta.write_text(json.dumps({"videos": {"v": {"frames": ["00000"], "expressions": {
        "10": {"exp": " a cat ", "obj_id": "2"}, "2": {"exp": "a dog", "obj_id": 1}}}}}))
    assert D.parse_meta_expressions(meta) == {"v": {"frames": ["00000"], "expressions": [
        ("2", "a dog", 1), ("10", "a cat", 2)]}}
    meta.write_text(json.dumps({"videos": {"v": {"frames": ["00000"], "expressions": {"0": 5}}}}))
    with pytest.raises(InputError, match="video v: expression 0 is not an object"):
        D.parse_meta_expressions(meta)
