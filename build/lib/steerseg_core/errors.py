"""Exceptions users see. Each carries a message meant for a person, not a stack trace.

The UI and the CLI show ``str(err)`` of these directly; anything else is a bug.
"""

import re


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


# A server path: "/" or "~/" then at least two components, not part of a URL or a relative path.
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])~?/(?:[^\s'\"`:;,()<>|/]+/)+([^\s'\"`:;,()<>|/]*)")


# Access tokens (Hugging Face "hf_...", bearer headers) that a library may echo in an error.
_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b|(?i:\bbearer\s+)[A-Za-z0-9._~+/=-]{16,}")


def redact_paths(text: str) -> str:
    """``text`` with every absolute server path replaced by its last component (and access
    tokens by ``***``).

    Messages shown on a public page must not reveal where the server keeps its files (temp
    folders, model caches, the user's home): ``'/srv/cache/x/clip.mp4' is empty`` becomes
    ``'clip.mp4' is empty``. URLs (``https://host/path``) are left alone.
    """
    text = _TOKEN.sub("***", str(text))
    return _SERVER_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "…", text)


def public_message(err: BaseException | str) -> str:
    """The message of a user-facing error as it may be shown on a web page (paths redacted)."""
    return redact_paths(str(err))
