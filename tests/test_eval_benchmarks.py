"""Benchmark readers (``steerseg_core.datasets``) and their official scoring (``eval.summaries``):
the real Ref-YouTube-VOS expression files, and small fixtures in the official layouts — key names,
nesting, file names and encodings as the official scripts read them — of Ref-DAVIS17, MeViS, ReVOS
(with ``mask_dict_foreground.json``), ReasonVOS (list-shaped meta) and Ref-YouTube-VOS (with its
test meta), built from real DAVIS frames and masks (linked, not copied), plus hand-computed
two-expression examples for ReVOS R/A and the ReasonVOS mean. The builders are shared with the
runner tests."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from steerseg_core.datasets import open_benchmark
from steerseg_core.datasets.masks_io import davis_palette, write_binary_masks
from steerseg_core.datasets.refdavis import parse_text_annotations
from steerseg_core.datasets.refytvos import object_index
from steerseg_core.errors import InputError
from steerseg_core.eval.metrics import revos_accuracy_robustness
from steerseg_core.eval.runner import score_mask_folder
from steerseg_core.eval.submission import write_submission_zip
from steerseg_core.rle import rle_encode

from .conftest import REFYTVOS, davis_frames, davis_masks

# --- fixture builders (official layouts) --------------------------------------------------------

def real_masks(seq: str, n: int) -> tuple[list[str], np.ndarray]:
    paths = sorted(davis_masks(seq).glob("*.png"))[:n]
    return [p.stem for p in paths], np.stack([np.array(Image.open(p)) == 255 for p in paths])


def halves(mask: np.ndarray, cut: int) -> tuple[np.ndarray, np.ndarray]:
    left = mask.copy()
    left[..., cut:] = False
    return left, mask & ~left


def split_column(seq: str) -> int:
    _, m = real_masks(seq, 1)
    return int(np.median(np.nonzero(m[0])[1]))


def link_frames(dst: Path, seq: str, names: list[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        (dst / f"{n}.jpg").symlink_to(davis_frames(seq) / f"{n}.jpg")


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def build_mevis(root: Path, n: int = 6, split: str = "valid_u") -> Path:
    """MeViS layout: blackswan (two expressions of one object) and camel (one expression whose
    target is the union of two annotations: the camel's left and right halves)."""
    base = root / split
    meta: dict = {"videos": {}}
    mask_dict: dict = {}
    names_s, swan = real_masks("blackswan", n)
    names_c, camel = real_masks("camel", n)
    left, right = halves(camel, split_column("camel"))
    mask_dict["0"] = [rle_encode(m) for m in swan]
    mask_dict["1"] = [rle_encode(m) if m.any() else None for m in left]
    mask_dict["2"] = [rle_encode(m) if m.any() else None for m in right]
    meta["videos"]["blackswan"] = {"vid_id": 0, "frames": names_s, "expressions": {
        "0": {"exp": "the black swan swimming", "obj_id": [0], "anno_id": [0]},
        "1": {"exp": "the  bird on the water", "obj_id": [0], "anno_id": [0]}}}
    meta["videos"]["camel"] = {"vid_id": 1, "frames": names_c, "expressions": {
        "0": {"exp": "the camel walking", "obj_id": [0, 1], "anno_id": [1, 2]}}}
    for vid, names in (("blackswan", names_s), ("camel", names_c)):
        link_frames(base / "JPEGImages" / vid, vid, names)
    write_json(base / "meta_expressions.json", meta)
    write_json(base / "mask_dict.json", mask_dict)
    return root


def build_revos(root: Path, n: int = 5) -> Path:
    """ReVOS layout: meta_expressions_valid_.json (type_id 0/1/2), mask_dict.json keyed by anno_id,
    mask_dict_foreground.json {video: {"masks_rle": [...]}} (here the swan is the only object)."""
    names, swan = real_masks("blackswan", n)
    link_frames(root / "JPEGImages" / "blackswan", "blackswan", names)
    write_json(root / "mask_dict.json", {"7": [rle_encode(m) for m in swan]})
    write_json(root / "mask_dict_foreground.json", {"blackswan": {"masks_rle": [rle_encode(m) for m in swan]}})
    write_json(root / "meta_expressions_valid_.json", {"videos": {"blackswan": {"vid_id": 0, "frames": names,
        "expressions": {
            "0": {"exp": "the black swan", "obj_id": [1], "anno_id": [7], "type_id": 0},
            "1": {"exp": "which animal could be served as a dish?", "obj_id": [1], "anno_id": [7], "type_id": 1},
            "2": {"exp": "the red car", "obj_id": [], "anno_id": [], "type_id": 2}}}}})
    return root


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(labels.astype(np.uint8), "P")
    im.putpalette(davis_palette().reshape(-1).tolist())
    im.save(path)


ANNOT_TEXT = ("{side} part of the swan", "the swan's {side} half, gliding", "{side} side of the bird",
              "the {side} of the black swan as it swims")


def build_refdavis(root: Path, n: int = 6) -> Path:
    """Converted Ref-DAVIS17 layout: blackswan split into objects 1 (left) and 2 (right), a void
    band at the top, four annotator expressions per object."""
    names, swan = real_masks("blackswan", n)
    left, right = halves(swan, split_column("blackswan"))
    labels = np.where(left, 1, np.where(right, 2, 0)).astype(np.uint8)
    labels[:, :8, :] = 255
    for t, name in enumerate(names):
        write_palette_png(root / "valid" / "Annotations" / "blackswan" / f"{name}.png", labels[t])
    link_frames(root / "valid" / "JPEGImages" / "blackswan", "blackswan", names)
    exps = {}
    for k, side in enumerate(("left", "right")):
        for a in range(4):
            exps[str(4 * k + a)] = {"exp": ANNOT_TEXT[a].format(side=side), "obj_id": str(k + 1)}
    write_json(root / "meta_expressions" / "valid" / "meta_expressions.json",
               {"videos": {"blackswan": {"expressions": exps, "frames": names}}})
    return root


def build_reasonvos(root: Path, n: int = 6) -> Path:
    """Official ReasonVOS layout: videos[v] = {source, frames, expressions: [{obj_id, exp_id,
    exp_text, is_sent}]}; GT Annotations/<source>_<v>_<obj_id>/ on every other frame only.
    blackswan: two expressions on object 1 (a sentence and a phrase); object 2 (the swan's right
    half; object 1 is the whole swan) has its own expression with the same exp_id "0"."""
    names, swan = real_masks("blackswan", n)
    _, right = halves(swan, split_column("blackswan"))
    link_frames(root / "JPEGImages" / "blackswan", "blackswan", names)
    for obj, masks in (("1", swan), ("2", right)):
        gt_dir = root / "Annotations" / f"MOSE_blackswan_{obj}"
        gt_dir.mkdir(parents=True)
        for t in range(0, n, 2):
            Image.fromarray(np.where(masks[t], 255, 0).astype(np.uint8)).save(gt_dir / f"{names[t]}.png")
    write_json(root / "meta_expressions.json", {"videos": {"blackswan": {
        "source": "MOSE", "frames": names, "expressions": [
            {"obj_id": 1, "exp_id": 0, "exp_text": "Which bird here is known for its dark feathers?", "is_sent": True},
            {"obj_id": 1, "exp_id": 1, "exp_text": "black  swan", "is_sent": False},
            {"obj_id": 2, "exp_id": 0, "exp_text": "the right half of the bird", "is_sent": False}]}}})
    return root


def build_refytvos(root: Path, n: int = 4) -> Path:
    """Ref-YouTube-VOS: the valid meta also lists a test-phase video (vid_t), which the test meta
    names; frames only for the valid video."""
    names, _ = real_masks("libby", n)
    link_frames(root / "valid" / "JPEGImages" / "vid_a", "libby", names)
    test_video = {"expressions": {"0": {"exp": "a test-phase cat"}}, "frames": names}
    write_json(root / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": {"vid_a": {
        "expressions": {"0": {"exp": "a dog running"}, "1": {"exp": "the spotted dog"}}, "frames": names},
        "vid_t": test_video}})
    write_json(root / "meta_expressions" / "test" / "meta_expressions.json", {"videos": {"vid_t": test_video}})
    return root


# --- tests ------------------------------------------------------------------------------------------

def test_refytvos_real_expression_files():
    # The real valid file lists 507 videos, test phase included; its test meta is not here, so the
    # reader refuses unless asked for every listed video.
    with pytest.raises(InputError, match="test-phase videos.*include-test-videos"):
        open_benchmark("refytvos", REFYTVOS).expressions()
    bench = open_benchmark("refytvos", REFYTVOS, include_test=True)
    exprs = bench.expressions()
    assert len(exprs) == 2096 and len({e.video for e in exprs}) == 507
    first = [e for e in exprs if e.video == "0062f687f1"]
    assert [e.exp_id for e in first] == ["0", "1", "2", "3", "4", "5"]
    assert first[2].text == "a puppy dog on the left drinking milk from its mother"
    assert first[0].frames[:3] == ("00000", "00005", "00010") and len(first[0].frames) == 19
    assert not bench.has_gt and bench.load_gt(first[0]) is None
    # The object-level release gives each expression its object and category.
    idx = object_index(REFYTVOS / "original_release" / "meta_expressions_valid.json",
                       REFYTVOS / "valid" / "meta_expressions.json")
    assert len(idx) == 2096
    assert idx[("0062f687f1", "2")] == ("2", "dog") and idx[("0062f687f1", "5")] == ("3", "dog")


def test_refytvos_submission_zip(tmp_path):
    bench = open_benchmark("refytvos", build_refytvos(tmp_path / "ytvos"))
    exprs = bench.expressions()
    h, w = bench.frame_size(exprs[0])
    masks = np.zeros((len(exprs[0].frames), h, w), dtype=bool)
    masks[:, 10:20, 30:40] = True
    write_binary_masks(tmp_path / "masks" / "vid_a" / "0", exprs[0].frames, masks)
    info = write_submission_zip(bench, tmp_path / "masks", tmp_path / "sub.zip")
    assert info["files"] == 8 and info["filled_empty"] == 4  # expression 1 had no masks
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = sorted(zf.namelist())
        assert names[0] == f"Annotations/vid_a/0/{exprs[0].frames[0]}.png" and len(names) == 8
        with zf.open(names[0]) as fh:
            arr = np.array(Image.open(fh))
    assert arr.shape == (h, w) and set(np.unique(arr)) == {0, 255} and (arr == 255).sum() == 100


def test_mevis_reader_unions_annotations(tmp_path):
    bench = open_benchmark("mevis", build_mevis(tmp_path / "mevis"))
    exprs = bench.expressions()
    assert [e.key for e in exprs] == ["blackswan/0", "blackswan/1", "camel/0"]
    assert exprs[1].text == "the bird on the water"  # whitespace normalised
    assert exprs[2].anno_ids == ("1", "2")
    gt = bench.load_gt(exprs[2])
    _, camel = real_masks("camel", 6)
    assert gt.masks.shape == camel.shape and (gt.masks == camel).all()
    assert bench.image_paths(exprs[0])[0].name == "00000.jpg"
    with pytest.raises(InputError, match="unknown split"):
        open_benchmark("mevis", tmp_path / "mevis", "test")


def test_mevis_valid_without_masks_has_no_gt(tmp_path):
    root = build_mevis(tmp_path / "m", split="valid")
    (root / "valid" / "mask_dict.json").unlink()
    bench = open_benchmark("mevis", root, "valid")
    assert not bench.has_gt and bench.load_gt(bench.expressions()[0]) is None
    assert bench.submission_prefix == ""


def test_refytvos_removes_test_phase_videos_or_stops(tmp_path):
    root = build_refytvos(tmp_path / "ytvos")
    assert {e.video for e in open_benchmark("refytvos", root).expressions()} == {"vid_a"}
    assert {e.video for e in open_benchmark("refytvos", root, include_test=True).expressions()} == {"vid_a", "vid_t"}
    (root / "meta_expressions" / "test" / "meta_expressions.json").unlink()
    with pytest.raises(InputError, match="meta_expressions.json not found.*test-phase videos"):
        open_benchmark("refytvos", root).expressions()
    with pytest.raises(InputError, match="mevis takes no reader option include_test"):
        open_benchmark("mevis", build_mevis(tmp_path / "m"), include_test=True)


def test_revos_groups_and_official_overall(tmp_path):
    bench = open_benchmark("revos", build_revos(tmp_path / "revos"))
    exprs = bench.expressions()
    assert [e.group for e in exprs] == ["referring", "reasoning", "no-target"]
    pred = tmp_path / "pred"
    names, swan = real_masks("blackswan", 5)
    write_binary_masks(pred / "blackswan" / "0", names, swan)  # referring: perfect
    write_binary_masks(pred / "blackswan" / "1", names, np.zeros_like(swan))  # reasoning: empty
    write_binary_masks(pred / "blackswan" / "2", names, np.zeros_like(swan))  # no target: empty
    summary = score_mask_folder(bench, pred, tmp_path / "run", _quiet())
    groups = {g["name"]: g for g in summary["groups"]}
    assert groups["referring"]["J&F"] == 1.0 and groups["reasoning"]["J&F"] == 0.0
    assert groups["overall"]["J&F"] == pytest.approx(0.5) and groups["overall"]["n"] == 2
    # The official A counts only pixels background in both: the perfect and the empty masks score
    # the same, the background fraction; neither has a false positive, so R = 1.
    background = float(np.mean(1 - swan.mean(axis=(1, 2))))
    for g in ("referring", "reasoning", "overall"):
        assert groups[g]["A"] == pytest.approx(background) and groups[g]["R"] == pytest.approx(1.0)
    assert summary["complete"] and summary["label"] == "pred"
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "Referring J&F" in md and "Overall R" in md and "| pred | 100.0 |" in md


def _rle_pixels(h: int, w: int, pixels: list[tuple[int, int]]) -> dict:
    m = np.zeros((h, w), dtype=bool)
    for y, x in pixels:
        m[y, x] = True
    return rle_encode(m)


def test_revos_r_and_a_hand_computed(tmp_path):
    """Two expressions on one 40x40, two-frame video; every number below is worked out by hand.

    GT (anno 0): frame 0 pixels (0,0),(0,1); frame 1 pixel (1,1). Foreground (two objects): frame 0
    four pixels (as two RLEs), frame 1 two pixels. Boundary tolerance on 40x40 is 1 pixel.
    * referring, perfect: J = F = 1; A = (1598/1600 + 1599/1600) / 2; R = 1.
    * reasoning, one false positive far away in frame 0, nothing in frame 1: J = F = 0;
      A = (1597/1600 + 1599/1600) / 2; R = (max(1 − 255/4, 0) + 1) / 2 = 0.5 — the official 0/255
      scaling (a binary count would give (0.75 + 1) / 2).
    overall = mean of the two groups for every metric."""
    root = tmp_path / "revos"
    names = ["00000", "00001"]
    gt = [[(0, 0), (0, 1)], [(1, 1)]]
    write_json(root / "mask_dict.json", {"0": [_rle_pixels(40, 40, px) for px in gt]})
    write_json(root / "mask_dict_foreground.json", {"v": {"masks_rle": [
        [_rle_pixels(40, 40, gt[0]), _rle_pixels(40, 40, [(5, 5), (5, 6)])],
        _rle_pixels(40, 40, [(1, 1), (5, 5)])]}})
    write_json(root / "meta_expressions_valid_.json", {"videos": {"v": {"vid_id": 0, "frames": names, "expressions": {
        "0": {"exp": "the small thing", "obj_id": [0], "anno_id": [0], "type_id": 0},
        "1": {"exp": "what would you pick up first?", "obj_id": [0], "anno_id": [0], "type_id": 1}}}}})
    bench = open_benchmark("revos", root)
    perfect = np.zeros((2, 40, 40), dtype=bool)
    for t, px in enumerate(gt):
        for y, x in px:
            perfect[t, y, x] = True
    wrong = np.zeros_like(perfect)
    wrong[0, 30, 30] = True
    write_binary_masks(tmp_path / "pred" / "v" / "0", names, perfect)
    write_binary_masks(tmp_path / "pred" / "v" / "1", names, wrong)
    summary = score_mask_folder(bench, tmp_path / "pred", tmp_path / "run", _quiet())
    g = {x["name"]: x for x in summary["groups"]}
    assert (g["referring"]["J"], g["referring"]["F"], g["referring"]["R"]) == (1.0, 1.0, 1.0)
    assert g["referring"]["A"] == pytest.approx((1598 + 1599) / 3200)
    assert (g["reasoning"]["J"], g["reasoning"]["F"]) == (0.0, 0.0)
    assert g["reasoning"]["A"] == pytest.approx((1597 + 1599) / 3200)
    assert g["reasoning"]["R"] == pytest.approx(0.5)
    assert g["overall"]["J&F"] == pytest.approx(0.5) and g["overall"]["R"] == pytest.approx(0.75)
    assert g["overall"]["A"] == pytest.approx(((1598 + 1599) / 3200 + (1597 + 1599) / 3200) / 2)
    # The same numbers from the metric directly, frame by frame.
    acc, rob = revos_accuracy_robustness(perfect, wrong, np.array([4, 2]))
    assert rob.tolist() == [0.0, 1.0] and acc.tolist() == [1597 / 1600, 1599 / 1600]


def test_reasonvos_reader_keeps_each_expression(tmp_path):
    bench = open_benchmark("reasonvos", build_reasonvos(tmp_path / "rv"))
    exprs = bench.expressions()
    assert [(e.key, e.exp_id, e.obj_ids, e.group) for e in exprs] == [
        ("MOSE_blackswan_1/0", "0", ("1",), "sentence"), ("MOSE_blackswan_1/1", "1", ("1",), "phrase"),
        ("MOSE_blackswan_2/0", "0", ("2",), "phrase")]
    assert exprs[1].text == "black swan" and len(exprs[0].frames) == 6
    gt = bench.load_gt(exprs[0])
    assert gt.frames == exprs[0].frames[::2]
    # The old assumption (expressions keyed by id) is refused with a message, not a TypeError.
    meta = json.loads((tmp_path / "rv" / "meta_expressions.json").read_text())
    meta["videos"]["blackswan"]["expressions"] = {"0": {"exp_text": "x", "obj_id": 1}}
    write_json(tmp_path / "rv" / "meta_expressions.json", meta)
    with pytest.raises(InputError, match="must be a list"):
        open_benchmark("reasonvos", tmp_path / "rv").expressions()


def test_reasonvos_mean_and_missing_predictions_hand_computed(tmp_path):
    """Predictions in the official layout <source>_<video>_<obj_id>/<exp_id>/. Object 1's
    sentence: perfect on the GT frames (J = F = 1; a wrong frame without GT does not count). Its
    phrase: empty (J = F = 0). Object 2's expression: no prediction folder — zero in the headline
    (1 + 0 + 0) / 3, skipped by the official script (1 + 0) / 2."""
    bench = open_benchmark("reasonvos", build_reasonvos(tmp_path / "rv"))
    names, swan = real_masks("blackswan", 6)
    pred = swan.copy()
    pred[1] = False  # a frame without GT
    write_binary_masks(tmp_path / "pred" / "MOSE_blackswan_1" / "0", names, pred)
    write_binary_masks(tmp_path / "pred" / "MOSE_blackswan_1" / "1", names, np.zeros_like(swan))
    summary = score_mask_folder(bench, tmp_path / "pred", tmp_path / "run", _quiet())
    g = {x["name"]: x for x in summary["groups"]}
    assert summary["headline"] == "overall"
    assert g["overall"]["J&F"] == pytest.approx(1 / 3) and g["overall"]["n"] == 3
    assert g["official"]["J&F"] == pytest.approx(0.5) and g["official"]["n"] == 2
    assert any("official script skips them" in n for n in summary["notes"])
    assert (tmp_path / "run" / "Annotations" / "MOSE_blackswan_1" / "1" / f"{names[0]}.png").is_file()


def test_refdavis_converted_layout(tmp_path):
    bench = open_benchmark("ref-davis17", build_refdavis(tmp_path / "rd"))
    assert bench.layout == "converted"
    exprs = bench.expressions()
    assert len(exprs) == 8
    assert [e.group for e in exprs[:4]] == ["annot1", "annot1_full_video", "annot2", "annot2_full_video"]
    assert exprs[5].obj_ids == ("2",) and exprs[5].text.startswith("the swan's right")
    gt = bench.load_gt(exprs[0])
    names, swan = real_masks("blackswan", 6)
    left, _ = halves(swan, split_column("blackswan"))
    left[:, :8] = False
    assert (gt.masks == left).all()


def test_refdavis_original_text_files(tmp_path):
    root = tmp_path / "rd"
    folder = root / "davis_text_annotations"
    folder.mkdir(parents=True)
    lines = {"annot1": 'clasic-car 2 "a  white car" \nclasic-car 1 "a man"\n',
             "annot1_full_video": 'clasic-car 1 "a man walking"\nclasic-car 2 "a car parked"\n',
             "annot2": 'clasic-car 1 "the caf\xe9 owner"\nclasic-car 2 "old car"\n',
             "annot2_full_video": 'clasic-car 1 "person"\nclasic-car 2 "vehicle"\n'}
    for a, text in lines.items():
        enc = "latin-1" if a.startswith("annot2") else "utf-8"
        (folder / f"Davis17_{a}.txt").write_bytes(text.encode(enc))
    parsed = parse_text_annotations(folder / "Davis17_annot1.txt")
    assert parsed == {"classic-car": [("1", "a man"), ("2", "a white car")]}  # words re-joined, quotes cut
    assert parse_text_annotations(folder / "Davis17_annot2.txt")["classic-car"][0][1] == "the caf\xe9 owner"
    (root / "DAVIS" / "JPEGImages" / "480p" / "classic-car").mkdir(parents=True)
    (root / "DAVIS" / "JPEGImages" / "480p" / "classic-car" / "00000.jpg").write_bytes(b"")
    (root / "DAVIS" / "Annotations" / "480p").mkdir(parents=True)
    with pytest.raises(InputError, match="Annotations_unsupervised/480p not found"):
        open_benchmark("refdavis", root)  # never the semi-supervised masks in its place
    (root / "DAVIS" / "Annotations_unsupervised" / "480p").mkdir(parents=True)
    bench = open_benchmark("refdavis", root)
    exprs = bench.expressions()
    assert bench.layout == "original" and len(exprs) == 8
    assert [(e.exp_id, e.obj_ids[0], e.group) for e in exprs[:5]] == [
        ("0", "1", "annot1"), ("1", "1", "annot1_full_video"), ("2", "1", "annot2"),
        ("3", "1", "annot2_full_video"), ("4", "2", "annot1")]


def test_unknown_benchmark_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="unknown benchmark"):
        open_benchmark("kinetics", tmp_path)
    with pytest.raises(InputError, match="expressions file not found"):
        open_benchmark("revos", tmp_path)
    with pytest.raises(InputError, match="no Ref-DAVIS17 layout"):
        open_benchmark("refdavis", tmp_path)


def _quiet():
    from steerseg_core.eval.runner import RunOptions

    return RunOptions(stream=None)


def test_refdavis_counts_objects_in_frame_0(tmp_path):
    """The DAVIS-2017 evaluation counts a video's objects in its first frame: an object that only
    appears later is not scored, and a video whose first frame is empty scores nothing."""
    from steerseg_core.eval.summaries import annotator_scores

    root = build_refdavis(tmp_path / "rd", n=3)
    bench = open_benchmark("refdavis", root)
    exprs = bench.expressions()
    gt_dir = root / "valid" / "Annotations" / "blackswan"
    labels = [np.array(Image.open(p)) for p in sorted(gt_dir.glob("*.png"))]
    labels[2][-6:, -6:] = 3  # object 3 appears in the last frame only
    write_palette_png(gt_dir / f"{exprs[0].frames[2]}.png", labels[2])
    masks = tmp_path / "masks"
    for e in exprs:  # perfect masks of objects 1 and 2
        gt = bench.load_gt(e)
        write_binary_masks(masks / e.key, e.frames, gt.masks)
    score, missing = annotator_scores(bench, masks, "annot1", exprs)
    assert (score["n"], score["J&F"], missing) == (2, 1.0, [])
    labels[0][labels[0] != 255] = 0  # first frame without objects
    write_palette_png(gt_dir / f"{exprs[0].frames[0]}.png", labels[0])
    assert annotator_scores(bench, masks, "annot1", exprs)[0]["n"] == 0
