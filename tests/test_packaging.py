"""The repository as a package and a Space: the wheel's declared dependencies equal the pins of
requirements.txt, every third-party import of the library is declared, the wheel holds only
``steerseg_core`` and its ``steerseg`` command works from outside the checkout, and the code needs no
Python newer than 3.10 (vermin). The Space-style install itself is ``.ci/space_install.sh``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from .conftest import ROOT

OPTIONAL_IMPORTS = {"triton"}  # imported inside try/except: ships with torch's Linux CUDA builds
IMPORT_TO_DIST = {"PIL": "pillow", "cv2": "opencv-python-headless", "hydra": "hydra-core",
                  "sqlite_utils": "sqlite-utils"}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _requirement_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith(("#", "-"))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources, never the checkout.
    src = tmp_path_factory.mktemp("src") / "steerseg"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "tests", "build", "dist", "runs",
                                                             "*.egg-info", "__pycache__", "tiny_models"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("steerseg-*.whl")
    return whl


def _metadata(whl: Path) -> tuple[list[str], object]:
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    return names, Parser().parsestr(meta)


def test_wheel_metadata_and_contents(wheel):
    names, meta = _metadata(wheel)
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"steerseg_core"}
    assert meta["Requires-Python"] == ">=3.10"
    requires = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    app_extra = [r for r in meta.get_all("Requires-Dist") if "extra ==" in r]
    pins = _requirement_lines()

    def canon(r: str) -> str:
        return _norm(r.replace(" ", "").replace("'", '"'))

    # The same pins as requirements.txt; gradio only as the `app` extra.
    assert sorted(canon(r) for r in requires) == sorted(canon(p) for p in pins if not p.startswith("gradio"))
    assert {r.split(";")[0].split("==")[0] for r in app_extra} == {"gradio", "gradio_client"}
    with zipfile.ZipFile(wheel) as z:
        ep = z.read(next(n for n in z.namelist() if n.endswith("entry_points.txt"))).decode()
    assert "steerseg = steerseg_core.cli:main" in ep


def test_every_library_import_is_declared():
    declared = {_norm(p.split(";")[0].split("==")[0]) for p in _requirement_lines()}
    found: set[str] = set()
    for f in (ROOT / "steerseg_core").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    third = {m for m in found if m not in sys.stdlib_module_names and m != "steerseg_core"} - OPTIONAL_IMPORTS
    missing = sorted(m for m in third if _norm(IMPORT_TO_DIST.get(m, m)) not in declared)
    assert not missing, f"imported by steerseg_core but not declared: {missing}"


def test_installed_console_script_from_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    script = target / "bin" / "steerseg"
    assert script.is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(script), "--help"], cwd=outside, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "segment" in r.stdout and "train" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import steerseg_core, sys; print(steerseg_core.__file__)"],
                       cwd=outside, env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().startswith(str(target)), (r.stdout, r.stderr)  # the installed copy, not the checkout


@pytest.mark.skipif(shutil.which("vermin") is None and not (Path(sys.executable).parent / "vermin").exists(),
                    reason="vermin is not installed (requirements-dev.txt)")
def test_code_runs_on_python_310():
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    r = subprocess.run([vermin, "-t=3.10-", "--no-tips", "--violations", "--eval-annotations",
                        "steerseg_core", "ui", "app.py", "benchmarks"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
