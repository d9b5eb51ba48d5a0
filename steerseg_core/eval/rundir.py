"""The files of one evaluation run, written so that a killed run never leaves a half-written file
that counts: every JSON goes through a temp file and ``os.replace``.

    run.json                          what was run: benchmark, data root, config, predictor
    Annotations/<key>/                the chosen masks, <frame>.png (0/255) — the submission layout
                                      (key: <video>/<exp_id>, ReasonVOS <source>_<video>_<obj_id>/<exp_id>)
    expressions/<key>.json            one record per finished expression (written last)
    summary.json, summary.md          the paper's table for the records present
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from ..config import SteerSegConfig
from ..datasets import Benchmark, Expression
from ..errors import InputError
from ..files import atomic_write_text


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars/arrays → Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(data), indent=1, ensure_ascii=False) + "\n")


class RunDir:
    """The files of one run (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.records_dir = self.root / "expressions"
        self.masks_dir = self.root / "Annotations"

    def record_path(self, key: str) -> Path:
        return self.records_dir / f"{quote(key, safe='')}.json"

    def mask_dir(self, expr: Expression) -> Path:
        return self.masks_dir / expr.key

    def load_records(self) -> dict[str, dict]:
        """Every complete record by key (unreadable files — never produced by a clean write — are
        ignored, so the expression is redone)."""
        out: dict[str, dict] = {}
        if not self.records_dir.is_dir():
            return out
        for p in sorted(self.records_dir.glob("*.json")):
            try:
                rec = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(rec, dict) and "key" in rec and "status" in rec:
                out[rec["key"]] = rec
        return out

    def load_record(self, key: str) -> dict | None:
        try:
            rec = json.loads(self.record_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and "status" in rec else None

    def write_record(self, record: dict) -> None:
        write_json(self.record_path(record["key"]), record)

    def meta(self) -> dict | None:
        p = self.root / "run.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


# Settings that change speed or placement, not results: runs and shards may differ in these.
_RUNTIME_KEYS = {("grounding", "device"), ("segment", "device"), ("grounding", "frame_batch_size"),
                 ("grounding", "rollout_chunk")}


def comparable_config(config: dict) -> dict:
    out = {}
    for section, values in config.items():
        if section == "limits":
            continue
        if isinstance(values, dict):
            out[section] = {k: v for k, v in values.items() if (section, k) not in _RUNTIME_KEYS}
        else:
            out[section] = values
    return json.loads(json.dumps(out))  # tuples → lists, as stored


def config_differences(a: dict, b: dict) -> list[str]:
    ca, cb = comparable_config(a), comparable_config(b)
    diffs = []
    for section in sorted(set(ca) | set(cb)):
        sa, sb = ca.get(section, {}), cb.get(section, {})
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            if sa != sb:
                diffs.append(section)
            continue
        diffs.extend(f"{section}.{k}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k))
    return diffs


def init_run_dir(run: RunDir, bench: Benchmark, config: SteerSegConfig | None, predictor: str) -> dict:
    """Create ``run.json`` or check that an existing run is the same benchmark and configuration."""
    meta = {"benchmark": bench.name, "split": bench.split, "data_root": str(bench.root),
            "config": config.to_dict() if config is not None else {}, "predictor": predictor}
    if bench.options:
        meta["options"] = dict(bench.options)
    old = run.meta()
    if old is None:
        run.root.mkdir(parents=True, exist_ok=True)
        meta["created"] = now()
        write_json(run.root / "run.json", meta)
        return meta
    if old.get("benchmark") != bench.name or old.get("split") != bench.split:
        raise InputError(f"{run.root} holds a {old.get('benchmark')} {old.get('split')} run, not "
                         f"{bench.name} {bench.split}; use another --out")
    diffs = config_differences(old.get("config", {}), meta["config"])
    if old.get("predictor") != predictor:
        diffs.append("predictor")
    if diffs:
        raise InputError(f"{run.root} was started with a different configuration "
                         f"(differs in: {', '.join(diffs)}); resume with the same options or use another --out")
    return old


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
