"""Model work of the app, shaped for ZeroGPU on Hugging Face Spaces (and plain everywhere else).

On ZeroGPU, ``spaces.GPU`` runs the decorated function in another process: its arguments and its
return value are pickled, so the jobs below take a small picklable ``GpuJob`` (the run config, the
clip's *file path* — the clip is decoded on the GPU side, never piped — and plain values) and return
a ``SegmentationResult`` (numpy arrays and dataclasses). The slot length is a callable of the job
(``gpu_seconds``: from the clip's frame count), as ``spaces.GPU(duration=...)`` accepts. Elsewhere
``spaces`` is absent and the functions run in-process.

``spaces`` must be imported before CUDA is initialised, so app.py imports this module first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from steerseg_core.config import SteerSegConfig

F = TypeVar("F", bound=Callable)

try:  # present on Spaces; absent elsewhere
    import spaces  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the host
    spaces = None

# The slot estimate (seconds): model loading + CoT + rollouts, then SAM2 per frame and candidate.
BASE_SECONDS = 45.0
SECONDS_PER_FRAME_AND_CANDIDATE = 0.02
MIN_SECONDS = 60


@dataclass(frozen=True)
class GpuJob:
    """Everything one model call needs, picklable: the config, the clip's path, the expression, the
    ceiling of the GPU slot (``ServiceConfig.gpu_duration``) and, for a refinement, the result and
    clicks."""

    config: SteerSegConfig
    video: str
    expression: str = ""
    max_seconds: int = 180
    result: Any = None  # SegmentationResult for ``refine_on_gpu`` and the diagnostics below
    clicks: tuple[tuple[int, float, float, int], ...] = field(default_factory=tuple)
    frame: int | None = None  # ``readouts_on_gpu``: the keyframe (None = the chosen tracklet's)
    attributes: str = ""  # ``attributes_on_gpu``: the user's attributes

    def clip(self) -> Any:
        """The clip, decoded here (in the GPU process) from its path, under the job's limits."""
        from steerseg_core.video import load_clip

        return load_clip(self.video, self.config.limits)


def gpu_seconds(job: GpuJob, *_args: Any, **_kwargs: Any) -> int:
    """The ZeroGPU slot for ``job``: ``BASE_SECONDS`` + frames × keyframes (the most candidates) ×
    ``SECONDS_PER_FRAME_AND_CANDIDATE``, between ``MIN_SECONDS`` and ``job.max_seconds``. Reads only
    the clip's header; an unreadable clip gets the minimum (the job then fails with the reason)."""
    from steerseg_core.errors import SteerSegError
    from steerseg_core.video import probe_video

    try:
        frames = probe_video(job.video, job.config.limits).num_frames
    except (SteerSegError, OSError):
        frames = 0
    candidates = 1 if job.result is not None else job.config.grounding.t_frame
    estimate = BASE_SECONDS + SECONDS_PER_FRAME_AND_CANDIDATE * frames * candidates
    return int(max(MIN_SECONDS, min(job.max_seconds, estimate)))


def gpu_task(fn: F) -> F:
    """Run ``fn(job, ...)`` on a ZeroGPU slot of ``gpu_seconds(job)`` where ``spaces`` is installed."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=gpu_seconds)(fn)


@gpu_task
def segment_on_gpu(job: GpuJob, progress: Callable[[str, float], None] | None = None) -> Any:
    """The whole method on ``job.video``. ``progress`` is for in-process runs only (it does not
    pickle); the app passes ``None`` on a Space."""
    from steerseg_core.pipeline import SteerSeg
    clip = job.clip()
    return SteerSeg(job.config).run(clip, job.expression, progress=progress)


@gpu_task
def refine_on_gpu(job: GpuJob) -> Any:
    """Re-propagate ``job.result``'s chosen tracklet with ``job.clicks``."""
    from steerseg_core.pipeline import SteerSeg
    clip = job.clip()
    return SteerSeg(job.config).refine(job.result, clip, list(job.clicks))


@gpu_task
def readouts_on_gpu(job: GpuJob) -> Any:
    """The five readouts of ``job.result`` at ``job.frame`` (``SteerSeg.compare_readouts``)."""
    from steerseg_core.pipeline import SteerSeg
    clip = job.clip()
    return SteerSeg(job.config).compare_readouts(job.result, clip, job.frame)


@gpu_task
def attributes_on_gpu(job: GpuJob) -> Any:
    """Counterfactual attributes: ``job.result`` re-run with ``job.attributes`` (no new CoT)."""
    from steerseg_core.pipeline import SteerSeg
    clip = job.clip()
    return SteerSeg(job.config).with_attributes(job.result, clip, job.attributes)


def preload_models(config: SteerSegConfig) -> None:
    """Load the configured backbone and SAM2 at startup, as ZeroGPU prescribes (module level, on
    'cuda', which ZeroGPU intercepts until a slot is granted). Called by app.py on a Space only."""
    from steerseg_core.pipeline import cached_grounder, cached_sam2

    cached_grounder(config.grounding)
    cached_sam2(config.segment.sam2, config.segment.device)
