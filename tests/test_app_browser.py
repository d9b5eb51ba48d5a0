"""The Segment tab in headless Chromium: upload a real clip, type the query, run, see the results."""

from __future__ import annotations

import shutil

import pytest

from .test_app import N_FRAMES, clip_mp4, ctx  # noqa: F401  (module fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_segment_in_browser(ctx, clip_mp4, tmp_path, monkeypatch):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    import app

    monkeypatch.setenv("STEERSEG_OUTPUTS", str(tmp_path / "outputs"))
    demo = app.create_app(ctx)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            page.locator("input[type=file]").first.set_input_files(str(clip_mp4))
            page.get_by_label("expression").fill("the black swan")
            page.get_by_role("button", name="Segment", exact=True).click()
            page.get_by_text("tiny random-weight models").wait_for(timeout=300_000)
            page.get_by_text("keyframe 1/3").first.wait_for(timeout=30_000)  # heatmap gallery captions
            # the candidate table: the s_vid column and the chosen row's star
            page.locator("[aria-colindex]", has_text="s_vid").first.wait_for(timeout=30_000)
            page.locator("[aria-colindex='7']", has_text="★").first.wait_for(timeout=30_000)
            video = page.locator("video").last
            video.wait_for(state="attached", timeout=30_000)  # result video
            # what the page shows, not just that it rendered: one chosen candidate, a playable
            # result video, one heat map per keyframe
            assert page.locator("[aria-colindex='7']", has_text="★").count() == 1
            assert (video.get_attribute("src") or "").strip() != ""
            page.get_by_text("keyframe 3/3").first.wait_for(timeout=30_000)
            assert page.get_by_text("keyframe 4/3").count() == 0
            page.screenshot(path=str(tmp_path / "segment_tab.png"), full_page=True)  # for a human
            browser.close()
    finally:
        demo.close()
