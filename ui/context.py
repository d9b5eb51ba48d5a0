"""What every tab of the app shares: the run configuration, the writable paths and the service switches.

Built once by ``app.context_from_env`` (the only UI-side reader of the environment, through
``steerseg_core.config``); tabs read it and never compute paths of their own, so a Space can point
every writable path at persistent storage. The per-run output folders are made here and nowhere else.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from steerseg_core.config import PathsConfig, ServiceConfig, SteerSegConfig, service_from_env

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class AppContext:
    config: SteerSegConfig = field(default_factory=SteerSegConfig)
    db_path: Path = ROOT / "annotations" / "steerseg.db"
    checkpoints_dir: Path = ROOT / "checkpoints"
    runs_dir: Path = ROOT / "runs"
    cache_dir: Path = ROOT / "annotations" / "gif_cache"
    examples_dir: Path | None = None
    outputs_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "steerseg_outputs")
    # Seconds one run's downloads (and its app session) are kept.
    outputs_max_age: float = 6 * 3600.0
    gradio_cache_dir: Path | None = None  # swept by ``ui.janitor`` (None: not swept)
    # The service switches (Space, training, password, allow-lists). None: read through
    # ``service_from_env`` at each use (a context built by hand, e.g. in a test); app.py fixes them
    # at startup.
    service_config: ServiceConfig | None = None

    @property
    def service(self) -> ServiceConfig:
        return self.service_config if self.service_config is not None else service_from_env()

    @classmethod
    def from_config(cls, config: SteerSegConfig, paths: PathsConfig, service: ServiceConfig) -> AppContext:
        """The context of an app configured by ``config``, ``paths`` and ``service`` (see app.py)."""
        return cls(config=config, db_path=paths.db, checkpoints_dir=paths.checkpoints, runs_dir=paths.runs,
                   cache_dir=paths.cache, examples_dir=paths.examples, outputs_dir=paths.outputs,
                   outputs_max_age=paths.outputs_max_age, service_config=service,
                   gradio_cache_dir=paths.gradio_cache)

    @property
    def tiny_models_dir(self) -> Path:
        """Where the one-click try-out writes its tiny random-weight models (built once, reused)."""
        return self.cache_dir / "tiny_models"

    def new_output_dir(self) -> Path:
        """A fresh folder for one run's files; folders older than ``outputs_max_age`` are removed,
        so the outputs folder stays bounded."""
        root = self.outputs_dir
        root.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in root.iterdir():
            try:
                if old.is_dir() and now - old.stat().st_mtime > self.outputs_max_age:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:  # removed meanwhile by a concurrent request
                continue
        out = root / uuid.uuid4().hex
        out.mkdir()
        return out
