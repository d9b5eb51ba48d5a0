"""SteerSeg core library: grounding (steered LVLM attention), segmentation (SAM2 tracklets),
export, training, evaluation and annotation. No gradio here; ``ui/`` and ``app.py`` render it."""

from .config import GroundingConfig, LimitsConfig, SegmentConfig, SteerSegConfig
from .errors import CheckpointError, InputError, ModelLoadError, SteerSegError, VideoError
from .types import Clip, CoTResult, GroundingResult, SegmentationResult, TokenGeometry, Tracklet

__all__ = [
    "CheckpointError",
    "Clip",
    "CoTResult",
    "GroundingConfig",
    "GroundingResult",
    "InputError",
    "LimitsConfig",
    "ModelLoadError",
    "SegmentConfig",
    "SegmentationResult",
    "SteerSegConfig",
    "SteerSegError",
    "TokenGeometry",
    "Tracklet",
    "VideoError",
]
