"""The Annotate tab in headless Chromium: keyboard shortcuts answer and navigate, and a page refresh
reopens the study where the annotator stopped."""

from __future__ import annotations

import shutil

import pytest

from steerseg_core.annotation import create_study, generate_attributes, store
from steerseg_core.config import SteerSegConfig
from ui.context import AppContext

from .test_annotation_helpers import colour_cot, launch_local, make_reasonvos

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def page_url(tmp_path, data_dir):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    import gradio as gr

    from ui.annotate import ANNOTATE_SHORTCUTS_JS, build_annotate_tab

    db = tmp_path / "a.db"
    st = create_study(db, make_reasonvos(tmp_path / "ReasonVOS"), name="browser study", n=4, seed=0)
    generate_attributes(db, st.id, colour_cot)
    ctx = AppContext(config=SteerSegConfig(), db_path=db, cache_dir=tmp_path / "cache")
    with gr.Blocks() as demo, gr.Tab("Annotate"):
        build_annotate_tab(ctx)
    url = launch_local(demo, js=ANNOTATE_SHORTCUTS_JS)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser.new_page(), url, db, st
        finally:
            browser.close()
            demo.close()


def test_keyboard_shortcuts_and_refresh_resume(page_url):
    page, url, db, st = page_url
    page.goto(url)
    page.get_by_label("Annotator name").fill("keyboard user")
    page.get_by_label("Study").click()
    page.get_by_role("option", name=f"#{st.id} browser study (4 items)").click()
    page.get_by_role("button", name="Open / resume").click()
    status = page.locator("#annotate-status")
    page.get_by_text("Item 1 of 4").wait_for(timeout=20_000)
    page.locator("#annotate-progress").click()  # focus leaves the text boxes
    page.keyboard.press("t")
    page.get_by_text("saved True for item 1").wait_for(timeout=20_000)
    page.get_by_text("Item 2 of 4").wait_for()
    page.keyboard.press("2")  # False
    page.get_by_text("saved False for item 2").wait_for(timeout=20_000)
    page.keyboard.press("ArrowLeft")
    page.get_by_text("Item 2 of 4").wait_for(timeout=20_000)
    page.get_by_text("Your answer: False").wait_for()
    page.keyboard.press("s")  # revise to Skip
    page.get_by_text("saved Skip for item 2").wait_for(timeout=20_000)
    # Typing in the note box must not trigger shortcuts.
    page.get_by_label("Note (optional)").fill("")
    page.get_by_label("Note (optional)").press("t")
    page.wait_for_timeout(500)
    assert "saved True for item 3" not in status.inner_text()
    labels = sorted((j.sample_id, j.label, j.revision) for j in store.get_judgements(db, st.id))
    assert [(lab, rev) for _, lab, rev in labels] == [("True", 1), ("Skip", 2)]
    # Refresh: the browser remembers name and study, and the tab reopens at item 3.
    page.reload()
    page.get_by_text("Item 3 of 4").wait_for(timeout=20_000)
    assert page.get_by_label("Annotator name").input_value() == "keyboard user"
