"""Ground-truth mode: score one segmentation of the user's clip on the spot.

``segment … --gt-masks DIR`` and the app's optional ground-truth upload give a DAVIS-layout folder
(one PNG per frame, named like the clip's frames, 0/255 or palette). The run is scored exactly as
``eval-masks DIR OUT/masks --mode all-frames`` scores it (same reader, same per-frame J and F, same
statistics), and the rollout maps are compared with the ground truth as in the paper's Table 3
(``correlation.rollout_mask_correlation``): Pearson correlation of the normalised maps with the
mask area-averaged onto the token grid, averaged over the keyframes (frame branch) and the video
frames (video branch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.masks_io import read_label_sequence
from ..errors import InputError
from ..types import Clip, SegmentationResult
from .correlation import rollout_mask_correlation
from .folder_eval import all_frames_jf, stats_row

MAX_GT_BYTES = 512 << 20  # what an uploaded ground-truth zip may unpack to


def read_gt_folder(gt_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """(frame names, (T, H, W) labels) of a folder of ground-truth PNGs, sorted by name."""
    folder = Path(gt_dir)
    if not folder.is_dir():
        raise InputError(f"ground-truth folder not found: {folder.name}")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise InputError(f"no PNG masks in ground-truth folder {folder.name} (expected <frame>.png)")
    labels, _ = read_label_sequence(paths)
    return [p.stem for p in paths], labels


def gt_folder_from_files(files: list[str | Path], dest: str | Path) -> Path:
    """Gather uploaded ground truth (PNG files and/or zips of PNGs) into one flat folder ``dest``,
    by file name only (nothing can land outside it); returns ``dest``."""
    import zipfile

    from ..files import safe_name

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        f = Path(f)
        if f.suffix.lower() == ".zip":
            with zipfile.ZipFile(f) as z:
                if sum(i.file_size for i in z.infolist()) > MAX_GT_BYTES:
                    raise InputError(f"'{f.name}' unpacks to more than {MAX_GT_BYTES >> 20} MB")
                for info in z.infolist():
                    if not info.is_dir() and info.filename.lower().endswith(".png"):
                        name = safe_name(Path(info.filename).stem, "mask") + ".png"
                        (dest / name).write_bytes(z.read(info))
        elif f.suffix.lower() == ".png":
            (dest / (safe_name(f.stem, "mask") + ".png")).write_bytes(f.read_bytes())
        else:
            raise InputError(f"ground truth must be PNG masks or a zip of them, got '{f.name}'")
    return dest


def evaluate_against_gt(result: SegmentationResult, clip: Clip, gt_dir: str | Path) -> dict[str, Any]:
    """result.json's ``"evaluation"``: J&F, J, F (all-frames protocol over the ground-truth frames;
    a GT frame the clip lacks scores as an empty prediction, as in eval-masks) and the two
    rollout–mask alignments, plus the frames used."""
    names, gt = read_gt_folder(gt_dir)
    if gt.shape[1:] != (clip.height, clip.width):
        raise InputError(f"ground-truth masks are {gt.shape[2]}x{gt.shape[1]} but the clip was segmented at "
                         f"{clip.width}x{clip.height}: give masks of the clip's size (or run without "
                         "--max-side)")
    index = {n: i for i, n in enumerate(clip.names())}
    matched = [n for n in names if n in index]
    if not matched:
        raise InputError(f"no ground-truth frame name matches a clip frame (GT {names[0]}.png…, clip "
                         f"{clip.names()[0]}…)")
    masks = np.asarray(result.masks)
    pred = np.zeros_like(gt, dtype=bool)
    for k, n in enumerate(names):
        if n in index:
            pred[k] = masks[index[n]]
    j, f = all_frames_jf(gt, pred)
    row = stats_row(j, f)
    lookup = {index[n]: gt[k] != 0 for k, n in enumerate(names) if n in index}
    corr = rollout_mask_correlation(result.grounding, lookup)
    return {"J&F": row["J&F-Mean"], "J": row["J-Mean"], "F": row["F-Mean"],
            "alignment_frame": corr.frame, "alignment_video": corr.video,
            "alignment_per_keyframe": list(corr.per_keyframe),
            "alignment_per_video_frame": list(corr.per_video_frame),
            "gt_frames": len(names), "gt_frames_matched": len(matched)}
