"""The reasoning study (docs/method.md §11): sample (clip, expression) items, attach the LVLM's CoT
attributes, let annotators judge them True / False / Skip, and compute the paper's table.

    store    SQLite (sqlite-utils) schema, migrations, one connection per operation
    sources  benchmark / list readers that refuse broken input before anything is written
    studies  create_study, generate_attributes (resumable), import_attributes, J&F import
    gif      cached, size-bounded animated GIF previews
    flow     the Annotate tab's logic (open, show, answer, navigate)
    stats    Wilson interval, Cohen's and Fleiss' kappa, the cross-table; chart and export
"""

from .export import export_study
from .flow import ItemView, answer, navigate, open_study, show_item, study_choices
from .gif import clip_gif
from .records import FALSE, LABELS, SKIP, TRUE, Judgement, Sample, Study
from .stats import (
    StudyStats,
    cohen_kappa,
    compute_statistics,
    fleiss_kappa,
    study_statistics,
    wilson_interval,
)
from .store import SCHEMA_VERSION, ensure_schema, list_studies, record_judgement
from .studies import (
    create_study,
    generate_attributes,
    import_attributes,
    import_segmentation_scores,
    sample_items,
)

__all__ = [
    "FALSE", "LABELS", "SCHEMA_VERSION", "SKIP", "TRUE", "ItemView", "Judgement", "Sample", "Study",
    "StudyStats", "answer", "clip_gif", "cohen_kappa", "compute_statistics", "create_study",
    "ensure_schema", "export_study", "fleiss_kappa", "generate_attributes",
    "import_attributes", "import_segmentation_scores", "list_studies", "navigate", "open_study",
    "record_judgement", "sample_items", "show_item", "study_choices", "study_statistics",
    "wilson_interval",
]
