"""Who may do what on a served app: the rules every endpoint of a public deployment obeys.

A Gradio app answers any HTTP caller, not only its page: each event (named, private or hidden) can
be called by name or index. So the checks live here, in plain functions the UI handlers call first,
and not in which buttons the page shows:

- training control (start, resume, stop, demo data) is off on a Space unless allowed;
- the annotation password, when one is set, guards every read or write of study data;
- on a Space, backbone and SAM2 choices come from an allow-list, never a free string (a free hub id
  makes the server download and load any model, evicting the cached one).
"""

from __future__ import annotations

import hmac
from pathlib import Path

from .config import ServiceConfig, service_from_env
from .errors import InputError, redact_paths
from .files import has_tiny_marker

# The SAM2 sizes a caller may always pick (weights named by size, fetched by the server itself).
SAM2_SIZES = ("tiny", "small", "base+", "large")


class AccessError(InputError):
    """The caller may not do this here (the message says why and what would allow it)."""


def _service(service: ServiceConfig | None) -> ServiceConfig:
    return service_from_env() if service is None else service


def check_training(service: ServiceConfig | None = None) -> None:
    """Training control (start, resume, stop, writing demo data) is refused on a public Space
    unless STEERSEG_ALLOW_TRAINING=1: any caller could otherwise start, restart or stop runs."""
    if not _service(service).training_allowed:
        raise AccessError("training control is disabled on this public Space "
                          "(set STEERSEG_ALLOW_TRAINING=1 to allow it)")


def password_required(service: ServiceConfig | None = None) -> bool:
    return bool(_service(service).annotate_password)


def check_password(given: str | None, service: ServiceConfig | None = None) -> None:
    """When STEERSEG_ANNOTATE_PASSWORD is set, ``given`` must match it (constant-time compare)."""
    expected = _service(service).annotate_password
    if expected and not hmac.compare_digest(str(given or "").encode(), expected.encode()):
        raise AccessError("wrong or missing annotation password")


def _tiny_siblings(spec: str) -> list[str]:
    """The tiny-model folders beside a configured tiny model (``make-tiny-models`` writes several)."""
    folder = Path(spec).expanduser()
    if not (folder.is_dir() and has_tiny_marker(folder)):
        return []
    return [str(p) for p in sorted(folder.parent.iterdir()) if p.is_dir() and has_tiny_marker(p)]


def allowed_models(kind: str, configured: str | None, service: ServiceConfig | None = None) -> list[str]:
    """The choices a caller may make for ``kind`` ("backbone" or "sam2") on a Space: the
    STEERSEG_ALLOWED_* list when set, else the known defaults; always the server's configured
    model and the local tiny models beside it."""
    from .grounding.lvlm import KNOWN_BACKBONES

    svc = _service(service)
    extra = svc.allowed_backbones if kind == "backbone" else svc.allowed_sam2
    defaults = tuple(KNOWN_BACKBONES) if kind == "backbone" else SAM2_SIZES
    names = [*(extra or defaults)]
    if configured:
        names += [configured, *_tiny_siblings(configured)]
    return list(dict.fromkeys(names))


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_model_choice(kind: str, value: str, configured: str | None,
                       service: ServiceConfig | None = None) -> str:
    """``value`` if a caller may choose it here. Off a Space anything goes (the user runs the
    server); on a Space it must be one of ``allowed_models``."""
    value = (value or "").strip()
    svc = _service(service)
    if not svc.on_space or not value:
        return value
    allowed = allowed_models(kind, configured, svc)
    if any(_same(value, a) for a in allowed):
        return value
    shown = [Path(a).name if Path(a).expanduser().exists() else a for a in allowed]
    env = "STEERSEG_ALLOWED_BACKBONES" if kind == "backbone" else "STEERSEG_ALLOWED_SAM2"
    raise AccessError(f"{kind} {redact_paths(value)[:100]!r} is not offered on this Space; choose one of: "
                      f"{', '.join(shown)} (the server's {env} sets the list)")
