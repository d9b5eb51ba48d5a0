"""In CI (CI=true) a skipped browser test fails the run; locally it stays a skip. Runs pytest in a
subprocess on a throw-away test file with this suite's conftest loaded as a plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import pytest

    @pytest.mark.browser
    def test_needs_chromium():
        pytest.skip("needs /usr/bin/chromium")

    def test_plain_skip():
        pytest.skip("not a browser test")
""")


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-o", "markers=browser", str(tmp_path / "test_probe.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_browser_skip_fails_in_ci(tmp_path):
    r = _run(tmp_path, "true")
    assert r.returncode == 1, r.stdout[-2000:]
    assert "1 failed, 1 skipped" in r.stdout
    assert "browser test skipped in CI (Skipped: needs /usr/bin/chromium)" in r.stdout


def test_browser_skip_is_a_skip_outside_ci(tmp_path):
    r = _run(tmp_path, None)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "2 skipped" in r.stdout


def test_what_counts_as_ci():
    from .conftest import in_ci

    assert in_ci({"CI": "true"}) and in_ci({"CI": "1"}) and in_ci({"CI": "True"})
    assert not in_ci({}) and not in_ci({"CI": "false"}) and not in_ci({"CI": "0"}) and not in_ci({"CI": ""})
