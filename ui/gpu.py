"""ZeroGPU support on Hugging Face Spaces: `spaces.GPU` when the package is there, else a no-op.

`spaces` must be imported before CUDA is initialised, so app.py imports this module first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

try:  # present on Spaces; absent elsewhere
    import spaces  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the host
    spaces = None

GPU_DURATION_S = int(os.environ.get("STEERSEG_GPU_DURATION", "180"))


def gpu_task(fn: F) -> F:
    """Run ``fn`` on a ZeroGPU slot (duration estimate from STEERSEG_GPU_DURATION) where available."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=GPU_DURATION_S)(fn)
