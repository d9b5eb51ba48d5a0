"""The Annotate tab's logic and handlers, called directly: resume, answer and advance, revise,
navigate, password and name checks, items without attributes, the GIF cache and its bounds."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from steerseg_core.annotation import answer, create_study, generate_attributes, navigate, open_study, store
from steerseg_core.annotation.flow import first_unlabelled, show_item
from steerseg_core.annotation.gif import clip_gif
from steerseg_core.config import LimitsConfig, SteerSegConfig
from steerseg_core.errors import InputError, VideoError
from ui.annotate import AnnotateHandlers, progress_bar_html, render_view
from ui.context import AppContext

from .conftest import davis_frames
from .test_annotation_helpers import colour_cot, copy_db, make_reasonvos


@pytest.fixture(scope="module")
def template(tmp_path_factory, data_dir):
    """One generated study and one GIF cache for the module (GIFs are keyed by the clip, so the
    cache is valid for every copy of the study)."""
    base = tmp_path_factory.mktemp("flow")
    db = base / "template.db"
    st = create_study(db, make_reasonvos(base / "ReasonVOS"), name="flow", n=5, seed=11)
    generate_attributes(db, st.id, colour_cot)
    return db, st, base / "cache"


@pytest.fixture
def env(template, tmp_path):
    db, st, cache = template
    return copy_db(db, tmp_path / "a.db"), st, cache


def test_answer_advances_resumes_and_revises(env):
    db, st, cache = env
    v = open_study(db, st.id, "ann", cache_dir=cache)
    assert (v.position, v.item_number, v.total, v.labelled, v.label) == (0, 1, 5, 0, None)
    assert v.progress_text == "0 of 5 labelled" and v.attributes_text.count(",") == 2
    assert v.gif_path and v.gif_path.endswith(".gif") and v.expression
    v = answer(db, st.id, "ann", 0, "True", cache_dir=cache)
    assert (v.position, v.labelled, v.message) == (1, 1, "saved True for item 1")
    v = answer(db, str(st.id), "ann", 1, "Skip", note="two dogs?", cache_dir=cache)
    assert (v.position, v.labelled, v.progress_fraction) == (2, 2, 0.4)
    # A refresh (or tomorrow): the same annotator resumes at item 3; another starts at item 1.
    assert open_study(db, st.id, "ann", cache_dir=cache).position == 2
    assert open_study(db, st.id, "bob", cache_dir=cache).position == 0
    back = navigate(db, st.id, "ann", 2, "prev", cache_dir=cache)
    assert (back.position, back.label, back.note) == (1, "Skip", "two dogs?")
    v = answer(db, st.id, "ann", 1, "False", note="the other dog", cache_dir=cache)
    assert v.position == 2 and v.labelled == 2  # revised, not added; on to the next unanswered
    hist = store.get_history(db, st.id)
    assert [(h["label"], h["revision"]) for h in hist if h["annotator"] == "ann"] == [
        ("True", 1), ("Skip", 1), ("False", 2)]


def test_navigation_bounds_jump_and_wrapping(env):
    db, st, cache = env
    assert navigate(db, st.id, "ann", 0, "prev", cache_dir=cache).position == 0
    assert navigate(db, st.id, "ann", 4, "next", cache_dir=cache).position == 4
    assert navigate(db, st.id, "ann", 0, "jump", target=4, cache_dir=cache).position == 3
    for bad in (0, 6, None):
        with pytest.raises(InputError, match="between 1 and 5"):
            navigate(db, st.id, "ann", 0, "jump", target=bad, cache_dir=cache)
    for pos in (0, 1, 3):
        store.record_judgement(db, st.id, pos, "ann", "True")
    assert navigate(db, st.id, "ann", 3, "unlabelled", cache_dir=cache).position == 4
    assert first_unlabelled(db, st.id, "ann", after=4) == 2  # wraps around
    for pos in (2, 4):
        last = answer(db, st.id, "ann", pos, "False", cache_dir=cache)
    assert last.position == 4 and "every item with attributes is labelled" in last.message
    assert navigate(db, st.id, "ann", 4, "unlabelled", cache_dir=cache).message == \
        "every item with attributes is labelled"


def test_password_and_name_are_checked_before_writing(env, monkeypatch):
    db, st, cache = env
    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", "s3cret")
    for pw in (None, "", "wrong"):
        with pytest.raises(InputError, match="wrong or missing annotation password"):
            answer(db, st.id, "ann", 0, "True", password=pw, cache_dir=cache)
    with pytest.raises(InputError, match="annotator name"):
        answer(db, st.id, "  ", 0, "True", password="s3cret", cache_dir=cache)
    with pytest.raises(InputError, match="choose a study"):
        open_study(db, "", "ann", password="s3cret", cache_dir=cache)
    assert store.get_judgements(db, st.id) == []
    assert answer(db, st.id, "ann", 0, "True", password="s3cret", cache_dir=cache).labelled == 1


def test_password_comes_from_the_service_config_passed_down(env, monkeypatch):
    """The library reads no environment itself: a ServiceConfig given to it wins over the env."""
    from steerseg_core.annotation.flow import password_required
    from steerseg_core.config import ServiceConfig

    db, st, cache = env
    monkeypatch.delenv("STEERSEG_ANNOTATE_PASSWORD", raising=False)
    guarded = ServiceConfig(annotate_password="pw")
    assert password_required(guarded) and not password_required(ServiceConfig()) and not password_required()
    with pytest.raises(InputError, match="wrong or missing annotation password"):
        answer(db, st.id, "ann", 0, "True", password="nope", cache_dir=cache, service=guarded)
    assert answer(db, st.id, "ann", 0, "True", password="pw", cache_dir=cache, service=guarded).labelled == 1


def test_items_without_attributes(tmp_path, data_dir):
    db = tmp_path / "a.db"
    st = create_study(db, make_reasonvos(tmp_path / "rv"), name="pending", n=3, seed=0)
    v = open_study(db, st.id, "ann", cache_dir=tmp_path / "c")
    assert v.attributes_text == "(not generated yet)"
    assert v.progress_text == "0 of 3 labelled (3 still without attributes)"
    with pytest.raises(InputError, match="no attributes yet"):
        answer(db, st.id, "ann", 0, "True", cache_dir=tmp_path / "c")
    assert first_unlabelled(db, st.id, "ann") is None


def test_segmentation_question_and_overlay(tmp_path, data_dir):
    overlay = tmp_path / "overlay.gif"
    frames = [Image.new("RGB", (64, 48), c) for c in ("red", "green", "blue")]
    frames[0].save(overlay, save_all=True, append_images=frames[1:])
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps([{"video": str(davis_frames("libby")), "expression": "the dog",
                                "attributes": "brown, small", "overlay": "overlay.gif"}]))
    db = tmp_path / "a.db"
    st = create_study(db, lst, name="seg", n=1, seed=0, segmentation_question=True)
    v = open_study(db, st.id, "ann", cache_dir=tmp_path / "c")
    assert v.segmentation_question and v.overlay_gif_path and v.overlay_gif_path != v.gif_path
    v = answer(db, st.id, "ann", 0, "True", seg_label="False", cache_dir=tmp_path / "c")
    assert (v.label, v.seg_label) == ("True", "False")
    assert {(j.question, j.label) for j in store.get_judgements(db, st.id)} == {
        ("reasoning", "True"), ("segmentation", "False")}


def test_gif_is_cached_hashed_and_bounded(tmp_path, data_dir):
    cache = tmp_path / "cache"
    src = davis_frames("libby")
    odd = tmp_path / "..evil name; rm -rf"
    odd.symlink_to(src, target_is_directory=True)
    gif = clip_gif(odd, cache, max_side=200, max_frames=12)
    assert gif.parent == cache and re.fullmatch(r"[0-9a-f]{40}\.gif", gif.name)
    with Image.open(gif) as im:
        assert im.is_animated and im.n_frames == 12 and max(im.size) == 200
    mtime = gif.stat().st_mtime_ns
    assert clip_gif(odd, cache, max_side=200, max_frames=12) == gif and gif.stat().st_mtime_ns == mtime
    assert clip_gif(src, cache, max_side=100, max_frames=12) != gif  # other settings → other file
    small = clip_gif(src, cache, limits=LimitsConfig(max_gif_bytes=60_000), max_side=200, max_frames=12)
    assert small.stat().st_size <= 60_000
    with Image.open(small) as im:
        assert im.n_frames < 12
    with pytest.raises(VideoError, match="cannot fit"):
        clip_gif(src, cache, limits=LimitsConfig(max_gif_bytes=200), max_side=64, max_frames=4)
    with pytest.raises(VideoError, match="does not exist"):
        clip_gif(tmp_path / "gone", cache)
    assert not [p for p in cache.iterdir() if p.suffix != ".gif"]  # no temporary files left


def test_missing_clip_is_reported_but_the_item_can_still_be_judged(env, tmp_path):
    db, st, cache = env
    with store.writing(db) as conn:
        conn.execute("UPDATE samples SET clip_ref = ? WHERE position = 0", [str(tmp_path / "moved")])
    v = show_item(db, st.id, "ann", 0, cache_dir=cache)
    assert v.gif_path is None and "cannot show the clip" in v.message
    assert answer(db, st.id, "ann", 0, "Skip", cache_dir=cache).labelled == 1


def test_handlers_render_and_refuse(env, monkeypatch, tmp_path):
    db, st, cache = env
    ctx = AppContext(config=SteerSegConfig(), db_path=db, cache_dir=cache)
    h = AnnotateHandlers(ctx)
    assert h.studies()["choices"] == [(f"#{st.id} flow (5 items)", str(st.id))]
    out = h.open("ann", str(st.id))
    assert len(out) == 12 and out[0].endswith(".gif") and "Item 1 of 5" in out[2]
    assert out[8].startswith("**0 of 5 labelled**") and out[10] == 1 and out[11] == ""
    out = h.answer_true("ann", "", str(st.id), out[10], "", None)
    assert out[10] == 2 and out[11] == "saved True for item 1" and 'width:20.0%' in out[9]
    out = h.answer_false("ann", "", str(st.id), 2, "looks wrong", None)
    out = h.prev("ann", str(st.id), out[10])
    assert out[5] == "Your answer: **False**" and out[6] == "looks wrong"
    out = h.answer_skip("ann", "", str(st.id), out[10], "", None)
    assert h.jump("ann", str(st.id), 1, 5)[10] == 5
    assert h.next_unlabelled("ann", str(st.id), 5)[10] == 3
    assert h.next("ann", str(st.id), 3)[10] == 4
    bad = h.jump("ann", str(st.id), 1, 99)
    assert bad[11].startswith("⚠️ item number must be between 1 and 5")
    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", "pw")
    refused = h.answer_true("ann", "nope", str(st.id), 3, "", None)
    assert "wrong or missing annotation password" in refused[11]
    assert len(store.get_judgements(db, st.id)) == 2
    assert h.open("", str(st.id), "pw")[11] == "⚠️ enter your annotator name first"
    assert "annotation password" in h.open("ann", str(st.id))[11]  # opening needs it too
    monkeypatch.delenv("STEERSEG_ANNOTATE_PASSWORD")
    # Page load: the browser remembers name and study; the tab reopens where ann stopped.
    restored = h.restore(["ann", str(st.id)])
    assert restored[0] == "ann" and restored[1]["value"] == str(st.id) and restored[2 + 10] == 4
    assert restored[1]["choices"] == [(f"#{st.id} flow (5 items)", str(st.id))]
    fresh = h.restore(None)  # nothing remembered: only the study list is refreshed
    assert len(fresh) == 14 and "value" not in fresh[1] and len(fresh[1]["choices"]) == 1
    assert "value" not in h.restore(["ann", "999"])[1]  # a study that no longer exists
    md, fig = h.stats(str(st.id), 0.5)
    assert "| ann | 2 | 1 | 0 | 1 |" in md and fig is not None  # item 2 was revised False → Skip
    files, msg = h.export(str(st.id), None)
    assert msg == "exported 5 files" and all(p.startswith("/") for p in files)
    assert h.stats("", 0.5)[0].startswith("⚠️")


def test_render_of_an_empty_view_and_progress_bar():
    from steerseg_core.annotation import ItemView

    out = render_view(ItemView(message="hello <b>"))
    assert out[8] == "no study open" and out[10] == 0 and out[11] == "hello &lt;b&gt;"
    assert 'width:100.0%' in progress_bar_html(1.5) and 'width:0.0%' in progress_bar_html(-1)


def test_segmentation_question_only_with_an_overlay_and_a_missing_answer_is_said(env, tmp_path):
    """The tab asks "Is the segmentation accurate?" only for items with an overlay to judge; a True /
    False saved without answering it says so; with no J&F and no such answers the statistics say why
    the segmentation chart is left out (and the chart has only the reasoning panel)."""
    import sqlite3

    db, st, cache = env
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE studies SET segmentation_question = 1 WHERE id = ?", [st.id])
        clip_ref = conn.execute("SELECT clip_ref FROM samples WHERE position = 0").fetchone()[0]
        conn.execute("UPDATE samples SET overlay_ref = ? WHERE position = 0", [clip_ref])  # item 1 only
    h = AnnotateHandlers(AppContext(config=SteerSegConfig(), db_path=db, cache_dir=cache))
    md, fig = h.stats(str(st.id), 0.5)
    assert "not charted: no J&F is attached" in md and len(fig.axes) == 1
    out = h.open("ann", str(st.id))
    assert out[7]["visible"] is True  # item 1 has an overlay: asked
    out = h.answer_true("ann", "", str(st.id), 1, "", None)
    assert "segmentation question of item 1 was left unanswered" in out[11] and out[10] == 2
    assert out[7]["visible"] is False  # item 2 has none: not asked
    out = h.answer_false("ann", "", str(st.id), 2, "", None)
    assert out[11] == "saved False for item 2"  # nothing was asked, nothing is missing
    out = h.prev("ann", str(st.id), 2)
    out = h.answer_true("ann", "", str(st.id), 1, "", "True")
    assert "unanswered" not in out[11]
    md, fig = h.stats(str(st.id), 0.5)
    assert "not charted" not in md and len(fig.axes) == 2


def test_a_study_is_created_from_the_tab(tmp_path, monkeypatch, data_dir):
    """An empty database: the tab creates a study from an uploaded expressions file and a frames
    folder on the server, selects it, and refuses without a file or the shared password."""
    import shutil

    import gradio as gr

    meta = make_reasonvos(tmp_path / "ReasonVOS")
    upload = tmp_path / "upload" / "meta_expressions.json"  # where Gradio keeps the uploaded copy
    upload.parent.mkdir()
    shutil.copy(meta, upload)
    h = AnnotateHandlers(AppContext(config=SteerSegConfig(), db_path=tmp_path / "new.db", cache_dir=tmp_path / "c"))
    study, msg, empty = h.create("", None, "", "mine", 3, 7, False)
    assert msg.startswith("⚠️ upload the expressions file") and empty == gr.skip()
    study, msg, empty = h.create("", str(upload), str(meta.parent), "mine", 3, 7, False)
    assert "Created study **#1 mine** (3 items)" in msg and empty["visible"] is False
    assert study["value"] == "1" and study["choices"] == [("#1 mine (3 items)", "1")]
    assert h.create("", str(upload), str(meta.parent), "mine", 3, 7, False)[1].startswith("⚠️")  # name taken
    monkeypatch.setenv("STEERSEG_ANNOTATE_PASSWORD", "pw")
    assert "password" in h.create("nope", str(upload), str(meta.parent), "other", 3, 7, False)[1]
    assert len(store.list_studies(tmp_path / "new.db")) == 1


def test_a_clip_given_by_its_file_is_named_by_its_file_name_not_its_server_folder():
    from steerseg_core.annotation.flow import ItemView

    assert ItemView(video_id="/srv/data/clips/dog.mp4").video_label == "dog.mp4"
    assert ItemView(video_id=r"C:\data\cat.mp4").video_label == "cat.mp4"
    assert ItemView(video_id="blackswan").video_label == "blackswan"  # a benchmark id stays as it is
