"""The one atomic-write and safe-name helper (steerseg_core/files.py) and that nobody keeps another."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from steerseg_core import files

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "out.bin"
    files.atomic_write_bytes(target, b"old")
    files.atomic_write_bytes(target, b"new", durable=False)
    assert target.read_bytes() == b"new"

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_text(target, "never")
    assert target.read_bytes() == b"new"  # the old file, whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temp file left


def test_atomic_write_json_takes_numpy_scalars_sets_and_paths(tmp_path):
    out = files.atomic_write_json(tmp_path / "a.json", {"n": np.int64(3), "x": np.float32(0.5),
                                                         "p": tmp_path, "t": (1, 2), "s": {7}})
    assert json.loads(out.read_text()) == {"n": 3, "x": 0.5, "p": str(tmp_path), "t": [1, 2], "s": [7]}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        files.atomic_write_json(tmp_path / "b.json", {"bad": object()})


@pytest.mark.parametrize("name, expected", [
    ("frame 01.png", "frame_01.png"), ("../../etc/passwd", "passwd"), ("a\\b\\c.txt", "c.txt"),
    (".hidden", "hidden"), ("", "fb"), ("..", "fb"), ("my prompts", "my_prompts"), ("ünïcode", "ünïcode"),
])
def test_safe_name(name, expected):
    assert files.safe_name(name, "fb") == expected


def test_no_module_keeps_its_own_atomic_write_or_safe_name():
    own = []
    for path in sorted((ROOT / "steerseg_core").rglob("*.py")):
        if path.name == "files.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in (
                    "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "write_json_atomic",
                    "safe_name", "temp_path", "fsync_dir"):
                own.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert own == []
