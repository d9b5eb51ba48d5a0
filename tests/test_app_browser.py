"""The Segment tab in headless Chromium: upload a real clip, type the query, run, read the results.

Screenshots of the tab after a run, at 1280 px (desktop) and 400 px (phone), are left in pytest's
temp folder (``segment_1280.png``, ``segment_400.png``) for a person to look at.
"""

from __future__ import annotations

import shutil

import pytest

from .test_app import N_FRAMES, clip_mp4, ctx  # noqa: F401  (module fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_segment_in_browser(ctx, clip_mp4, tmp_path):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which("chromium"):
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    import app
    from ui.segment import SEGMENT_CSS

    demo = app.create_app(ctx)
    demo.queue()
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False,
                            css=SEGMENT_CSS)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            for width in (1280, 400):
                page = browser.new_page(viewport={"width": width, "height": 800})
                page.goto(url)
                page.locator("input[type=file]").first.set_input_files(str(clip_mp4))
                page.get_by_label("expression").fill("the black swan")
                page.get_by_role("button", name="Segment", exact=True).click()
                status = page.locator("#segment-status")
                status.get_by_text("tiny random-weight models").wait_for(timeout=300_000)
                page.locator("[aria-colindex]", has_text="s_vid").first.wait_for(timeout=30_000)
                # S_vid as tiles with the frame index on each
                page.get_by_text("frame 0", exact=True).first.wait_for(timeout=30_000)
                page.locator("video").last.wait_for(state="attached", timeout=30_000)
                if width == 1280:
                    # a thumbnail click chooses that candidate; the number box follows
                    thumbs = page.locator(".steerseg-gallery").nth(2).locator("button.thumbnail-item")
                    n = thumbs.count()
                    assert n >= 1
                    target = n - 1
                    thumbs.nth(target).click()
                    status.get_by_text(f"#{target} chosen").wait_for(timeout=60_000)
                    box = page.get_by_label(f"use candidate # (0–{n - 1})")
                    assert box.input_value() == str(target)
                    page.wait_for_timeout(1000)  # let the gallery's own trailing events settle

                    def use_candidate(value: str, expect: str, box=box, page=page, status=status) -> None:
                        """Type a number, leave the box, press the button; retried: on a loaded
                        machine a late event of the gallery can reset the box before the click."""
                        for _ in range(3):
                            box.fill(value)
                            box.press("Tab")  # commit the value, as a user leaving the box does
                            page.wait_for_timeout(300)
                            page.get_by_role("button", name="Use this candidate").click()
                            try:
                                status.get_by_text(expect).wait_for(timeout=20_000)
                                return
                            except sync_api.TimeoutError:
                                continue
                        raise AssertionError(f"status never showed {expect!r}: {status.inner_text()!r}")

                    # an error leaves every result in place and stays readable in the status line
                    use_candidate("7", "candidate 7 does not exist")
                    assert page.locator(".steerseg-gallery").nth(2).locator("button.thumbnail-item").count() == n
                    page.wait_for_timeout(500)
                    assert page.locator("[aria-colindex]", has_text="s_vid").count() >= 1
                    use_candidate(str(target), f"#{target} chosen")
                shot = tmp_path / f"segment_{width}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if width == 400:  # a new upload clears the previous results
                    page.get_by_label("Clear").first.click()
                    page.wait_for_function(
                        "() => !document.querySelector('#segment-status').innerText.includes('chosen')",
                        timeout=30_000)
                    assert page.locator(".steerseg-gallery").nth(2).locator("button.thumbnail-item").count() == 0
                page.close()
            browser.close()
    finally:
        demo.close()
    print(f"screenshots: {tmp_path}")
