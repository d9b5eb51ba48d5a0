"""eval-masks on real DAVIS masks: perfect, eroded, dilated, shifted and emptied predictions
against expectations computed here a different way (Euclidean distance transforms for F, set
counts for J), plus the unsupervised (Hungarian) protocol and the CLI's JSON and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from steerseg_core.cli import main as eval_main
from steerseg_core.datasets.masks_io import davis_palette
from steerseg_core.errors import InputError
from steerseg_core.eval.folder_eval import evaluate_folders

from .conftest import davis_masks

SEQS = ("blackswan", "libby")


def load_gt(seq: str, step: int = 1) -> tuple[list[str], np.ndarray]:
    paths = sorted(davis_masks(seq).glob("*.png"))[::step]
    return [p.stem for p in paths], np.stack([np.array(Image.open(p)) == 255 for p in paths])


def ball(r: int) -> np.ndarray:
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        m[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def edge_map(m: np.ndarray) -> np.ndarray:
    """Boundary pixels: differ from the right, lower or lower-right neighbour (zero outside), except
    that the last row looks only right, the last column only down, and the corner is never one."""
    p = np.pad(m, ((0, 1), (0, 1)))
    b = (m != p[:-1, 1:]) | (m != p[1:, :-1]) | (m != p[1:, 1:])
    b[-1, :] = m[-1, :] != p[-2, 1:]
    b[:, -1] = m[:, -1] != p[1:, -2]
    b[-1, -1] = False
    return b


def expected_f(gt: np.ndarray, pred: np.ndarray, radius: int = 8) -> float:
    gb, pb = edge_map(gt), edge_map(pred)
    if not gb.any() and not pb.any():
        return 1.0
    if not gb.any() or not pb.any():
        return 0.0
    # Distance of every pixel to the nearest boundary pixel of the other mask, computed inside the
    # bounding box of both boundaries (which holds every boundary pixel, so distances are exact).
    ys, xs = np.nonzero(gb | pb)
    window = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    gb, pb = gb[window], pb[window]
    precision = float((ndi.distance_transform_edt(~gb)[pb] <= radius).mean())
    recall = float((ndi.distance_transform_edt(~pb)[gb] <= radius).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def expected_j(gt: np.ndarray, pred: np.ndarray) -> float:
    union = np.logical_or(gt, pred).sum()
    return 1.0 if union == 0 else np.logical_and(gt, pred).sum() / union


def write_seq(root: Path, seq: str, names: list[str], masks: np.ndarray) -> None:
    (root / seq).mkdir(parents=True, exist_ok=True)
    for n, m in zip(names, masks, strict=True):
        Image.fromarray(np.where(m, 255, 0).astype(np.uint8)).save(root / seq / f"{n}.png")


VARIANTS = {
    "perfect": lambda m: m,
    "eroded": lambda m: np.stack([ndi.binary_erosion(f, ball(4)) for f in m]),
    "dilated": lambda m: np.stack([ndi.binary_dilation(f, ball(3)) for f in m]),
    "shifted": lambda m: shift(m, 3, -5),
    "emptied": lambda m: np.zeros_like(m),
}


STEP = 2  # every 2nd real frame (8 of the 16 committed) keeps the suite fast; the protocol sees a DAVIS-layout folder


@pytest.fixture(scope="module")
def gt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAVIS-layout GT folder linking every STEP-th real mask of SEQS (no copies)."""
    root = tmp_path_factory.mktemp("gt")
    for seq in SEQS:
        (root / seq).mkdir()
        for p in sorted(davis_masks(seq).glob("*.png"))[::STEP]:
            (root / seq / p.name).symlink_to(p)
    return root


@pytest.fixture(scope="module")
def gts() -> dict[str, tuple[list[str], np.ndarray]]:
    return {s: load_gt(s, STEP) for s in SEQS}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_masks_semi_supervised(tmp_path, gt_root, gts, variant):
    expect_j, expect_f = {}, {}
    for seq, (names, gt) in gts.items():
        pred = VARIANTS[variant](gt)
        write_seq(tmp_path, seq, names, pred)
        frames = range(1, len(names) - 1)  # semi-supervised: first and last frames excluded
        expect_j[seq] = [expected_j(gt[t], pred[t]) for t in frames]
        expect_f[seq] = [expected_f(gt[t], pred[t]) for t in frames]
    report = evaluate_folders(gt_root, tmp_path, "semi-supervised", sequences=SEQS,
                              workers=2 if variant == "eroded" else 1)
    for seq in SEQS:
        r = report["sequences"][seq]
        assert r["frames"] == len(gts[seq][0]) - 2
        assert r["J-Mean"] == pytest.approx(np.mean(expect_j[seq]), abs=1e-12)
        assert r["F-Mean"] == pytest.approx(np.mean(expect_f[seq]), abs=1e-12)
        assert r["J-Recall"] == pytest.approx(np.mean(np.array(expect_j[seq]) > 0.5))
    jm = np.mean([np.mean(expect_j[s]) for s in SEQS])
    fm = np.mean([np.mean(expect_f[s]) for s in SEQS])
    assert report["J&F-Mean"] == pytest.approx((jm + fm) / 2, abs=1e-12)
    if variant == "perfect":
        assert report["J&F-Mean"] == 1.0 and report["J-Decay"] == 0.0
    if variant == "emptied":
        assert report["J-Mean"] == 0.0 and report["F-Mean"] == 0.0
    if variant in ("eroded", "dilated", "shifted"):
        assert 0.3 < report["J-Mean"] < 0.99 and 0.3 < report["F-Mean"] <= 1.0


def test_first_and_last_frames_do_not_count_in_semi_supervised(tmp_path, gt_root, gts):
    names, gt = gts["libby"]
    pred = gt.copy()
    pred[0] = ~pred[0]
    pred[-1] = False
    write_seq(tmp_path, "libby", names, pred)
    report = evaluate_folders(gt_root, tmp_path, "semi-supervised", sequences=["libby"])
    assert report["J&F-Mean"] == 1.0
    allf = evaluate_folders(gt_root, tmp_path, "all-frames", sequences=["libby"])
    assert allf["sequences"]["libby"]["frames"] == len(names)
    assert allf["J-Mean"] == pytest.approx(np.mean([expected_j(g, p) for g, p in zip(gt, pred, strict=True)]))


def write_palette(root: Path, seq: str, names: list[str], labels: np.ndarray) -> None:
    (root / seq).mkdir(parents=True, exist_ok=True)
    pal = davis_palette().reshape(-1).tolist()
    for n, lab in zip(names, labels, strict=True):
        im = Image.fromarray(lab.astype(np.uint8), "P")
        im.putpalette(pal)
        im.save(root / seq / f"{n}.png")


def test_unsupervised_matches_objects_and_ignores_void(tmp_path, gts):
    names, gt = gts["blackswan"]
    names, gt = names[:12], gt[:12]
    cut = int(np.median(np.nonzero(gt[0])[1]))  # split the swan into two objects at frame 0's median x
    left = gt.copy()
    left[..., cut:] = False
    right = gt & ~left
    labels = np.where(left, 1, np.where(right, 2, 0)).astype(np.uint8)
    labels[:, :20, :] = 255  # a void band
    write_palette(tmp_path / "gt", "swan2", names, labels)
    pred = np.where(left, 2, np.where(right, 1, 0)).astype(np.uint8)  # ids swapped
    pred[:, :10, :] = 3  # a spurious object, inside the void band
    write_palette(tmp_path / "pred", "swan2", names, pred)

    uns = evaluate_folders(tmp_path / "gt", tmp_path / "pred", "unsupervised")
    assert uns["J&F-Mean"] == 1.0 and uns["num_objects"] == 2
    assert set(uns["sequences"]["swan2"]["objects"]) == {"1", "2"}
    # semi-supervised compares id k with id k: the halves barely overlap, and id 3 is an error
    with pytest.raises(InputError, match="object id 3"):
        evaluate_folders(tmp_path / "gt", tmp_path / "pred", "semi-supervised")
    pred[pred == 3] = 0
    write_palette(tmp_path / "pred", "swan2", names, pred)
    semi = evaluate_folders(tmp_path / "gt", tmp_path / "pred", "semi-supervised")
    assert semi["J-Mean"] < 0.1


def test_cli_json_missing_files_and_size_errors(tmp_path, gt_root, gts, capsys):
    names, gt = gts["libby"]
    pred_dir = tmp_path / "pred"
    write_seq(pred_dir, "libby", names, gt)
    for n in names[2:5]:
        (pred_dir / "libby" / f"{n}.png").unlink()
    out = tmp_path / "r.json"
    rc = eval_main(["eval-masks", str(gt_root), str(pred_dir), "--mode", "semi-supervised",
                    "--sequences", "libby", "--json", str(out), "--quiet"])
    assert rc == 0
    report = json.loads(out.read_text())
    for key in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        assert key in report and key in report["sequences"]["libby"]
    assert report["missing_predictions"] == [f"libby/{n}.png" for n in names[2:5]]
    n_eval = len(names) - 2
    assert report["J-Mean"] == pytest.approx((n_eval - 3) / n_eval)  # missing = empty = J 0
    assert "libby" in capsys.readouterr().out

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(pred_dir / "libby" / f"{names[5]}.png")
    rc = eval_main(["eval-masks", str(gt_root), str(pred_dir), "--sequences", "libby", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"{names[5]}.png" in err and "100x100" in err


def test_all_frames_on_nested_expression_folders(tmp_path, gts):
    names, gt = gts["libby"]
    for exp, masks in (("0", gt), ("1", np.zeros_like(gt))):
        (tmp_path / "gt" / "libby" / exp).mkdir(parents=True)
        for n in names:
            (tmp_path / "gt" / "libby" / exp / f"{n}.png").symlink_to(davis_masks("libby") / f"{n}.png")
        write_seq(tmp_path / "pred" / "libby", exp, names, masks)
    report = evaluate_folders(tmp_path / "gt", tmp_path / "pred", "all-frames")
    assert list(report["sequences"]) == ["libby/0", "libby/1"]
    assert report["sequences"]["libby/0"]["J&F-Mean"] == 1.0
    assert report["sequences"]["libby/1"]["J&F-Mean"] == 0.0
    assert report["J&F-Mean"] == 0.5 and report["num_objects"] == 2
