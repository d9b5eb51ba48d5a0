"""Exceptions users see. Each carries a message meant for a person, not a stack trace.

The UI and the CLI show ``str(err)`` of these directly; anything else is a bug.
"""


class SteerSegError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class VideoError(SteerSegError):
    """The video could not be read or breaks a configured limit."""


class InputError(SteerSegError):
    """Bad text or option values (empty or absurd expression, wrong ranges)."""


class ModelLoadError(SteerSegError):
    """Weights missing, unreachable or incompatible (names the model and how to get it)."""


class CheckpointError(SteerSegError):
    """A soft-prompt or training checkpoint is corrupt, unsafe or for another backbone."""


class OutOfMemoryError(SteerSegError):
    """The device ran out of memory; the message suggests what to reduce."""
