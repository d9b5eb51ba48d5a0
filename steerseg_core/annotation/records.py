"""The rows of the annotation study as small frozen dataclasses, and the label vocabulary.

The store returns these and every other module (statistics, export, the Annotate tab) reads them,
so nobody outside ``store.py`` sees SQL rows or JSON-encoded columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

TRUE, FALSE, SKIP = "True", "False", "Skip"
LABELS = (TRUE, FALSE, SKIP)

# Two questions can be asked per sample: does the reasoning identify the referred object (the
# paper's study), and — optionally — is the segmentation accurate (the cross-table's second axis).
REASONING, SEGMENTATION = "reasoning", "segmentation"
QUESTIONS = (REASONING, SEGMENTATION)

MAX_ANNOTATOR_CHARS = 64
MAX_NOTE_CHARS = 2000


def normalise_label(label: Any) -> str:
    """'true' / True / 't' / '1' → 'True', likewise False and Skip; anything else is refused."""
    if isinstance(label, bool):
        return TRUE if label else FALSE
    text = str(label or "").strip().lower()
    table = {"true": TRUE, "t": TRUE, "1": TRUE, "yes": TRUE, "y": TRUE,
             "false": FALSE, "f": FALSE, "0": FALSE, "no": FALSE, "n": FALSE,
             "skip": SKIP, "s": SKIP, "ambiguous": SKIP}
    if text not in table:
        raise InputError(f"label must be True, False or Skip, not {label!r}")
    return table[text]


def normalise_annotator(name: Any) -> str:
    """Annotator names are required, trimmed, single-spaced and at most 64 printable characters."""
    text = re.sub(r"\s+", " ", str(name or "")).strip()
    if not text:
        raise InputError("enter your annotator name first")
    if len(text) > MAX_ANNOTATOR_CHARS:
        raise InputError(f"annotator name is longer than {MAX_ANNOTATOR_CHARS} characters")
    if not text.isprintable():
        raise InputError("annotator name has control characters")
    return text


def normalise_note(note: Any) -> str:
    """A note is trimmed and at most ``MAX_NOTE_CHARS`` characters; a longer one is refused (never
    silently cut, so what the annotator is told was saved is what was saved)."""
    text = str(note or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InputError(f"the note is {len(text):,} characters; notes are at most {MAX_NOTE_CHARS:,}. "
                         "Shorten it and answer again (nothing was saved).")
    return text


def normalise_question(question: str) -> str:
    if question not in QUESTIONS:
        raise InputError(f"question must be one of {', '.join(QUESTIONS)}, not {question!r}")
    return question


@dataclass(frozen=True)
class Study:
    id: int
    name: str
    created_at: str
    source_kind: str
    source_path: str
    seed: int
    n_requested: int
    pool_size: int
    n_samples: int
    segmentation_question: bool
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the study picker shows it."""
        return f"#{self.id} {self.name} ({self.n_samples} items)"


@dataclass(frozen=True)
class Sample:
    id: int
    study_id: int
    position: int  # 0-based order of the sample in the study; the UI shows position + 1
    video_id: str
    exp_id: str
    obj_id: str
    clip_ref: str  # a frames folder or a video file (absolute path)
    expression: str
    reasoning: str | None = None
    attributes: tuple[str, ...] | None = None  # None: not generated / imported yet
    cot_raw: str = ""
    cot_issues: tuple[str, ...] = ()
    backbone: str = ""
    prompt_version: str = ""
    attributes_source: str = ""
    generated_at: str = ""
    gen_error: str = ""
    overlay_ref: str = ""  # optional clip showing the segmentation, for the second question
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.attributes is not None

    @property
    def key(self) -> tuple[str, str]:
        return self.video_id, self.exp_id


@dataclass(frozen=True)
class Judgement:
    id: int
    sample_id: int
    study_id: int
    annotator: str
    question: str
    label: str
    note: str
    created_at: str
    updated_at: str
    revision: int  # 1 for the first answer, +1 for each change
