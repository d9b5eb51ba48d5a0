"""The server submission zip of a benchmark whose ground truth is withheld (Ref-YouTube-VOS
``Annotations/<vid>/<exp_id>/<frame>.png``; MeViS ``valid`` without the prefix)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..datasets import Benchmark, Expression
from ..datasets.masks_io import binary_png


def write_submission_zip(bench: Benchmark, mask_root: Path, out_zip: Path,
                         expressions: list[Expression] | None = None) -> dict:
    """Zip ``<prefix><key>/<frame>.png`` for every expression and listed frame.

    Masks not found under ``mask_root`` (``<key>/<frame>.png``, key = ``<vid>/<exp_id>``) are
    written empty, at the frame's size, and counted, so the server always gets a complete
    submission.
    """
    exprs = expressions if expressions is not None else bench.expressions()
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(out_zip.name + ".tmp")
    filled = 0
    written = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for e in exprs:
            empty: bytes | None = None
            for f in e.frames:
                src = Path(mask_root) / e.key / f"{f}.png"
                arc = f"{bench.submission_prefix}{e.key}/{f}.png"
                if src.is_file():
                    zf.write(src, arc)
                else:
                    if empty is None:
                        empty = binary_png(np.zeros(bench.frame_size(e), dtype=bool))
                    zf.writestr(arc, empty)
                    filled += 1
                written += 1
    tmp.replace(out_zip)
    return {"path": str(out_zip), "files": written, "filled_empty": filled}
