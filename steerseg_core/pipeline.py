"""SteerSeg end to end: grounding + segmentation → SegmentationResult, as one call or in stages.

The stages are separate so the app can re-pick a candidate, change α or add a correcting click
without recomputing the LVLM part: ``ground`` → ``segment`` (candidates + scores) → ``choose`` /
``rescore`` / ``refine`` on the result. Loaded models are cached (a bounded, least-recently-used
cache) and shared by every pipeline in the process (the app builds one per request).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .config import GroundingConfig, LimitsConfig, ServiceConfig, SteerSegConfig, service_from_env
from .errors import InputError, OutOfMemoryError
from .stages import Stage, timing_key
from .types import Clip, GroundingResult, SegmentationResult, Tracklet

Progress = Callable[[str, float], None]

# Loaded models, least recently used first. At most ``ServiceConfig.max_cached_models``
# (STEERSEG_MAX_CACHED_MODELS) backbones and as many SAM2 models stay loaded (the app builds a
# pipeline per request and users may pick other models: an unbounded cache would keep a copy of
# every model ever asked for). Soft prompts are tiny and are cached per backbone.
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_LOCK = threading.RLock()
MAX_CACHED_SOFT_PROMPTS = 8


def _model_limit(max_models: int | None) -> int:
    return max(1, max_models if max_models is not None else service_from_env().max_cached_models)


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cached(key: tuple, build: Callable[[], Any], limit: int) -> Any:
    """The cached value for ``key`` (kind = ``key[0]``), else ``build()`` it, first evicting the
    least recently used entries of that kind so that at most ``limit`` remain."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        same_kind = [k for k in _CACHE if k[0] == key[0]]
        evicted = same_kind[: max(0, len(same_kind) - limit + 1)]
        for old in evicted:
            del _CACHE[old]
            if old[0] == "lvlm":  # its soft prompts go with it
                for k in [k for k in _CACHE if k[0] == "soft" and k[1] == old]:
                    del _CACHE[k]
        if evicted and key[0] != "soft":
            _free_memory()  # before loading the next model, not after
        value = build()
        _CACHE[key] = value
        return value


def cached_models() -> list[tuple]:
    """Keys of the models loaded now, least recently used first (for tests and diagnostics)."""
    with _CACHE_LOCK:
        return list(_CACHE)


def _soft_prompts_for(cfg: GroundingConfig, adapter: Any, adapter_key: tuple) -> tuple[Any, dict]:
    """(soft prompts or None, provenance) for ``cfg.soft_prompts`` (see ``resolve_soft_prompts``):
    none unless a checkpoint, a hub reference or ``seed`` is named."""
    from .grounding.soft_prompts import NONE_SOURCES, resolve_soft_prompts

    spec = (cfg.soft_prompts or "").strip()
    if spec.lower() in NONE_SOURCES:
        return resolve_soft_prompts(None, adapter)
    try:  # a checkpoint rewritten under the same name is loaded again
        stamp = os.stat(spec).st_mtime_ns
    except OSError:
        stamp = 0
    key = ("soft", adapter_key, spec, cfg.n_prompts, stamp)
    return _cached(key, lambda: resolve_soft_prompts(spec, adapter, cfg.n_prompts), MAX_CACHED_SOFT_PROMPTS)


def cached_grounder(cfg: GroundingConfig, limits: LimitsConfig | None = None, max_models: int | None = None):
    """A Grounder for this configuration: the backbone is loaded once per process (and evicted
    when another one is needed; at most ``max_models``, default ``ServiceConfig.max_cached_models``),
    the soft prompts once per backbone; the per-call options (T_f, T_v, layers, CoT/soft prompts
    on or off) come from ``cfg``, the input limits the grounder checks from ``limits``."""
    from .grounding.grounder import Grounder
    from .grounding.lvlm import load_adapter

    adapter_key = ("lvlm", cfg.backbone, cfg.device, cfg.dtype)
    adapter = _cached(adapter_key, lambda: load_adapter(cfg.backbone, cfg.device, cfg.dtype),
                      _model_limit(max_models))
    soft, info = _soft_prompts_for(cfg, adapter, adapter_key)
    return Grounder(adapter, cfg, soft, info, limits)


def cached_sam2(spec: str, device: str = "auto", max_models: int | None = None):
    from .segment import build_sam2

    return _cached(("sam2", spec, device), lambda: build_sam2(spec, device), _model_limit(max_models))


def clear_model_cache() -> None:
    """Drop every cached model and free device memory (after an out-of-memory error)."""
    with _CACHE_LOCK:
        _CACHE.clear()
    _free_memory()


def _oom_guard(fn: Callable[[], Any], what: str) -> Any:
    import torch

    try:
        return fn()
    except torch.OutOfMemoryError as err:
        clear_model_cache()
        raise OutOfMemoryError(f"out of memory during {what}: try fewer keyframes (T_f), a smaller "
                               "frame token budget, a shorter clip or a smaller SAM2 model") from err


class _StageClock:
    """Passes progress through and notes when each reported sub-stage started, for timings."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.starts: list[tuple[str, float]] = []

    def __call__(self, stage: str, fraction: float) -> None:
        if not self.starts or self.starts[-1][0] != stage:
            self.starts.append((stage, time.perf_counter()))
        if self.progress:
            self.progress(stage, fraction)

    def durations(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, (stage, start) in enumerate(self.starts):
            stop = self.starts[i + 1][1] if i + 1 < len(self.starts) else end
            key = timing_key(stage)
            out[key] = out.get(key, 0.0) + stop - start
        return out


class SteerSeg:
    """The whole method. ``SteerSeg(config).run(clip, expression)`` is all most users need."""

    def __init__(self, config: SteerSegConfig | None = None, service: ServiceConfig | None = None) -> None:
        self.config = config or SteerSegConfig()
        # How many loaded models the process keeps (``ServiceConfig.max_cached_models``).
        self.max_models = (service or service_from_env()).max_cached_models
        # Whether a model this pipeline ran is a random-weight test model (asked of the models).
        self._tiny = False

    # -- stages ------------------------------------------------------------------------------
    def ground(self, clip: Clip, expression: str, progress: Progress | None = None,
               attributes: str | None = None) -> GroundingResult:
        """The grounding stage; ``attributes`` (the user's, as text) replaces the CoT step."""
        from .video import validate_expression

        expression = validate_expression(expression, self.config.limits)  # before loading a model
        g = _oom_guard(lambda: cached_grounder(self.config.grounding, self.config.limits, self.max_models),
                       "model loading")
        self._tiny = self._tiny or bool(g.adapter.is_tiny)
        return _oom_guard(lambda: g.ground(clip, expression, progress, attributes=attributes), "grounding")

    def segment(self, clip: Clip, grounding: GroundingResult,
                progress: Progress | None = None) -> tuple[list[Tracklet], dict[str, float]]:
        """Candidate tracklets from the keyframe points, each scored; plus stage timings."""
        from .segment import generate_candidates, score_tracklets

        seg = self.config.segment
        t_load = time.perf_counter()
        backend = _oom_guard(lambda: cached_sam2(seg.sam2, seg.device, self.max_models), "SAM2 loading")
        self._tiny = self._tiny or bool(backend.is_tiny)
        t0 = time.perf_counter()
        stages = _StageClock(progress)
        tracklets = _oom_guard(lambda: generate_candidates(backend, clip, grounding, seg, stages),
                               "SAM2 propagation")
        t1 = time.perf_counter()
        if progress:
            progress(Stage.SCORING, 0.0)
        scored = score_tracklets(tracklets, grounding, seg.alpha, seg.logit_clip)
        t2 = time.perf_counter()
        return scored, {"sam2_load": t0 - t_load, **stages.durations(t1),
                        "sam2_candidates_and_propagation": t1 - t0, Stage.SCORING.timing_key: t2 - t1}

    def assemble(self, clip: Clip, grounding: GroundingResult, tracklets: list[Tracklet],
                 timings: dict[str, float]) -> SegmentationResult:
        from .segment import select_best

        if not tracklets:
            raise InputError("no candidate tracklets were produced")
        all_timings = {**{f"grounding_{k}": v for k, v in grounding.timings.items()}, **timings}
        return SegmentationResult(clip_source=clip.source, expression=grounding.expression,
                                  grounding=grounding, tracklets=tuple(tracklets),
                                  chosen=select_best(tracklets), config=self.config.to_dict(),
                                  timings=all_timings, tiny_models=self._tiny)

    def check_models(self) -> None:
        """Refuse a SAM2 spec that cannot name a model before any model work starts (otherwise the
        whole grounding stage runs first and its minutes are lost)."""
        from .segment.build_sam import check_sam2_spec

        check_sam2_spec(self.config.segment.sam2)

    def run(self, clip: Clip, expression: str, progress: Progress | None = None,
            attributes: str | None = None) -> SegmentationResult:
        """The whole method; ``attributes`` (text) are the user's instead of the CoT step's."""
        t0 = time.perf_counter()
        self.check_models()
        grounding = self.ground(clip, expression, progress, attributes)
        tracklets, timings = self.segment(clip, grounding, progress)
        result = self.assemble(clip, grounding, tracklets, timings)
        result.timings["total"] = time.perf_counter() - t0
        return result

    # -- diagnostics on a finished result ---------------------------------------------------------
    def compare_readouts(self, result: SegmentationResult, clip: Clip, frame: int | None = None):
        """The five readouts (``grounding.readouts``) at ``frame`` (default: the chosen tracklet's
        keyframe), reusing the run's CoT answer; returns the comparison and the result with
        result.json's ``"readouts"`` added."""
        from .grounding.readouts import compare_readouts

        if frame is None:
            frame = int(result.tracklets[result.chosen].source_keyframe)
        if not 0 <= frame < clip.num_frames:
            raise InputError(f"frame {frame} is outside the clip (0..{clip.num_frames - 1})")
        g = _oom_guard(lambda: cached_grounder(self.config.grounding, self.config.limits, self.max_models),
                       "model loading")
        comparison = _oom_guard(lambda: compare_readouts(g, clip, result.expression, frame, result.grounding.cot),
                                "readout comparison")
        return comparison, dataclasses.replace(
            result, diagnostics={**result.diagnostics, "readouts": comparison.to_json()})

    def with_attributes(self, result: SegmentationResult, clip: Clip, attributes: str,
                        progress: Progress | None = None) -> SegmentationResult:
        """Counterfactual attributes: re-run only the query step, the rollout and the scoring with
        the user's attributes (no new CoT; SAM2 reuses the clip's encoded frames), to see how the
        maps and the chosen tracklet move when the reasoning changes."""
        return self.run(clip, result.expression, progress, attributes=attributes)

    # -- cheap re-decisions on a finished result ------------------------------------------------
    @staticmethod
    def choose(result: SegmentationResult, index: int) -> SegmentationResult:
        if not 0 <= index < len(result.tracklets):
            raise InputError(f"candidate {index} does not exist (there are {len(result.tracklets)})")
        return dataclasses.replace(result, chosen=index)

    def _logit_clip(self, result: SegmentationResult) -> float:
        """The logit clip the result was scored with (its recorded configuration), else ours."""
        return float(result.config.get("segment", {}).get("logit_clip", self.config.segment.logit_clip))

    def rescore(self, result: SegmentationResult, alpha: float) -> SegmentationResult:
        """Change α and re-pick the best candidate; no model runs."""
        from .segment import score_tracklets, select_best

        if not 0.0 <= alpha <= 1.0:
            raise InputError("alpha must be between 0 and 1")
        tracklets = score_tracklets(list(result.tracklets), result.grounding, alpha, self._logit_clip(result))
        cfg = dict(result.config)
        cfg["segment"] = {**cfg.get("segment", {}), "alpha": alpha}
        return dataclasses.replace(result, tracklets=tuple(tracklets), chosen=select_best(tracklets),
                                   config=cfg)

    def refine(self, result: SegmentationResult, clip: Clip,
               clicks: list[tuple[int, float, float, int]]) -> SegmentationResult:
        """Add positive (1) / negative (0) clicks to the chosen tracklet and re-propagate it.
        The refined tracklet replaces the chosen one (its scores are recomputed)."""
        from .segment import refine_tracklet, score_tracklets

        for f, x, y, label in clicks:
            if not (0 <= f < clip.num_frames and 0 <= x < clip.width and 0 <= y < clip.height):
                raise InputError(f"click ({x:.0f}, {y:.0f}) on frame {f} is outside the clip")
            if label not in (0, 1):
                raise InputError("click label must be 1 (positive) or 0 (negative)")
        seg = self.config.segment
        backend = cached_sam2(seg.sam2, seg.device, self.max_models)
        chosen = result.tracklets[result.chosen]
        logit_clip = self._logit_clip(result)
        refined = _oom_guard(lambda: refine_tracklet(backend, clip, chosen, clicks, logit_clip), "refinement")
        alpha = float(result.config.get("segment", {}).get("alpha", seg.alpha))
        refined = score_tracklets([refined], result.grounding, alpha, logit_clip)[0]
        tracklets = list(result.tracklets)
        tracklets[result.chosen] = refined
        return dataclasses.replace(result, tracklets=tuple(tracklets))
