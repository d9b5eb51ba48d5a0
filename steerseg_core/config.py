"""One configuration tree for a SteerSeg run; the defaults are the paper's (Table 5).

Every entry point (library, CLI, app, training, evaluation) builds a ``SteerSegConfig`` and passes
it down, so a result records exactly what produced it (``to_dict``) and limits are enforced in the
core rather than only in the UI.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BACKBONE = "Qwen/Qwen2.5-VL-7B-Instruct"
FRAME_NORMALISATIONS = ("per_keyframe", "joint")
DEFAULT_SAM2 = "large"


def positive_env_number(env: Mapping[str, str], name: str, kind: type = float) -> Any:
    """The positive ``kind`` (int or float) in variable ``name``, or None when it is unset; any other
    value is an ``InputError`` naming the variable."""
    from .errors import InputError

    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InputError(f"{name} must be a {'number' if kind is float else 'whole number'}, "
                         f"got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{name} must be greater than 0, got {text!r}")
    return value


@dataclass
class LimitsConfig:
    """Input limits, enforced by the core (video reader, prompts, app, CLI alike).

    Each can be set from the environment as ``STEERSEG_`` + the field name in capitals, e.g.
    ``STEERSEG_MAX_SECONDS=120`` (see ``from_env``); the app shows them and the CLI obeys them.
    """

    max_upload_mb: float = 500.0
    max_seconds: float = 600.0
    max_frames: int = 3000
    max_pixels: int = 3840 * 2160
    max_expression_chars: int = 1000
    # Segmentations running at once (the app's GPU queue); more wait in line ...
    max_concurrent_jobs: int = 1
    # ... and at most this many may wait: beyond it a request is refused with a "busy" message.
    max_waiting_jobs: int = 16
    max_gif_bytes: int = 8 * 1024 * 1024
    max_gif_frames: int = 2000
    # Memory the decoded frames of one clip may take (T × H × W × 3 bytes after resizing), checked
    # from the header before a frame is decoded: a tiny GIF can declare 1,000 frames of 2000².
    max_decoded_mb: float = 4096.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LimitsConfig:
        """Defaults, overridden by ``STEERSEG_MAX_UPLOAD_MB``, ``STEERSEG_MAX_SECONDS``,
        ``STEERSEG_MAX_FRAMES``, ``STEERSEG_MAX_PIXELS``, ``STEERSEG_MAX_EXPRESSION_CHARS``,
        ``STEERSEG_MAX_CONCURRENT_JOBS``, ``STEERSEG_MAX_WAITING_JOBS``, ``STEERSEG_MAX_GIF_BYTES``,
        ``STEERSEG_MAX_GIF_FRAMES`` and ``STEERSEG_MAX_DECODED_MB`` where set. A value that is not a positive number is an
        ``InputError`` naming the variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind = float if f.type in ("float", float) else int
            value = positive_env_number(env, f"STEERSEG_{f.name.upper()}", kind)
            if value is not None:
                values[f.name] = value
        return cls(**values)


@dataclass
class GroundingConfig:
    """CoT + soft-prompt-steered query + attention rollout (paper §3; docs/method.md §1–6)."""

    backbone: str = DEFAULT_BACKBONE
    t_frame: int = 16
    t_video: int = 8
    # Inclusive rollout layer range; None = the paper's 14..27 scaled to the model's depth.
    layers: tuple[int, int] | None = None
    use_cot: bool = True
    # Ablation switch: apply the soft prompts named by ``soft_prompts`` (off = query without them).
    use_soft_prompts: bool = True
    # Where the soft prompts come from: None / "none" = no soft prompts (the default: untrained
    # prompts belong to no row of the paper's Table 3); "seed" = the untrained seed initialisation,
    # only on request; else a .safetensors checkpoint or a hub reference (user/repo[/file.safetensors]).
    soft_prompts: str | None = None
    n_prompts: int = 64
    # Min-max normalisation of S_frm: "per_keyframe" (each keyframe's map to [0, 1] on its own) or
    # "joint" (one min and max over all keyframes, keeping how strongly each keyframe attends). The
    # paper does not say; per-keyframe is our default (the argmax points are the same either way,
    # s_frm's correlation is not). ``eval-ablation normalisation`` compares the two.
    frame_normalisation: str = "per_keyframe"
    # Token budget per keyframe (frame branch); the video branch runs at half the side length.
    frame_max_tokens: int = 1024
    cot_max_new_tokens: int = 128
    query_max_new_tokens: int = 6
    frame_batch_size: int = 4
    # Query rows per attention chunk in the rollout capture; 0 = automatic (256 on the torch path,
    # 1024 with the fused CUDA kernels). Changes speed and transient memory, not results.
    rollout_chunk: int = 0
    device: str = "auto"
    dtype: str = "auto"


@dataclass
class SegmentConfig:
    """Points → SAM2 tracklets → scoring (paper §3.3; docs/method.md §7–8)."""

    sam2: str = DEFAULT_SAM2
    alpha: float = 0.3
    nms_iou: float = 0.7
    logit_clip: float = 20.0
    device: str = "auto"


@dataclass
class SteerSegConfig:
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SteerSegConfig:
        def build(klass: type, values: dict[str, Any] | None) -> Any:
            values = dict(values or {})
            names = {f.name for f in dataclasses.fields(klass)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {klass.__name__} option(s): {', '.join(sorted(unknown))}")
            if "layers" in values and values["layers"] is not None:
                values["layers"] = tuple(values["layers"])
            return klass(**values)

        return cls(
            grounding=build(GroundingConfig, data.get("grounding")),
            segment=build(SegmentConfig, data.get("segment")),
            limits=build(LimitsConfig, data.get("limits")),
        )

    @classmethod
    def from_env(cls) -> SteerSegConfig:
        """Defaults, with the model choices taken from STEERSEG_BACKBONE / STEERSEG_SAM2 /
        STEERSEG_SOFT_PROMPTS and the limits from STEERSEG_MAX_* (``LimitsConfig.from_env``)
        where set."""
        cfg = cls(limits=LimitsConfig.from_env())
        cfg.grounding.backbone = os.environ.get("STEERSEG_BACKBONE", cfg.grounding.backbone)
        cfg.segment.sam2 = os.environ.get("STEERSEG_SAM2", cfg.segment.sam2)
        sp = os.environ.get("STEERSEG_SOFT_PROMPTS")
        if sp:
            cfg.grounding.soft_prompts = sp
        return cfg


# The folder the project's writable defaults live in: the repository (or install) root.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PathsConfig:
    """Where the tool writes: the study database, soft-prompt checkpoints, training runs, preview
    caches and per-run downloads. Each is ``STEERSEG_`` + the name in capitals (e.g. ``STEERSEG_DB``)
    so a Space can point them at persistent storage."""

    db: Path = PROJECT_ROOT / "annotations" / "steerseg.db"
    checkpoints: Path = PROJECT_ROOT / "checkpoints"
    runs: Path = PROJECT_ROOT / "runs"
    cache: Path = PROJECT_ROOT / "annotations" / "gif_cache"
    outputs: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "steerseg_outputs")
    # Seconds one run's downloads (and its app session) are kept.
    outputs_max_age: float = 6 * 3600.0
    examples: Path | None = None
    # Gradio's own file cache (GRADIO_TEMP_DIR, Gradio's default otherwise): the app also sweeps
    # files older than ``outputs_max_age`` there (Gradio's cleaner misses some copies under load).
    gradio_cache: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "gradio")


def paths_from_env(env: Mapping[str, str] | None = None) -> PathsConfig:
    """``PathsConfig`` with STEERSEG_DB, STEERSEG_CHECKPOINTS, STEERSEG_RUNS, STEERSEG_CACHE,
    STEERSEG_OUTPUTS, STEERSEG_OUTPUTS_MAX_AGE and STEERSEG_EXAMPLES applied where set."""
    env = os.environ if env is None else env
    paths = PathsConfig()
    for name in ("db", "checkpoints", "runs", "cache", "outputs", "examples"):
        value = (env.get(f"STEERSEG_{name.upper()}") or "").strip()
        if value:
            setattr(paths, name, Path(value).expanduser())
    gradio_cache = (env.get("GRADIO_TEMP_DIR") or "").strip()
    if gradio_cache:
        paths.gradio_cache = Path(gradio_cache).expanduser()
    age = (env.get("STEERSEG_OUTPUTS_MAX_AGE") or "").strip()
    if age:
        try:
            paths.outputs_max_age = max(1.0, float(age))
        except ValueError:
            from .errors import InputError

            raise InputError(f"STEERSEG_OUTPUTS_MAX_AGE must be a number of seconds, got {age!r}") from None
    return paths


@dataclass
class ServiceConfig:
    """How the tool is served: on a public Hugging Face Space or not, and the switches that guard
    a public deployment. Read once at startup (``service_from_env``) and passed to whoever needs it."""

    # SPACE_ID is set by Hugging Face Spaces: the app is public and binds 0.0.0.0:7860.
    space_id: str | None = None
    # STEERSEG_ALLOW_TRAINING=1 enables training control on a Space (off by default there).
    allow_training: bool = False
    # STEERSEG_ANNOTATE_PASSWORD: optional shared password for the annotation study.
    annotate_password: str | None = None
    # STEERSEG_GPU_DURATION: ZeroGPU seconds granted per model call.
    gpu_duration: int = 180
    # STEERSEG_MAX_CACHED_MODELS: backbones (and as many SAM2 models) kept loaded at once.
    max_cached_models: int = 1
    # HF_HUB_OFFLINE=1: the hub is not asked (messages say so).
    hub_offline: bool = False
    # STEERSEG_ALLOWED_BACKBONES / STEERSEG_ALLOWED_SAM2 (comma-separated): on a Space, the model
    # choices a caller may make; empty = the defaults (see ``steerseg_core.access``).
    allowed_backbones: tuple[str, ...] = ()
    allowed_sam2: tuple[str, ...] = ()
    # STEERSEG_TRAIN_ARGS (shell syntax): options added to every training run the app starts.
    train_args: str = ""

    @property
    def on_space(self) -> bool:
        return bool(self.space_id)

    @property
    def training_allowed(self) -> bool:
        return not self.on_space or self.allow_training


def service_from_env(env: Mapping[str, str] | None = None) -> ServiceConfig:
    """``ServiceConfig`` from SPACE_ID, STEERSEG_ALLOW_TRAINING, STEERSEG_ANNOTATE_PASSWORD,
    STEERSEG_GPU_DURATION, STEERSEG_MAX_CACHED_MODELS, HF_HUB_OFFLINE, STEERSEG_ALLOWED_BACKBONES,
    STEERSEG_ALLOWED_SAM2 and STEERSEG_TRAIN_ARGS."""
    env = os.environ if env is None else env

    def positive_int(name: str, default: int) -> int:
        value = positive_env_number(env, name, int)
        return default if value is None else value

    def names(name: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(x.strip() for x in (env.get(name) or "").split(",") if x.strip()))

    return ServiceConfig(
        space_id=(env.get("SPACE_ID") or "").strip() or None,
        allow_training=(env.get("STEERSEG_ALLOW_TRAINING") or "").strip() == "1",
        annotate_password=env.get("STEERSEG_ANNOTATE_PASSWORD") or None,
        gpu_duration=positive_int("STEERSEG_GPU_DURATION", 180),
        max_cached_models=positive_int("STEERSEG_MAX_CACHED_MODELS", 1),
        hub_offline=(env.get("HF_HUB_OFFLINE") or "").strip() == "1",
        allowed_backbones=names("STEERSEG_ALLOWED_BACKBONES"),
        allowed_sam2=names("STEERSEG_ALLOWED_SAM2"),
        train_args=env.get("STEERSEG_TRAIN_ARGS") or "",
    )


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process stands in a multi-process launch (accelerate / torchrun set these)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int | None = None

    @property
    def main_process(self) -> bool:
        return self.rank == 0


def distributed_env(env: Mapping[str, str] | None = None) -> DistributedEnv:
    """RANK, WORLD_SIZE and LOCAL_RANK as launchers set them (one process when unset)."""
    env = os.environ if env is None else env

    def number(name: str, default: int | None) -> int | None:
        text = (env.get(name) or "").strip()
        return int(text) if text else default

    return DistributedEnv(rank=number("RANK", 0) or 0, world_size=number("WORLD_SIZE", 1) or 1,
                          local_rank=number("LOCAL_RANK", None))


def triton_interpret(env: Mapping[str, str] | None = None) -> bool:
    """TRITON_INTERPRET=1: Triton runs its kernels in the CPU interpreter (how CI checks them)."""
    env = os.environ if env is None else env
    return (env.get("TRITON_INTERPRET") or "").strip() == "1"


def process_env() -> dict[str, str]:
    """A copy of this process's environment, the base of a child process's (training runs)."""
    return dict(os.environ)


def default_layer_range(num_layers: int) -> tuple[int, int]:
    """The paper's rollout range 14..27 of 28 layers, at the same relative depth for any model."""
    if num_layers <= 0:
        raise ValueError("model has no layers")
    start = round(num_layers * 14 / 28)
    return min(start, num_layers - 1), num_layers - 1


def parse_layer_range(text: str) -> tuple[int, int]:
    """'14-27', '14,27', '14:27' or '14..27' → (14, 27) (inclusive). A malformed range or one
    whose first layer is after its last is a ``ValueError``; the model's depth is checked later
    (``resolve_layers``)."""
    text = str(text).strip().replace("..", "-")
    for sep in ("-", ",", ":"):
        if sep in text:
            a, b = text.split(sep, 1)
            try:
                lo, hi = int(a), int(b)
            except ValueError:
                break
            if lo < 0 or hi < lo:
                raise ValueError(f"layer range {text!r}: need 0 <= FIRST <= LAST")
            return lo, hi
    raise ValueError(f"layers must look like 14-27, got {text!r}")


def resolve_layers(layers: tuple[int, int] | None, num_layers: int) -> tuple[int, int]:
    """Validate a configured (first, last) inclusive layer range against the model depth; a range
    outside it is an ``InputError`` (shown as a message by the CLI and the app)."""
    from .errors import InputError

    if layers is None:
        return default_layer_range(num_layers)
    lo, hi = int(layers[0]), int(layers[1])
    if not (0 <= lo <= hi < num_layers):
        raise InputError(f"rollout layers {lo}-{hi} are outside the model's layers 0-{num_layers - 1} "
                         f"(--layers / 'rollout layers'; empty = the paper's range)")
    return lo, hi
