"""Grounding: (clip, expression) → CoT attributes → steered query → S_frm and S_vid.

The paper's pipeline up to the attention maps (docs/method.md §1–6): a CoT step without soft prompts,
then the query step with soft prompts, once per keyframe (frame modality) and once over the video
(video modality); the first response token's rollout row over the visual tokens is the map.
``branch_rollout`` is the differentiable core that training reuses.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import GroundingConfig, LimitsConfig, resolve_layers
from ..errors import InputError
from ..stages import Stage
from ..types import Clip, CoTResult, GroundingResult, TokenGeometry
from . import prompts, rollout
from .attribute_attention import RowCapture
from .attribute_attention import summarise as summarise_attribute_attention
from .lvlm import HFAdapter, PreparedInputs, load_adapter
from .soft_prompts import SoftPrompts, no_soft_prompts_provenance, resolve_soft_prompts

Progress = Callable[[str, float], None]


class PromptFormWarning(UserWarning):
    """Soft prompts used with a query-prompt form (plain / with attributes) they were not trained on."""


@dataclass
class BranchOutput:
    """Rollout of one branch: raw maps (B, t, h, w) over the visual grid, differentiable when
    computed with grad; the response tokens and words; per-layer visual attention mass."""

    maps: torch.Tensor
    tokens: torch.Tensor
    words: list[str]
    geometry: TokenGeometry
    visual_mass: list[float]
    # The whole rollout row (B, N) over every token and where things are in it (attribute attention).
    capture: RowCapture | None = None


def _sample(num_frames: int, k: int) -> np.ndarray:
    from ..video import sample_indices

    return sample_indices(num_frames, k)


class Grounder:
    def __init__(self, adapter: HFAdapter, config: GroundingConfig,
                 soft_prompts: SoftPrompts | None = None, soft_prompts_info: dict | None = None,
                 limits: LimitsConfig | None = None) -> None:
        self.adapter = adapter
        self.config = config
        # The request's input limits (the expression is checked against them).
        self.limits = limits if limits is not None else LimitsConfig()
        self.layers = resolve_layers(config.layers, adapter.num_layers)
        if soft_prompts is not None:
            soft_prompts.check_compatible(adapter.fingerprint)
            if soft_prompts_info is None:
                source = "seed" if not soft_prompts.trained else str(
                    soft_prompts.meta.get("name") or config.soft_prompts or "given")
                soft_prompts_info = soft_prompts.provenance(source)
        self.soft_prompts = soft_prompts
        self.soft_prompts_info = soft_prompts_info or no_soft_prompts_provenance()

    @classmethod
    def from_config(cls, config: GroundingConfig, limits: LimitsConfig | None = None) -> Grounder:
        """Load the configured backbone and soft prompts (uncached; the pipeline caches them)."""
        adapter = load_adapter(config.backbone, config.device, config.dtype)
        soft, info = resolve_soft_prompts(config.soft_prompts, adapter, config.n_prompts)
        return cls(adapter, config, soft, info, limits)

    @property
    def soft_prompts_label(self) -> str:
        return soft_prompts_label(self.soft_prompts_info)

    # -- steps -------------------------------------------------------------------------------
    def cot(self, clip: Clip, expression: str) -> CoTResult:
        """The CoT step over the clip's T_v video frames (the study tools call this; the expression
        is checked against the request's limits here, as in ``ground``)."""
        from ..video import validate_expression

        expression = validate_expression(expression, self.limits)
        idx = _sample(clip.num_frames, self.config.t_video)
        return self.cot_frames(clip.frames[idx], expression, self._fps(clip, len(idx)))

    def cot_frames(self, frames: np.ndarray, expression: str, fps: float) -> CoTResult:
        """The CoT step (DESIGN.md 2) over these video frames at ``fps``, without soft prompts:
        the one implementation that grounding, the study tools and training all run."""
        prepared = self.adapter.build_video(frames, prompts.cot_prompt(expression),
                                            self.config.frame_max_tokens, fps)
        _, texts = self.adapter.generate(prepared, self.config.cot_max_new_tokens)
        return prompts.parse_cot(texts[0])

    def branch_rollout(self, prepared: PreparedInputs, soft: torch.Tensor | None,
                       tokens: torch.Tensor | None = None) -> BranchOutput:
        """Query token (generated unless given) → forward over prompt + q → rollout row → maps."""
        n_soft = soft.shape[0] if soft is not None else 0
        prepared = self.adapter.splice_placeholders(prepared, n_soft)
        words: list[str] = []
        if tokens is None:
            new, words = self.adapter.generate(prepared, self.config.query_max_new_tokens, soft)
            tokens = new[:, :1]
        full = prepared.with_appended_tokens(tokens)
        lo, hi = self.layers
        with rollout.capturing(self.adapter.attention_modules(lo, hi), self.config.rollout_chunk) as cap:
            self.adapter.forward(full, soft)
        result = rollout.rollout_row(cap.ordered())
        pos = prepared.visual_positions
        t, h, w = prepared.visual_grid
        maps = result.row[:, pos].reshape(-1, t, h, w)
        mass = [float(r[:, pos].sum(dim=-1).mean()) for r in result.layer_rows]
        capture = RowCapture(result.row.detach().float().cpu(), full.model_inputs["input_ids"].cpu(), pos.cpu(),
                             prepared.soft_start, prepared.soft_count)
        return BranchOutput(maps, tokens, [prompts.clean_query_word(x) for x in words],
                            prepared.geometry, mass, capture)

    def frame_maps(self, frames: np.ndarray, query_text: str, soft: torch.Tensor | None,
                   progress: Progress | None = None, captures: list[RowCapture] | None = None,
                   ) -> tuple[torch.Tensor, list[str], TokenGeometry, list[float]]:
        """S_frm before normalisation: (T_f, h, w); keyframes in batches of frame_batch_size. The
        whole rollout rows are appended to ``captures`` when given."""
        maps, words, masses = [], [], []
        geometry = None
        bs = max(1, self.config.frame_batch_size)
        for start in range(0, len(frames), bs):
            prepared = self.adapter.build_frames(frames[start:start + bs], query_text,
                                                 self.config.frame_max_tokens)
            with torch.no_grad():
                out = self.branch_rollout(prepared, soft)
            maps.append(out.maps[:, 0].float().cpu())
            if captures is not None:
                captures.append(out.capture)
            words += out.words
            masses.append(out.visual_mass)
            geometry = out.geometry
            if progress:
                progress(Stage.FRAME_ROLLOUT, min(1.0, (start + bs) / len(frames)))
        mass = np.mean(np.array(masses), axis=0).tolist()
        return torch.cat(maps), words, geometry, mass

    def video_maps(self, frames: np.ndarray, query_text: str, soft: torch.Tensor | None,
                   fps: float, captures: list[RowCapture] | None = None) -> tuple[torch.Tensor, str, TokenGeometry, list[float]]:
        """S_vid before normalisation: (T_v, h, w), temporal slots repeated back to T_v."""
        prepared = self.adapter.build_video(frames, query_text, self.config.frame_max_tokens, fps)
        with torch.no_grad():
            out = self.branch_rollout(prepared, soft)
        if captures is not None:
            captures.append(out.capture)
        slots = out.maps[0].float().cpu()
        per_slot = getattr(self.adapter, "frames_per_temporal_slot", 1)
        maps = slots.repeat_interleave(per_slot, dim=0)[: len(frames)]
        if maps.shape[0] != len(frames):
            raise RuntimeError(f"video branch gave {maps.shape[0]} maps for {len(frames)} frames")
        return maps, (out.words[0] if out.words else ""), out.geometry, out.visual_mass

    def _prompt_form_notes(self, use_soft: bool, with_attributes: bool) -> tuple[str, ...]:
        """Warn (and return the note) when the soft prompts were trained on the other query form."""
        trained_with_cot = self.soft_prompts_info.get("trained_with_cot") if use_soft else None
        if trained_with_cot is None or bool(trained_with_cot) == with_attributes:
            return ()
        said = {True: "with CoT attributes", False: "without attributes (plain)"}
        note = (f"the soft prompts were trained on the query {said[bool(trained_with_cot)]} but this run queries "
                f"{said[with_attributes]}: the maps may be off (use the matching --no-cot setting, or a checkpoint "
                "trained with the other form)")
        warnings.warn(note, PromptFormWarning, stacklevel=3)
        return (note,)

    @staticmethod
    def _fps(clip: Clip, k: int) -> float:
        from ..video import effective_fps

        return effective_fps(clip.fps, clip.num_frames, k)

    # -- the whole grounding -----------------------------------------------------------------
    def ground(self, clip: Clip, expression: str, progress: Progress | None = None, *,
               use_cot: bool | None = None, use_soft_prompts: bool | None = None,
               attributes: str | None = None) -> GroundingResult:
        """S_frm and S_vid for ``expression``. ``attributes`` (text, e.g. "black, on the left")
        replaces the CoT step: the query runs with these attributes as typed (counterfactual
        reasoning; ``attributes_source`` "user")."""
        from ..video import validate_expression

        expression = validate_expression(expression, self.limits)
        use_cot = self.config.use_cot if use_cot is None else use_cot
        # From the configuration, soft prompts are used when a source was given (never a silent
        # seed fallback); asked for explicitly without any loaded, it is an error.
        use_soft = (self.config.use_soft_prompts and self.soft_prompts is not None
                    if use_soft_prompts is None else use_soft_prompts)
        if use_soft and self.soft_prompts is None:
            raise InputError("soft prompts were requested but none are loaded: pass a trained checkpoint "
                             "(--soft-prompts FILE.safetensors or a hub reference user/repo), or "
                             "--soft-prompts seed for untrained seed-initialised prompts")
        timings: dict[str, float] = {}
        keyframes = _sample(clip.num_frames, self.config.t_frame)
        video_frames = _sample(clip.num_frames, self.config.t_video)

        cot = None
        t0 = time.perf_counter()
        if attributes is not None:
            cot, use_cot = prompts.user_attributes(attributes), True
        elif use_cot:
            if progress:
                progress(Stage.COT, 0.0)
            cot = self.cot_frames(clip.frames[video_frames], expression,
                                  self._fps(clip, len(video_frames)))
        timings[Stage.COT.timing_key] = time.perf_counter() - t0
        query_text = prompts.query_prompt(expression, cot.attributes_text if cot else None)
        notes = self._prompt_form_notes(use_soft, cot is not None)

        soft_f = self.soft_prompts.frame if use_soft else None
        soft_v = self.soft_prompts.video if use_soft else None
        t0 = time.perf_counter()
        if progress:
            progress(Stage.FRAME_ROLLOUT, 0.0)
        frame_rows: list[RowCapture] = []
        video_rows: list[RowCapture] = []
        s_frm, words, fgeo, fmass = self.frame_maps(clip.frames[keyframes], query_text, soft_f, progress, frame_rows)
        timings[Stage.FRAME_ROLLOUT.timing_key] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if progress:
            progress(Stage.VIDEO_ROLLOUT, 0.0)
        s_vid, vword, vgeo, vmass = self.video_maps(clip.frames[video_frames], query_text, soft_v,
                                                    self._fps(clip, len(video_frames)), video_rows)
        attrs = list(cot.attributes) if cot else []
        frame_att = summarise_attribute_attention(self.adapter.tokenizer, frame_rows, attrs)
        video_att = summarise_attribute_attention(self.adapter.tokenizer, video_rows, attrs)
        timings[Stage.VIDEO_ROLLOUT.timing_key] = time.perf_counter() - t0

        return GroundingResult(
            expression=expression, cot=cot,
            query_word=vword or (max(set(words), key=words.count) if words else ""),
            query_words_frames=tuple(words), keyframes=keyframes, video_frames=video_frames,
            s_frm=normalise_frame_maps(s_frm, self.config.frame_normalisation).numpy().astype(np.float32),
            s_vid=rollout.normalise_maps(s_vid.unsqueeze(0), 3)[0].numpy().astype(np.float32),
            frame_geometry=fgeo, video_geometry=vgeo, use_cot=use_cot, use_soft_prompts=use_soft,
            backbone=self.adapter.name, layers=self.layers,
            layer_summaries={"layers": list(range(self.layers[0], self.layers[1] + 1)),
                             "frame_visual_mass": fmass, "video_visual_mass": vmass},
            soft_prompts_label=self.soft_prompts_label if use_soft else "none",
            soft_prompts_info=dict(self.soft_prompts_info) if use_soft else no_soft_prompts_provenance(),
            attributes_source=None if cot is None else ("user" if attributes is not None else "cot"),
            attribute_attention=tuple(frame_att["attributes"]) if cot else (),
            attribute_attention_video=tuple(video_att["attributes"]) if cot else (),
            row_split={"frame": frame_att["row_split"], "video": video_att["row_split"]},
            warnings=notes,
            timings=timings,
        )


def normalise_frame_maps(maps: torch.Tensor, mode: str) -> torch.Tensor:
    """S_frm (T_f, h, w) to [0, 1]: each keyframe on its own ("per_keyframe") or with one min and
    max over all keyframes ("joint"); see ``GroundingConfig.frame_normalisation``."""
    from ..config import FRAME_NORMALISATIONS

    if mode == "per_keyframe":
        return rollout.normalise_maps(maps, 2)
    if mode == "joint":
        return rollout.normalise_maps(maps.unsqueeze(0), 3)[0]
    raise InputError(f"frame normalisation must be one of {', '.join(FRAME_NORMALISATIONS)}, got {mode!r}")


def soft_prompts_label(info: dict) -> str:
    """One line for people: ``none``, ``seed-initialised (untrained)`` or the source with its
    training steps."""
    from .soft_prompts import hub_reference

    source = str(info.get("source") or "none")
    if source not in ("none", "seed") and hub_reference(source) is None:
        source = Path(source).name  # a local file by its name: never the server's folders
    if source == "none":
        return "none"
    if not info.get("trained"):
        return "seed-initialised (untrained)" if source == "seed" else f"{source} (untrained)"
    steps = info.get("steps")
    form = {True: ", trained with CoT", False: ", trained without CoT"}.get(info.get("trained_with_cot"), "")
    return f"{source} ({steps} steps{form})" if steps is not None else source


def soft_prompts_note(info: dict, wanted: bool, how: str) -> str:
    """What a run's soft prompts were, said plainly for a CLI line or the app's note: never "on"
    for untrained prompts; ``how`` tells the user how to give a trained checkpoint."""
    label = soft_prompts_label(info)
    if info.get("source") == "none":
        return "none (switched off)" if not wanted else f"none - no trained checkpoint given ({how})"
    if not info.get("trained"):
        return f"{label} - NOT trained: these numbers match no row of the paper"
    return label
