"""CoT attributes for training, generated once per expression and shared across runs.

Training with the prompt inference uses (the App. C query with CoT attributes) needs the frozen
model's CoT answer for every training expression. It costs one generation each, so the attributes
are cached on disk, one JSON file per backbone and CoT setting (the file name is a hash of the
backbone's name and fingerprint, the prompt version and the settings that change the answer): a
resumed run and any later run on the same backbone reuse them. Writes merge with what is on disk
and replace the file atomically, so runs sharing a cache never lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..files import atomic_write_json
from ..grounding import prompts


def cache_key(backbone: str, fingerprint: dict[str, Any], settings: dict[str, Any]) -> str:
    """A short stable name for (backbone, prompt version, CoT settings)."""
    blob = json.dumps({"backbone": backbone, "fingerprint": fingerprint, "prompt": prompts.PROMPT_VERSION,
                       **settings}, sort_keys=True, default=str)
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(backbone).name)[:60]
    return f"{slug}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


class CoTCache:
    """{record key: attributes as written} on disk at ``folder/<cache_key>.json``."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.path = Path(folder) / f"{key}.json"
        self.entries: dict[str, str] = self._read()

    def _read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # a damaged cache is regenerated, never trusted
        return {str(k): str(v) for k, v in data.get("attributes", {}).items()} if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, attributes: str, write: bool = True) -> None:
        """Remember ``attributes`` for ``key``; merged into the file (when ``write``)."""
        self.entries[key] = attributes
        if write:
            merged = {**self._read(), **self.entries}
            self.entries = merged
            atomic_write_json(self.path, {"prompt_version": prompts.PROMPT_VERSION, "attributes": merged})
