"""What every tab of the app shares: the run configuration and the writable paths.

Built once by ``app.create_app`` from environment variables and flags; tabs read it and never
compute paths of their own, so a Space can point every writable path at persistent storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from steerseg_core.config import SteerSegConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AppContext:
    config: SteerSegConfig = field(default_factory=SteerSegConfig.from_env)
    db_path: Path = ROOT / "annotations" / "steerseg.db"
    checkpoints_dir: Path = ROOT / "checkpoints"
    runs_dir: Path = ROOT / "runs"
    cache_dir: Path = ROOT / "annotations" / "gif_cache"
    examples_dir: Path | None = None

    @classmethod
    def from_env(cls) -> AppContext:
        """Paths from STEERSEG_DB, STEERSEG_CHECKPOINTS, STEERSEG_RUNS, STEERSEG_CACHE,
        STEERSEG_EXAMPLES (each optional)."""
        ctx = cls()
        env = os.environ
        if env.get("STEERSEG_DB"):
            ctx.db_path = Path(env["STEERSEG_DB"])
        if env.get("STEERSEG_CHECKPOINTS"):
            ctx.checkpoints_dir = Path(env["STEERSEG_CHECKPOINTS"])
        if env.get("STEERSEG_RUNS"):
            ctx.runs_dir = Path(env["STEERSEG_RUNS"])
        if env.get("STEERSEG_CACHE"):
            ctx.cache_dir = Path(env["STEERSEG_CACHE"])
        if env.get("STEERSEG_EXAMPLES"):
            ctx.examples_dir = Path(env["STEERSEG_EXAMPLES"])
        return ctx
