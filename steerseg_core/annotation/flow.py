"""What the Annotate tab does, as pure functions over the store: open a study where the annotator
stopped, show an item, record an answer and move on, navigate, compute the progress line.

The Gradio handlers in ``ui/annotate.py`` only call these and render the returned ``ItemView``;
the tests drive the same functions. Positions are 0-based here; the tab shows ``position + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PureWindowsPath

from ..access import check_password, password_required
from ..config import LimitsConfig, ServiceConfig
from ..errors import InputError, SteerSegError
from . import store
from .export import export_study
from .gif import clip_gif
from .records import REASONING, SEGMENTATION, normalise_annotator, normalise_label
from .stats import DEFAULT_JF_THRESHOLD, StudyStats, study_statistics

__all__ = ["ItemView", "answer", "check_password", "export", "navigate", "open_study", "password_required",
           "show_item", "statistics", "study_choices"]


@dataclass(frozen=True)
class ItemView:
    """Everything the tab shows for one item (or just a message when nothing is open)."""

    study_id: int | None = None
    study_name: str = ""
    position: int = -1
    total: int = 0
    labelled: int = 0  # items this annotator has answered (reasoning question)
    ready: int = 0  # items that have attributes
    video_id: str = ""
    exp_id: str = ""
    expression: str = ""
    attributes: tuple[str, ...] | None = None
    reasoning: str = ""
    backbone: str = ""
    gif_path: str | None = None
    overlay_gif_path: str | None = None
    label: str | None = None  # this annotator's current answer
    note: str = ""
    segmentation_question: bool = False
    seg_label: str | None = None
    message: str = ""

    @property
    def item_number(self) -> int:
        """1-based item number shown in the tab (0 when nothing is open)."""
        return self.position + 1

    @property
    def video_label(self) -> str:
        """The video as the page names it: a clip given by its file (CSV / JSON lists) by its file
        name, never the server folder it lives in; a benchmark video id as it is."""
        vid = self.video_id or ""
        return PureWindowsPath(vid).name if ("/" in vid or "\\" in vid) else vid

    @property
    def progress_text(self) -> str:
        if self.study_id is None:
            return "no study open"
        text = f"{self.labelled} of {self.total} labelled"
        if self.ready < self.total:
            text += f" ({self.total - self.ready} still without attributes)"
        return text

    @property
    def progress_fraction(self) -> float:
        return self.labelled / self.total if self.total else 0.0

    @property
    def attributes_text(self) -> str:
        if self.attributes is None:
            return "(not generated yet)"
        return ", ".join(self.attributes) or "(none)"


# Every function below that reads or writes study data takes the caller's ``password`` and checks it
# first (``access.check_password``: only when STEERSEG_ANNOTATE_PASSWORD is set). ``service`` is the
# served app's ServiceConfig (None = read from the environment).


def study_choices(db_path: Path | str, password: str | None = None,
                  service: ServiceConfig | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for the study picker; the value is the study id as text."""
    check_password(password, service)
    return [(s.label, str(s.id)) for s in store.list_studies(db_path)]


def statistics(db_path: Path | str, study: int | str, *, password: str | None = None,
               jf_threshold: float = DEFAULT_JF_THRESHOLD, service: ServiceConfig | None = None) -> StudyStats:
    """Every annotator's statistics for one study (password-guarded like the answers)."""
    check_password(password, service)
    return study_statistics(db_path, parse_study_id(study), jf_threshold=jf_threshold)


def export(db_path: Path | str, study: int | str, out_dir: Path | str, *, password: str | None = None,
           jf_threshold: float = DEFAULT_JF_THRESHOLD, service: ServiceConfig | None = None) -> dict[str, Path]:
    """Write the study's export files (every annotator's labels and notes) into ``out_dir``."""
    check_password(password, service)
    return export_study(db_path, parse_study_id(study), out_dir, jf_threshold=jf_threshold)


def parse_study_id(study: int | str | None) -> int:
    text = str(study if study is not None else "").strip().lstrip("#")
    if not text:
        raise InputError("choose a study first")
    if not text.isdigit():
        raise InputError(f"unknown study {study!r}")
    return int(text)


def _labels(db_path: Path | str, study_id: int, annotator: str) -> dict[int, dict[str, tuple[str, str]]]:
    """position → {question: (label, note)} for one annotator."""
    out: dict[int, dict[str, tuple[str, str]]] = {}
    positions = {s.id: s.position for s in store.get_samples(db_path, study_id)}
    for j in store.get_judgements(db_path, study_id, annotator=annotator):
        out.setdefault(positions[j.sample_id], {})[j.question] = (j.label, j.note)
    return out


def first_unlabelled(db_path: Path | str, study_id: int, annotator: str, after: int = -1) -> int | None:
    """The first ready item after ``after`` (wrapping around) this annotator has not answered."""
    samples = store.get_samples(db_path, study_id)
    done = {p for p, q in _labels(db_path, study_id, annotator).items() if REASONING in q}
    n = len(samples)
    for k in range(1, n + 1):
        p = (after + k) % n
        if p not in done and samples[p].ready:
            return p
    return None


def show_item(
    db_path: Path | str, study: int | str, annotator: str, position: int, *, cache_dir: Path | str,
    limits: LimitsConfig | None = None, message: str = "", password: str | None = None,
    service: ServiceConfig | None = None,
) -> ItemView:
    """The view of item ``position`` (clamped to the study) for ``annotator``; remembers it as the
    annotator's place so a refresh resumes here."""
    check_password(password, service)
    annotator = normalise_annotator(annotator)
    study_id = parse_study_id(study)
    info = store.get_study(db_path, study_id)
    if info.n_samples == 0:
        return ItemView(study_id=study_id, study_name=info.name, message="this study has no items")
    position = min(max(int(position), 0), info.n_samples - 1)
    samples = store.get_samples(db_path, study_id)
    sample = samples[position]
    mine = _labels(db_path, study_id, annotator)
    notes = [message] if message else []
    gif = overlay = None
    try:
        gif = str(clip_gif(sample.clip_ref, cache_dir, limits=limits))
        if sample.overlay_ref:
            overlay = str(clip_gif(sample.overlay_ref, cache_dir, limits=limits))
    except SteerSegError as err:
        notes.append(f"cannot show the clip: {err}")
    try:
        store.set_cursor(db_path, study_id, annotator, position)
    except store.StorageError as err:  # viewing still works; only the resume place is not kept
        notes.append(f"your place could not be saved: {err}")
    answers = mine.get(position, {})
    label, note = answers.get(REASONING, (None, ""))
    return ItemView(
        study_id=study_id, study_name=info.name, position=position, total=info.n_samples,
        labelled=sum(1 for q in mine.values() if REASONING in q), ready=sum(1 for s in samples if s.ready),
        video_id=sample.video_id, exp_id=sample.exp_id, expression=sample.expression,
        attributes=sample.attributes, reasoning=sample.reasoning or "", backbone=sample.backbone,
        gif_path=gif, overlay_gif_path=overlay, label=label, note=note,
        segmentation_question=info.segmentation_question,
        seg_label=answers.get(SEGMENTATION, (None, ""))[0], message="\n".join(notes))


def open_study(
    db_path: Path | str, study: int | str, annotator: str, *, cache_dir: Path | str,
    limits: LimitsConfig | None = None, password: str | None = None, service: ServiceConfig | None = None,
) -> ItemView:
    """Resume: where this annotator last was, else their first unanswered item, else item 1."""
    check_password(password, service)
    annotator = normalise_annotator(annotator)
    study_id = parse_study_id(study)
    position = store.get_cursor(db_path, study_id, annotator)
    if position is None:
        position = first_unlabelled(db_path, study_id, annotator)
    return show_item(db_path, study_id, annotator, position or 0, cache_dir=cache_dir, limits=limits,
                     password=password, service=service)


def navigate(
    db_path: Path | str, study: int | str, annotator: str, position: int, action: str, *,
    cache_dir: Path | str, limits: LimitsConfig | None = None, target: int | None = None,
    password: str | None = None, service: ServiceConfig | None = None,
) -> ItemView:
    """``action``: "prev", "next", "unlabelled" (next unanswered) or "jump" (to 1-based ``target``)."""
    check_password(password, service)
    study_id = parse_study_id(study)
    annotator = normalise_annotator(annotator)
    message = ""
    if action == "prev":
        new = position - 1
    elif action == "next":
        new = position + 1
    elif action == "unlabelled":
        found = first_unlabelled(db_path, study_id, annotator, after=position)
        new = position if found is None else found
        if found is None:
            message = "every item with attributes is labelled"
    elif action == "jump":
        total = store.get_study(db_path, study_id).n_samples
        if target is None or not 1 <= int(target) <= total:
            raise InputError(f"item number must be between 1 and {total}")
        new = int(target) - 1
    else:
        raise InputError(f"unknown navigation {action!r}")
    return show_item(db_path, study_id, annotator, new, cache_dir=cache_dir, limits=limits, message=message,
                     password=password, service=service)


def answer(
    db_path: Path | str, study: int | str, annotator: str, position: int, label: str, *,
    cache_dir: Path | str, note: str = "", seg_label: str | None = None, password: str | None = None,
    limits: LimitsConfig | None = None, advance: bool = True, service: ServiceConfig | None = None,
) -> ItemView:
    """Record (or revise) this annotator's answer for item ``position`` — and the segmentation
    answer if given — then show the next unanswered item (or stay when all are done)."""
    check_password(password, service)
    annotator = normalise_annotator(annotator)
    study_id = parse_study_id(study)
    label = normalise_label(label)
    store.record_judgement(db_path, study_id, position, annotator, label, note, question=REASONING)
    if seg_label not in (None, ""):
        store.record_judgement(db_path, study_id, position, annotator, seg_label, "", question=SEGMENTATION)
    saved = f"saved {label} for item {position + 1}"
    opts = {"cache_dir": cache_dir, "limits": limits, "password": password, "service": service}
    if not advance:
        return show_item(db_path, study_id, annotator, position, message=saved, **opts)
    nxt = first_unlabelled(db_path, study_id, annotator, after=position)
    if nxt is None:
        view = show_item(db_path, study_id, annotator, position, **opts)
        return replace(view, message=f"{saved} — every item with attributes is labelled, thank you")
    return show_item(db_path, study_id, annotator, nxt, message=saved, **opts)
