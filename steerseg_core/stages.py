"""The names of the pipeline's stages, defined once.

Progress callbacks (grounding, SAM2 candidates, scoring), the timings keys of a result, the CLI's
progress bars and the app's progress mapping all use these members, so renaming a stage changes
every one of them together (a test checks that every stage has a span in the app's progress bar).
"""

from __future__ import annotations

from enum import Enum

# The SAM2 sub-stages report under one name in the app's overall progress bar.
SAM2_GROUP = "SAM2"


class Stage(str, Enum):  # not StrEnum: Python 3.10
    """A stage reported through ``progress(stage, fraction)``; its value is the text shown."""

    COT = "CoT"
    FRAME_ROLLOUT = "frame rollout"
    VIDEO_ROLLOUT = "video rollout"
    SAM2_ENCODING = f"{SAM2_GROUP}: encoding frames"
    SAM2_KEYFRAMES = f"{SAM2_GROUP}: keyframe masks"
    SAM2_TRACKING = f"{SAM2_GROUP}: tracking candidates"
    SAM2_READY = f"{SAM2_GROUP}: candidates ready"
    SCORING = "scoring"

    # Shown and formatted as the plain text on every Python (3.12 changed mixed-in enums' format).
    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def group(self) -> str:
        """The stage's share of an overall progress bar: the text before a ':' (``SAM2``)."""
        return self.value.split(":")[0]

    @property
    def timing_key(self) -> str:
        """Its key in ``timings``: ``frame_rollout``, ``sam2_encoding_frames`` …"""
        return timing_key(self.value)


def timing_key(stage: str) -> str:
    """The timings key of a reported stage name (lower case, words joined by ``_``)."""
    return str(stage).lower().replace(f"{SAM2_GROUP.lower()}: ", "sam2_").replace(" ", "_")
