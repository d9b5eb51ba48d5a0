"""Small file facts used everywhere: atomic writes, safe file names, the tiny-model marker.

One implementation of each, so that every writer (exports, checkpoints, evaluation runs, study
caches, training notes) is crash-safe in the same way and every file name derived from user
text is cleaned by the same rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

# A model folder holding this file was written by ``steerseg_core.testing`` (random weights):
# loaders mark the loaded model as tiny and every face of the tool labels its outputs.
TINY_MARKER = "STEERSEG_TINY.txt"
TINY_LABEL = "tiny random-weight model for tests and demos (outputs are meaningless)"


def has_tiny_marker(path: str | Path) -> bool:
    """True for a model folder (or a file in one) written by ``make-tiny-models``."""
    p = Path(path).expanduser()
    if p.is_file():
        p = p.parent
    return p.is_dir() and ((p / TINY_MARKER).exists() or (p.parent / TINY_MARKER).exists())


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``:
    readers see the old file or the new one, never a part. ``durable`` also fsyncs the file
    before the rename. The temp file is removed if anything fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path.parent, path.name)
    try:
        with open(tmp, "xb") as fh:  # normal permissions (mkstemp would make it 0600)
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def temp_path(folder: Path, name: str, suffix: str = ".tmp") -> Path:
    """A hidden, unused name beside the final one, for writing before an ``os.replace``."""
    return Path(folder) / f".{name}.{secrets.token_hex(6)}{suffix}"


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), durable)


def json_default(obj: Any) -> Any:
    """What JSON cannot hold as is: numpy scalars become numbers, sets lists, paths strings."""
    if getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: str | Path, data: Any, durable: bool = True, indent: int | None = 2,
                      default: Any = json_default) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, default=default) + "\n", durable)


def fsync_dir(path: str | Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_name(name: str, fallback: str) -> str:
    """A file stem that cannot leave its folder: the last path component, word characters, ``.``
    and ``-`` only (others become ``_``), never hidden, at most 200 characters; ``fallback``
    when nothing is left."""
    stem = re.split(r"[\\/]", str(name))[-1].strip()
    stem = re.sub(r"[^\w.\-]", "_", stem).lstrip(".")
    return stem[:200] if stem else fallback


# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"): = + - @, and
# tab / carriage return, which some programs skip before looking for one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A text cell for a CSV file that a spreadsheet opens as text, never as a formula: a cell
    starting with = + - @ tab or CR gets a leading single quote (OWASP's advice). Only for text
    cells — numbers are written as numbers."""
    text = str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text
