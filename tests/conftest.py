"""Shared test fixtures: offline environment, the committed real-data subset in tests/data, tiny models.

Everything a test reads lives inside the repository: ``tests/data`` holds short cuts of real DAVIS-2016
clips with their masks, a few frames of the SAM 2 "bedroom" clip and the Ref-YouTube-VOS valid
expression files (gzipped; unpacked once per session). Origin and terms: ``tests/data/SOURCES.md``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parents[1]

# Every writable path the code reads from the environment points into one temp folder per test
# session (subprocesses inherit it), so no test writes into the checkout's checkpoints/, runs/ or
# annotations/ folders.
_SCRATCH = Path(tempfile.mkdtemp(prefix="steerseg-tests-"))
for _var, _sub in (("STEERSEG_CHECKPOINTS", "checkpoints"), ("STEERSEG_RUNS", "runs"),
                   ("STEERSEG_DB", "annotations/steerseg.db"), ("STEERSEG_CACHE", "cache"),
                   ("STEERSEG_OUTPUTS", "outputs")):
    os.environ.setdefault(_var, str(_SCRATCH / _sub))
DATA = Path(__file__).resolve().parent / "data"
DAVIS = DATA / "davis2016"
# Frames per committed DAVIS clip (blackswan, camel, libby; masks for all eight sequences).
DAVIS_FIXTURE_FRAMES = 16


def _unpack_refytvos() -> Path:
    """The gzipped expression files of tests/data, unpacked (byte for byte) into the session scratch."""
    out = _SCRATCH / "refytvos-expressions"
    for packed in sorted((DATA / "refytvos-expressions").rglob("*.json.gz")):
        dst = out / packed.relative_to(DATA / "refytvos-expressions").with_suffix("")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(packed, "rb") as src, dst.open("wb") as f:
            shutil.copyfileobj(src, f)
    return out


REFYTVOS = _unpack_refytvos()


def davis_frames(seq: str) -> Path:
    return DAVIS / "JPEGImages" / "480p" / seq


def davis_masks(seq: str) -> Path:
    return DAVIS / "Annotations" / "480p" / seq


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: the committed real-data subset (part of the repository, never downloaded)."""
    if not (DAVIS / "JPEGImages").is_dir():
        pytest.fail(f"the committed test data is missing at {DATA}: restore tests/data from git")
    return DATA


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make-tiny-models` output, built once per test session (random weights, offline)."""
    from steerseg_core.testing.tiny_models import make_tiny_models

    out = tmp_path_factory.mktemp("tiny_models")
    make_tiny_models(out)
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if not torch.cuda.is_available() and not os.environ.get("STEERSEG_TEST_GPU_DEVICE"):
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def in_ci(env=None) -> bool:
    """CI sets CI=true (GitHub Actions and most others)."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """In CI a skipped browser test fails the run: CI installs Chromium and playwright, so a skip
    there means the check silently did not happen. Locally it stays a skip."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and "browser" in item.keywords and in_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"browser test skipped in CI ({reason}); CI must install chromium and playwright"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SCRATCH, ignore_errors=True)
