"""The Annotate tab: judge whether the LVLM's CoT attributes identify the referred object.

An annotator enters a name, picks a study and presses Open: the tab resumes where that annotator
stopped (the place is kept in the database, and the name and study in the browser, so a refresh
reopens it). Each item shows the clip as an animated GIF, the expression, the attributes and the
reasoning; True / False / Skip (keys T / F / S, or 1 / 2 / 3) record the answer and move to the next
unanswered item; ← / → and N navigate. All logic is in ``steerseg_core.annotation.flow``; the
handlers here only call it and render the ``ItemView``.

The app includes ``ANNOTATE_SHORTCUTS_JS`` in ``launch(js=...)`` (Gradio 6 takes js there) and
``ctx.cache_dir`` in ``launch(allowed_paths=...)`` when the cache lies outside the working folder.
"""

from __future__ import annotations

import dataclasses
import html
import math
import shutil
from typing import Any

import gradio as gr

from steerseg_core.annotation import flow, store
from steerseg_core.annotation.gif import DEFAULT_MAX_FRAMES as DEFAULT_PREVIEW_FRAMES
from steerseg_core.annotation.records import LABELS
from steerseg_core.annotation.stats import DEFAULT_JF_THRESHOLD, StudyStats
from steerseg_core.annotation.studies import DEFAULT_N as DEFAULT_STUDY_N
from steerseg_core.errors import SteerSegError, public_message
from ui.context import AppContext

ANNOTATE_SHORTCUTS_JS = """
() => {
  if (window.__steersegAnnotateKeys) { return; }
  window.__steersegAnnotateKeys = true;
  const keys = {t: "annotate-true", "1": "annotate-true", f: "annotate-false", "2": "annotate-false",
                s: "annotate-skip", "3": "annotate-skip", n: "annotate-unlabelled",
                ArrowLeft: "annotate-prev", ArrowRight: "annotate-next"};
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) { return; }
    const t = e.target;
    const tag = ((t && t.tagName) || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || (t && t.isContentEditable)) { return; }
    const id = keys[e.key.length === 1 ? e.key.toLowerCase() : e.key];
    const el = id && document.getElementById(id);
    const button = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (button && button.offsetParent !== null && !button.disabled) {  // only while the tab is shown
      e.preventDefault();
      button.click();
    }
  });
}
"""

CONCURRENCY_LIMIT = 16  # database work only; never the GPU queue
_NUM_VIEW_OUTPUTS = 12


def _md(text: str) -> str:
    return html.escape(text or "", quote=False)


def progress_bar_html(fraction: float) -> str:
    pct = max(0.0, min(100.0, 100.0 * fraction))
    return ('<div style="height:10px;border-radius:5px;background:#e0e0e0;overflow:hidden" '
            f'role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" aria-valuemax="100">'
            f'<div style="height:100%;width:{pct:.1f}%;background:#2e7d32"></div></div>')


def render_view(view: flow.ItemView) -> tuple[Any, ...]:
    """An ItemView as the values of the tab's view outputs (see ``AnnotateTab.view_outputs``)."""
    if view.study_id is None or view.position < 0:
        return (None, gr.update(value=None, visible=False), "", "", "", "", "",
                gr.update(value=None, visible=False), view.progress_text, progress_bar_html(0.0),
                0, _md(public_message(view.message)))
    current = f"Your answer: **{view.label}**" if view.label else "Not answered yet"
    return (
        view.gif_path,
        gr.update(value=view.overlay_gif_path, visible=bool(view.overlay_gif_path)),
        f"### Item {view.item_number} of {view.total}\n**Expression:** {_md(view.expression)}",
        f"**Attributes:** {_md(view.attributes_text)}",
        f"**Reasoning:** {_md(view.reasoning) or '(none)'}"
        + (f"  \n<small>backbone: {_md(view.backbone)}</small>" if view.backbone else ""),
        current,
        view.note,
        # asked only where there is a segmentation to judge
        gr.update(value=view.seg_label, visible=view.segmentation_question and bool(view.overlay_gif_path)),
        f"**{view.progress_text}** — study “{_md(view.study_name)}”, video {_md(view.video_label)}",
        progress_bar_html(view.progress_fraction),
        view.item_number,
        _md(public_message(view.message)),
    )


def _failed(err: Exception) -> tuple[Any, ...]:
    """Leave the view as it is and show the reason."""
    return tuple(gr.skip() for _ in range(_NUM_VIEW_OUTPUTS - 1)) + (f"⚠️ {_md(public_message(err))}",)


def stats_markdown(stats: StudyStats) -> str:
    def cell(text: str) -> str:
        return _md(text).replace("|", "\\|")

    def pct(x: float) -> str:
        return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"

    lines = [f"### Study “{_md(stats.study_name)}”: {stats.n_items} items, {stats.n_ready} with attributes",
             "", "| who | labelled | True | False | Skip | accuracy | 95 % CI |", "|---|---|---|---|---|---|---|"]
    for r in (*stats.annotators, stats.consensus):
        lines.append(f"| {cell(r.who)} | {r.n_labelled} | {r.n_true} | {r.n_false} | {r.n_skip} | "
                     f"{pct(r.accuracy)} | {pct(r.ci_low)} – {pct(r.ci_high)} |")
    lines.append("")
    for p in stats.pairs:
        lines.append(f"- Cohen's κ {_md(p.a)} / {_md(p.b)}: {p.kappa:.3f} ({p.n_items} items, "
                     f"{pct(p.percent_agreement)} agreement)")
    if len(stats.annotators) > 2:
        lines.append(f"- Fleiss' κ over all {len(stats.annotators)}: {stats.fleiss_kappa:.3f} "
                     f"({stats.fleiss_items} items)")
    lines.append(f"- segmentation accuracy from: {_md(stats.cross_table.seg_source)}")
    lines += [f"- {_md(s)}" for s in stats.summary_lines()]
    return "\n".join(lines)


class AnnotateHandlers:
    """The tab's event handlers, bound to one AppContext; thin wrappers over ``flow``."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def _common(self) -> dict[str, Any]:
        return {"cache_dir": self.ctx.cache_dir, "limits": self.ctx.config.limits, "service": self.ctx.service}

    # Every handler that reads or writes study data passes the caller's password to ``flow``, which
    # checks it (when STEERSEG_ANNOTATE_PASSWORD is set) before touching the database: events are
    # callable over HTTP by anyone, page or not.

    def studies(self, password: str | None = None) -> Any:
        try:
            return gr.update(choices=flow.study_choices(self.ctx.db_path, password, self.ctx.service))
        except SteerSegError as err:
            raise gr.Error(public_message(err)) from None

    def open(self, annotator: str, study: str, password: str | None = None) -> tuple[Any, ...]:
        try:
            return render_view(flow.open_study(self.ctx.db_path, study, annotator, password=password,
                                               **self._common()))
        except SteerSegError as err:
            return _failed(err)

    def remember(self, annotator: str, study: str) -> list[str]:
        return [annotator or "", study or ""]

    def restore(self, remembered: Any) -> tuple[Any, ...]:
        """On page load: refresh the study list and reopen the study the browser remembers, where
        this annotator stopped."""
        name, study = (list(remembered or []) + ["", ""])[:2]
        if flow.password_required(self.ctx.service):  # the browser never keeps the password: the annotator reopens
            return (str(name or "")[:64], gr.skip()) + tuple(gr.skip() for _ in range(_NUM_VIEW_OUTPUTS))
        try:
            choices = flow.study_choices(self.ctx.db_path, service=self.ctx.service)
        except SteerSegError:
            choices = []
        nothing = (gr.skip(), gr.update(choices=choices)) + tuple(gr.skip() for _ in range(_NUM_VIEW_OUTPUTS))
        if not name or not study or study not in {value for _, value in choices}:
            return nothing
        try:
            view = flow.open_study(self.ctx.db_path, study, name, **self._common())
        except SteerSegError:
            return nothing
        return (name, gr.update(choices=choices, value=study)) + render_view(view)

    def _segmentation_asked(self, study: str, position: int) -> bool:
        """Whether item ``position`` shows the segmentation question (the study asks it and the item
        has an overlay to judge)."""
        info = store.get_study(self.ctx.db_path, flow.parse_study_id(study))
        if not info.segmentation_question:
            return False
        samples = store.get_samples(self.ctx.db_path, info.id)
        return 0 <= position < len(samples) and bool(samples[position].overlay_ref)

    def answer(self, label: str, annotator: str, password: str, study: str, item: float, note: str,
               seg_label: str | None) -> tuple[Any, ...]:
        try:
            position = int(item or 1) - 1
            unanswered = label != "Skip" and not seg_label and self._segmentation_asked(study, position)
            view = flow.answer(self.ctx.db_path, study, annotator, position, label, note=note,
                               seg_label=seg_label, password=password, **self._common())
            if unanswered:  # saved, but say what is missing
                view = dataclasses.replace(view, message=(
                    f"{view.message} — the segmentation question of item {position + 1} was left unanswered; "
                    "go back to answer it").lstrip(" —"))
            return render_view(view)
        except SteerSegError as err:
            return _failed(err)

    def answer_true(self, *args: Any) -> tuple[Any, ...]:
        return self.answer("True", *args)

    def answer_false(self, *args: Any) -> tuple[Any, ...]:
        return self.answer("False", *args)

    def answer_skip(self, *args: Any) -> tuple[Any, ...]:
        return self.answer("Skip", *args)

    def _go(self, action: str, annotator: str, study: str, item: float, target: float | None = None,
            password: str | None = None):
        try:
            view = flow.navigate(self.ctx.db_path, study, annotator, int(item or 1) - 1, action,
                                 target=None if target is None else int(target), password=password,
                                 **self._common())
            return render_view(view)
        except SteerSegError as err:
            return _failed(err)

    def prev(self, annotator: str, study: str, item: float, password: str | None = None) -> tuple[Any, ...]:
        return self._go("prev", annotator, study, item, password=password)

    def next(self, annotator: str, study: str, item: float, password: str | None = None) -> tuple[Any, ...]:
        return self._go("next", annotator, study, item, password=password)

    def next_unlabelled(self, annotator: str, study: str, item: float,
                        password: str | None = None) -> tuple[Any, ...]:
        return self._go("unlabelled", annotator, study, item, password=password)

    def jump(self, annotator: str, study: str, item: float, target: float | None,
             password: str | None = None) -> tuple[Any, ...]:
        return self._go("jump", annotator, study, item, target, password=password)

    def stats(self, study: str, jf_threshold: float | None, password: str | None = None) -> tuple[str, Any]:
        try:
            from steerseg_core.annotation.chart import has_segmentation_accuracy, study_chart

            s = flow.statistics(self.ctx.db_path, study, password=password, service=self.ctx.service,
                                jf_threshold=DEFAULT_JF_THRESHOLD if jf_threshold is None else float(jf_threshold))
            text = stats_markdown(s)
            if not has_segmentation_accuracy(s):
                text += ("\n- *Segmentation by reasoning* is not charted: no J&F is attached to this study and "
                         "no annotator judged a segmentation.")
            return text, study_chart(s)
        except SteerSegError as err:
            return f"⚠️ {_md(public_message(err))}", None

    def create(self, password: str, source: str | None, frames: str, name: str, n: float | None,
               seed: float | None, seg_question: bool) -> tuple[Any, str, Any]:
        """Create a study from an uploaded expressions file (a benchmark meta_expressions.json with its
        frames folder on the server, or a CSV/JSON list of clips and expressions); select it."""
        from steerseg_core.annotation import create_study

        try:
            flow.check_password(password, self.ctx.service)
            if not source:
                raise SteerSegError("upload the expressions file (meta_expressions.json, .csv or .json list) first")
            st = create_study(self.ctx.db_path, source, name=name, n=int(n or DEFAULT_STUDY_N),
                              seed=None if seed in (None, "") else int(seed),
                              frames_root=(frames or "").strip() or None, segmentation_question=bool(seg_question))
        except SteerSegError as err:
            return gr.skip(), f"⚠️ {_md(public_message(err))}", gr.skip()
        choices = flow.study_choices(self.ctx.db_path, password, self.ctx.service)
        return (gr.update(choices=choices, value=str(st.id)),
                f"Created study **#{st.id} {_md(st.name)}** ({st.n_samples} items). Items get attributes with "
                "`python -m steerseg_core annotate generate`; press **Open / resume** to start.",
                gr.update(visible=False))

    def export(self, study: str, jf_threshold: float | None, password: str | None = None
               ) -> tuple[list[str] | None, str]:
        out = None
        try:  # a per-export folder under the outputs root, pruned with the Segment tab's downloads
            flow.check_password(password, self.ctx.service)  # before any folder is made
            out = self.ctx.new_output_dir()
            paths = flow.export(self.ctx.db_path, study, out, password=password, service=self.ctx.service,
                                jf_threshold=DEFAULT_JF_THRESHOLD if jf_threshold is None else float(jf_threshold))
            return [str(p) for p in paths.values()], f"exported {len(paths)} files"
        except (SteerSegError, OSError) as err:
            if out is not None:
                shutil.rmtree(out, ignore_errors=True)
            reason = public_message(err) if isinstance(err, SteerSegError) else \
                f"the files could not be written ({err.strerror or type(err).__name__})"
            return None, f"⚠️ {_md(reason)}"


def limits_text(ctx: AppContext) -> str:
    """What the tab requires and bounds (names, password, previews from ``LimitsConfig``)."""
    lim = ctx.config.limits
    need = "an annotator name (up to 64 characters)"
    if flow.password_required(ctx.service):
        need += " and the shared annotation password"
    return (f"<small>Answers need {need} and are saved at once. Clip previews: at most "
            f"{min(lim.max_gif_frames, DEFAULT_PREVIEW_FRAMES)} frames, {lim.max_gif_bytes / 2**20:g} MB.</small>")


def build_annotate_tab(ctx: AppContext) -> None:
    """Lay out the tab inside the caller's ``gr.Tab`` and wire its events."""
    h = AnnotateHandlers(ctx)
    try:  # with a password, even the study names wait for it (↻ after typing it)
        choices = [] if flow.password_required(ctx.service) else flow.study_choices(ctx.db_path, service=ctx.service)
    except SteerSegError:
        choices = []
    gr.Markdown("Judge whether the **attributes** the model derived identify the object the expression "
                "refers to. **True**: they do. **False**: they describe another object. **Skip**: "
                "ambiguous. Keys: T / F / S (or 1 / 2 / 3), ← / →, N = next unanswered.")
    gr.Markdown(limits_text(ctx), elem_id="annotate-limits")
    remembered = gr.BrowserState(["", ""], storage_key="steerseg-annotate")
    with gr.Row():
        annotator = gr.Textbox(label="Annotator name", max_length=64, elem_id="annotate-annotator", scale=2)
        password = gr.Textbox(label="Annotation password", type="password", visible=flow.password_required(ctx.service),
                              elem_id="annotate-password", scale=1)
        study = gr.Dropdown(label="Study", choices=choices, value=None, elem_id="annotate-study", scale=3)
        refresh = gr.Button("↻", elem_id="annotate-refresh", scale=0, min_width=40)
        open_btn = gr.Button("Open / resume", variant="primary", elem_id="annotate-open", scale=1)
    empty_md = gr.Markdown("**No study yet.** Create one under *Create a study* below, or on the server with "
                "`python -m steerseg_core annotate create EXPRESSIONS --name NAME`.", visible=not choices,
                elem_id="annotate-empty")
    with gr.Accordion("Create a study", open=not choices):
        with gr.Row():
            new_source = gr.File(label="expressions file: meta_expressions.json, or a .csv / .json list of "
                                 "(video, expression)", file_types=[".json", ".csv"], type="filepath")
            with gr.Column():
                new_frames = gr.Textbox(label="frames folder on the server (for a meta_expressions.json; "
                                        "empty = beside the file)")
                new_name = gr.Textbox(label="study name", max_length=120)
                with gr.Row():
                    new_n = gr.Number(value=DEFAULT_STUDY_N, precision=0, label="items to sample")
                    new_seed = gr.Number(value=None, precision=0, label="seed (empty = random, recorded)")
                new_seg = gr.Checkbox(label="also ask whether the segmentation is accurate")
                create_btn = gr.Button("Create study", elem_id="annotate-create")
        create_status = gr.Markdown(elem_id="annotate-create-status")
    with gr.Row():
        with gr.Column(scale=3):
            gif = gr.Image(label="Clip", type="filepath", interactive=False, elem_id="annotate-gif")
            overlay = gr.Image(label="Segmentation", type="filepath", interactive=False, visible=False)
        with gr.Column(scale=2):
            expression = gr.Markdown(elem_id="annotate-expression")
            attributes = gr.Markdown(elem_id="annotate-attributes")
            reasoning = gr.Markdown(elem_id="annotate-reasoning")
            current = gr.Markdown(elem_id="annotate-current")
            seg = gr.Radio(list(LABELS), label="Is the segmentation accurate?", visible=False,
                           elem_id="annotate-seg")
            note = gr.Textbox(label="Note (optional)", lines=1, max_lines=3, elem_id="annotate-note")
            with gr.Row():
                true_btn = gr.Button("True (T)", variant="primary", elem_id="annotate-true")
                false_btn = gr.Button("False (F)", variant="stop", elem_id="annotate-false")
                skip_btn = gr.Button("Skip (S)", variant="secondary", elem_id="annotate-skip")
    progress_md = gr.Markdown("no study open", elem_id="annotate-progress")
    progress_html = gr.HTML(progress_bar_html(0.0))
    with gr.Row():
        prev_btn = gr.Button("← Previous", elem_id="annotate-prev")
        next_btn = gr.Button("Next →", elem_id="annotate-next")
        unl_btn = gr.Button("Next unanswered (N)", elem_id="annotate-unlabelled")
        # no component bounds: an out-of-range number gets the flow's readable message in the status
        target = gr.Number(value=1, label="Go to item", precision=0, elem_id="annotate-target")
        jump_btn = gr.Button("Go", elem_id="annotate-jump")
    item = gr.Number(value=0, precision=0, visible=False, elem_id="annotate-item")
    status = gr.Markdown(elem_id="annotate-status")
    view = [gif, overlay, expression, attributes, reasoning, current, note, seg, progress_md, progress_html,
            item, status]
    assert len(view) == _NUM_VIEW_OUTPUTS

    with gr.Accordion("Statistics and export", open=False):
        with gr.Row():
            jf = gr.Number(value=DEFAULT_JF_THRESHOLD, label="J&F threshold for 'segmentation accurate'",
                           minimum=0, maximum=1)
            stats_btn = gr.Button("Compute statistics", elem_id="annotate-stats")
            export_btn = gr.Button("Export CSV / JSON", elem_id="annotate-export")
        stats_md = gr.Markdown()
        chart = gr.Plot(label="Judgements")
        files = gr.File(label="Exported files", file_count="multiple", interactive=False)
        export_status = gr.Markdown()

    opts: dict[str, Any] = {"concurrency_limit": CONCURRENCY_LIMIT, "concurrency_id": "annotate"}
    refresh.click(h.studies, [password], study, api_name="annotate_studies", **opts)
    create_btn.click(h.create, [password, new_source, new_frames, new_name, new_n, new_seed, new_seg],
                     [study, create_status, empty_md], api_name="annotate_create", **opts)
    open_btn.click(h.open, [annotator, study, password], view, api_name="annotate_open", **opts).then(
        h.remember, [annotator, study], remembered, api_visibility="private")
    gr.on(triggers=None, fn=h.restore, inputs=[remembered], outputs=[annotator, study, *view],
          api_visibility="private", **opts)
    answer_inputs = [annotator, password, study, item, note, seg]
    true_btn.click(h.answer_true, answer_inputs, view, api_name="annotate_true", **opts)
    false_btn.click(h.answer_false, answer_inputs, view, api_name="annotate_false", **opts)
    skip_btn.click(h.answer_skip, answer_inputs, view, api_name="annotate_skip", **opts)
    nav_inputs = [annotator, study, item]
    prev_btn.click(h.prev, [*nav_inputs, password], view, api_name="annotate_prev", **opts)
    next_btn.click(h.next, [*nav_inputs, password], view, api_name="annotate_next", **opts)
    unl_btn.click(h.next_unlabelled, [*nav_inputs, password], view, api_name="annotate_next_unlabelled", **opts)
    jump_btn.click(h.jump, [*nav_inputs, target, password], view, api_name="annotate_jump", **opts)
    target.submit(h.jump, [*nav_inputs, target, password], view, api_visibility="private", **opts)
    item.change(lambda n: gr.Number(value=max(1, int(n or 1))), item, target, api_visibility="private",
                queue=False)  # the box follows the current item
    study.change(lambda: (None, None, None, ""), None, [stats_md, chart, files, export_status],
                 api_visibility="private", queue=False)  # no statistics of another study on screen
    stats_btn.click(h.stats, [study, jf, password], [stats_md, chart], api_name="annotate_stats", **opts)
    export_btn.click(h.export, [study, jf, password], [files, export_status], api_name="annotate_export", **opts)
