"""Readers for the five benchmarks of the paper, by name."""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from .base import Benchmark, Expression, GroundTruth
from .maskdict import MeViS, ReVOS
from .reasonvos import ReasonVOS
from .refdavis import RefDavis17
from .refytvos import RefYouTubeVOS, write_submission_zip

BENCHMARKS: dict[str, type[Benchmark]] = {
    "refdavis": RefDavis17,
    "refytvos": RefYouTubeVOS,
    "mevis": MeViS,
    "revos": ReVOS,
    "reasonvos": ReasonVOS,
}
ALIASES = {"ref-davis17": "refdavis", "refdavis17": "refdavis", "ref-davis": "refdavis",
           "ref-youtube-vos": "refytvos", "ref-ytvos": "refytvos", "youtube": "refytvos"}


def open_benchmark(name: str, root: Path | str, split: str | None = None) -> Benchmark:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in BENCHMARKS:
        raise InputError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key](root, split)


__all__ = ["BENCHMARKS", "Benchmark", "Expression", "GroundTruth", "MeViS", "ReVOS", "ReasonVOS",
           "RefDavis17", "RefYouTubeVOS", "open_benchmark", "write_submission_zip"]
