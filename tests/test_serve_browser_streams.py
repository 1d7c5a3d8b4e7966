"""A stream's moment in the page, in Debian's Chromium driven by Playwright: the card shows a
placeholder for its still, and the player plays the recording's clip at the span."""

from __future__ import annotations

import pytest

# first: the page test's skips (Chromium, Playwright, the serve extra) and its browser
import test_serve_browser as page_test
from recorded import RECORDED_URI, SILENT_URI, RecordedStreams, recorded_streams
from serving import ThreadedServer

from vidsearch.serve.app import create_app
from vidsearch.serve.service import ServeConfig, moment_id

pytestmark = pytest.mark.slow

browser = page_test.browser  # the module's Chromium (a fixture), shared


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> RecordedStreams:
    return recorded_streams(tmp_path_factory.mktemp("browser-streams"))


@pytest.fixture(scope="module")
def server(streams: RecordedStreams):
    with ThreadedServer(create_app(ServeConfig(library=streams.library))) as url:
        yield url


def test_a_stream_moment_plays_its_recording_at_the_span(server: str, browser, streams: RecordedStreams) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(120_000)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    silent = moment_id(streams.ids[SILENT_URI], streams.t0, streams.t0 + streams.window)
    page.goto(f"{server}/?similar={silent}")  # more like the silent stream's window: the recorded one's
    card = page.locator(f".card[data-video='{streams.ids[RECORDED_URI]}']")
    card.wait_for()
    assert card.locator(".no-still").inner_text() == "Stream recording"
    card.locator(".name").click()
    page.wait_for_selector("#overlay:not([hidden])")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && !v.seeking; }"
    )
    video = page.evaluate(
        "() => { const v = document.getElementById('video'); return {t: v.currentTime, d: v.duration, error: v.error && v.error.code}; }"
    )
    assert video["error"] is None and video["t"] < 1.0  # the span starts at the clip's start (the recording's)
    assert video["d"] == pytest.approx(streams.window, abs=0.5)
    assert page.locator("#player-error").is_hidden()
    page.keyboard.press("Escape")
    assert not failed, failed
    page.close()


def test_a_shared_link_to_a_stream_moment_plays_it(server: str, browser, streams: RecordedStreams) -> None:
    """A link at a stream's time (its clock's, as "Copy link at this time" writes it) plays the recording's clip there."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.set_default_timeout(120_000)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    t0, t1 = streams.t0, streams.t0 + streams.window
    page.goto(f"{server}/#v={streams.ids[RECORDED_URI]}&t={t0 + 1:.2f}&span={t0:.2f},{t1:.2f}")
    page.wait_for_selector("#overlay:not([hidden])")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && !v.seeking; }"
    )
    video = page.evaluate(
        "() => { const v = document.getElementById('video'); return {t: v.currentTime, src: v.currentSrc, error: v.error && v.error.code}; }"
    )
    assert video["error"] is None and "/clip.mp4?" in video["src"]
    assert video["t"] == pytest.approx(1.0, abs=0.15)  # one second into the span: the clip starts with it
    assert page.locator("#player-error").is_hidden()
    assert f"t={t0 + 1:.2f}" in page.evaluate("location.hash")  # the link keeps the stream's clock time
    page.keyboard.press("Escape")
    assert not failed, failed
    page.close()
