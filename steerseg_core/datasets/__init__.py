"""Readers of the benchmark and training layouts, shared by training, evaluation and the annotation
study: each official layout is parsed once (``meta.py`` for every ``meta_expressions*.json``).

refdavis.py      Ref-DAVIS17 (converted meta file or the original text files)
refytvos.py      Ref-YouTube-VOS valid (test-phase videos removed) and the object-level file
maskdict.py      MeViS and ReVOS (``mask_dict.json`` RLE ground truth, ReVOS foreground)
reasonvos.py     ReasonVOS (list-shaped meta, per-object ground truth folders)
masks_io.py      mask PNGs as the benchmarks store them

Readers only read: scoring lives in ``steerseg_core.eval``, which imports this package, never the
other way round. Nothing heavy is imported here (the CLI lists ``BENCHMARKS`` at startup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from .base import Benchmark, Expression, GroundTruth
from .maskdict import MeViS, ReVOS
from .reasonvos import ReasonVOS
from .refdavis import RefDavis17
from .refytvos import RefYouTubeVOS

BENCHMARKS: dict[str, type[Benchmark]] = {
    "refdavis": RefDavis17,
    "refytvos": RefYouTubeVOS,
    "mevis": MeViS,
    "revos": ReVOS,
    "reasonvos": ReasonVOS,
}
ALIASES = {"ref-davis17": "refdavis", "refdavis17": "refdavis", "ref-davis": "refdavis",
           "ref-youtube-vos": "refytvos", "ref-ytvos": "refytvos", "youtube": "refytvos"}


def open_benchmark(name: str, root: Path | str, split: str | None = None, **options: Any) -> Benchmark:
    """A benchmark reader by name; ``options`` go to the reader (Ref-YouTube-VOS: ``include_test``)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    try:
        return BENCHMARKS[key](root, split, **options)
    except TypeError as err:
        if options:
            raise InputError(f"{key} takes no reader option {', '.join(options)}") from err
        raise


__all__ = ["BENCHMARKS", "Benchmark", "Expression", "GroundTruth", "MeViS", "ReVOS", "ReasonVOS",
           "RefDavis17", "RefYouTubeVOS", "open_benchmark"]
