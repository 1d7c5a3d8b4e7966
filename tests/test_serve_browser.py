"""End to end in a real browser: Debian's Chromium driven by Playwright, against a real server.

The generated videos carry their frame number in pixels (tests/videogen.py), so the test reads
back from the page which frame the player shows, not only what ``currentTime`` claims.

Set-up (README, "Contributing"): ``apt-get install -y chromium`` and ``pip install -e .[serve,dev]``.
Never ``playwright install``: it downloads a browser, which fails offline; the test drives the
system Chromium through ``executable_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed (pip install -e .[dev])")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e .[serve])")

import httpx  # noqa: E402
import speechgen  # noqa: E402
import videogen  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from serving import ThreadedServer  # noqa: E402

from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.indexer.transcribe import transcribe_library  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("VIDSEARCH_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
FPS = 10
SIZE = (320, 240)
SUNSET_SAID = [
    (1.0, 3.0, "the tide is turning"),
    (6.0, 8.5, "the lighthouse keeper waves goodbye"),
    (11.0, 13.0, "night falls"),
]
BITS = 12
# Modification times (noon UTC, so the local day is the same day in any time zone within 11 h).
MTIMES = {
    "beach walk.mp4": 1709294400.0,  # 2024-03-01
    "garden/square.mp4": 1709640000.0,  # 2024-03-05
    "garden/sunset.mp4": 1709985600.0,  # 2024-03-09
    "old camera.avi": 1710244800.0,  # 2024-03-12
}
QUERIES = [
    "a dog catching a frisbee",
    "people dancing at a party",
    "a red car on a road",
    "waves on a beach",
    "someone playing guitar",
    "a cat sleeping",
    "children playing football",
    "cooking in a kitchen",
]

# Reads the frame the <video> shows (drawn into a canvas) as RGBA bytes, with the time it is at.
READ_FRAME = """async () => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(v, 0, 0);
  return {t: v.currentTime, w: c.width, h: c.height, data: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
}"""


def _frame_number(shot: dict) -> int:
    img = np.asarray(shot["data"], dtype=np.uint8).reshape(shot["h"], shot["w"], 4)[:, :, :3]
    return videogen.frame_number(img, BITS)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("browser-lib")
    videos = root / "videos"
    # H.264 (what Debian's Chromium plays), long enough for windows, keyframes every second
    videogen.write_video(videos / "beach walk.mp4", seconds=24, fps=FPS, size=SIZE, gop=FPS, color=(60, 140, 230))
    videogen.write_video(
        videos / "garden" / "square.mp4",
        seconds=20,
        fps=FPS,
        size=SIZE,
        gop=FPS,
        pattern="moving_square",
        color=(80, 200, 90),
    )
    videogen.write_video(
        videos / "garden" / "sunset.mp4", seconds=16, fps=FPS, size=SIZE, gop=FPS, color=(240, 140, 60)
    )
    videogen.write_video(videos / "old camera.avi", seconds=6, fps=FPS, size=SIZE, codec="mpeg4", color=(200, 200, 200))
    # what is said in one of them (none of the QUERIES' words: their rankings stay the vectors')
    speechgen.write_srt(videos / "garden" / "sunset.srt", SUNSET_SAID)
    for name, t in MTIMES.items():  # file dates the date sort and range see
        os.utime(videos / name, (t, t))
    with Library.open(root / "lib") as lib:
        report = index_folder(lib, videos, IndexOptions(model=str(tiny_checkpoint), workers=1))
        assert transcribe_library(lib).transcribed == 1
    assert not report.failed, report.failed
    return root / "lib"


@pytest.fixture(scope="module")
def server(library: Path):
    with ThreadedServer(create_app(ServeConfig(library=library))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _pick_query(url: str) -> tuple[str, dict]:
    """A query whose best result is a playable video matched after its start (random weights decide)."""
    for q in QUERIES:
        top = httpx.post(f"{url}/api/v1/search", json={"query": q, "k": 8}, timeout=120).json()["results"][0]
        if top["video"]["playable"] and top["start"] >= 2.0:
            return q, top
    pytest.fail("no query ranks a playable moment that starts after 2 s first")


def test_search_click_play_at_the_span_start_and_seek(server: str, browser) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    query, top = _pick_query(server)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(120_000)  # a shared, busy machine
    media_statuses: list[int] = []
    page.on("response", lambda r: media_statuses.append(r.status) if "/media/" in r.url else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Record where the player lands, and hold playback there (the page's play() call is noted, not
    # run), so the frame on screen can be compared with the span's start exactly.
    page.add_init_script(
        "window.__at = []; document.addEventListener('seeked', e => window.__at.push(e.target.currentTime), true);"
        "document.addEventListener('loadeddata', e => window.__at.push(e.target.currentTime), true);"
        "HTMLMediaElement.prototype.play = function () { window.__played = true; return Promise.resolve(); };"
    )
    page.goto(server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # focused on load
    page.keyboard.type(query)
    page.keyboard.press("Enter")
    page.wait_for_selector(".card")
    assert page.locator(".card .name").first.inner_text() == top["video"]["name"]  # the expected video first
    assert f"q={query.split()[0]}" in page.url  # state in the URL
    first = page.locator(".card").first
    first.hover()
    page.mouse.move(*_point_in(first, 0.8))
    page.wait_for_function("() => document.querySelector('.card .scrub.ready') !== null")  # the strip scrubs on hover
    page.screenshot(path=str(ARTIFACTS / "serve-results.png"))

    first.click()
    page.wait_for_selector("#overlay:not([hidden])")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && !v.seeking && window.__at.length > 0; }"
    )
    start = top["start"]
    # the player went to the span's start (by the media fragment, or the page's own seek)
    assert any(abs(t - start) < 0.05 for t in page.evaluate("window.__at")), (page.evaluate("window.__at"), start)
    assert page.evaluate("window.__played") is True  # the page starts playback there
    shot = page.evaluate(READ_FRAME)
    assert abs(shot["t"] - start) < 0.05, (shot["t"], start)
    n = _frame_number(shot)
    assert abs(n - start * FPS) <= 1, (n, start)  # the decoded frame on screen is the one at the start
    assert f"#v={top['video']['id']}&t=" in page.url
    span_box = page.locator("#span").bounding_box()
    assert span_box and span_box["width"] > 0  # the span is marked on the timeline
    page.screenshot(path=str(ARTIFACTS / "serve-player.png"))
    link = page.locator("#clip-download")  # keep the moment: the span as an MP4
    assert link.inner_text() == "Download clip"
    assert link.get_attribute("href") == f"/api/v1/moments/{top['moment_id']}/clip.mp4"
    got = page.evaluate(
        "async () => { const r = await fetch(document.getElementById('clip-download').href);"
        " return [r.status, r.headers.get('content-type'), r.headers.get('content-disposition'), (await r.arrayBuffer()).byteLength]; }"
    )
    assert got[:2] == [200, "video/mp4"] and got[2].startswith("attachment; filename=") and got[3] > 1000, got

    target = (
        min(top["video"]["duration"] - 1.0, start + 3.0) if start + 3.0 < top["video"]["duration"] - 1 else start - 1.5
    )
    page.evaluate(
        f"() => new Promise(r => {{ const v = document.getElementById('video'); v.addEventListener('seeked', r, {{once: true}}); v.currentTime = {target}; }})"
    )
    shot = page.evaluate(READ_FRAME)
    assert abs(_frame_number(shot) - round(target * FPS)) <= 1, (_frame_number(shot), target)
    assert 206 in media_statuses, media_statuses  # the seek was served as a byte range

    page.keyboard.press("Escape")
    page.wait_for_selector("#overlay", state="hidden")
    assert "#v=" not in page.url
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    assert not errors, errors
    page.close()


def _point_in(locator, fx: float) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.3


def test_keyboard_more_like_this_stills_and_shared_link(server: str, browser, library: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(120_000)
    page.goto(server + "/?q=" + "a%20sunset")
    page.wait_for_selector(".card")
    names = page.locator(".card .name").all_inner_texts()
    assert len(names) == 4
    page.keyboard.press("Escape")  # leave the search box
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.querySelector('.card.selected').dataset.index") == "1"
    old = names.index("old camera.avi")
    for _ in range(abs(old - 1)):
        page.keyboard.press("ArrowRight" if old > 1 else "ArrowLeft")
    page.keyboard.press("Enter")
    page.wait_for_selector("#overlay:not([hidden])")
    assert page.locator("#stills").is_visible() and not page.locator("#video").is_visible()  # MPEG-4 Part 2: stills
    page.wait_for_function(
        "() => [...document.querySelectorAll('#stills img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.keyboard.press("Escape")

    page.locator(".card .similar").first.click()  # more like this
    page.wait_for_function("() => location.search.includes('similar=')")
    # the previous results stay until the new ones come: wait for the search to answer
    page.wait_for_function("() => !document.getElementById('status').textContent.startsWith('Searching')")
    page.wait_for_selector(".card")
    status = page.inner_text("#status")  # what it searched from: the moment's video and span
    assert " like " in status and "the chosen moment" not in status, status
    assert page.get_attribute("#q", "placeholder").startswith("More like ")

    shared = (
        page.url.split("?")[0]
        + "?q=a%20sunset#v="
        + page.locator(".card").first.get_attribute("data-video")
        + "&t=4.00,8.00"
    )
    other = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
    other.set_default_timeout(120_000)
    other.goto(shared)
    other.wait_for_selector("#overlay:not([hidden])")
    other.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.hidden || (v.readyState >= 2 && !v.seeking); }"
    )
    if other.locator("#video").is_visible():
        assert abs(other.evaluate("document.getElementById('video').currentTime") - 4.0) < 2.1
    other.keyboard.press("Escape")
    other.wait_for_selector(".card")
    assert other.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    other.screenshot(path=str(ARTIFACTS / "serve-phone.png"))
    other.close()
    page.close()


def test_empty_library_says_what_to_do(tmp_path: Path, browser) -> None:
    with Library.open(tmp_path / "empty"):
        pass
    with ThreadedServer(create_app(ServeConfig(library=tmp_path / "empty"))) as url:
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        page.wait_for_function("() => document.getElementById('status').textContent.length > 0")
        assert "vidsearch index" in page.inner_text("#status")
        with Library.open(tmp_path / "empty", create=False) as lib, lib.writer_lock():
            page.reload()
            page.wait_for_function("() => document.getElementById('status').textContent.includes('Indexing')")
        page.close()


# A label as a user's label file could hold it: it must show as text, never run.
HOSTILE_LABEL = '<img src=x onerror="window.__xss=1"> wave & "hi"'
# The known tube: keyframe boxes (normalized x1, y1, x2, y2) moving right and down, then a second tube.
TUBE = {2.0: (0.10, 0.20, 0.30, 0.50), 3.0: (0.30, 0.25, 0.50, 0.55), 4.0: (0.50, 0.30, 0.70, 0.60)}
LATER = {6.0: (0.60, 0.10, 0.90, 0.40), 7.0: (0.60, 0.10, 0.90, 0.40)}


def _store_tubes(library: Path) -> int:
    """Store a scan with the two tubes above on square.mp4 through the store API; its video id."""
    from vidsearch.store import actors as stored

    with Library.open(library, create=False) as lib:
        space = lib.space(None)
        with lib.session() as s:
            (vid, seg) = next(
                (v, g) for v, g, p in stored.unscanned_videos(s, space.id, "moves.txt") if p.endswith("square.mp4")
            )
            tubes = [
                stored.TubeRow(
                    0,
                    2.0,
                    4.0,
                    [(HOSTILE_LABEL, 0.8), ("sit", 0.2)],
                    [stored.BoxRow(t, *b, None if t == 3.0 else 0.9, HOSTILE_LABEL, 0.8) for t, b in TUBE.items()],
                ),
                stored.TubeRow(
                    1, 6.0, 7.0, [("sit", 0.6)], [stored.BoxRow(t, *b, 0.9, "sit", 0.6) for t, b in LATER.items()]
                ),
            ]
            stored.save_scan(s, seg, space.id, "moves.txt", "hand", 6, tubes)
            one = stored.TubeRow(
                0, 2.0, 4.0, [("stand", 0.5)], [stored.BoxRow(t, *b, 0.9, "stand", 0.5) for t, b in TUBE.items()]
            )
            stored.save_scan(s, seg, space.id, "other.txt", "hand", 3, [one])  # a second label set
    return vid


def _expected(page, boxes: dict[float, tuple], t: float) -> dict[str, float]:
    """Where a box must be on screen: interpolated in time, placed in the picture's letterboxed rectangle."""
    times = sorted(boxes)
    k = max(i for i, kt in enumerate(times[:-1]) if kt <= t) if t >= times[0] else 0
    a, b = times[k], times[k + 1]
    w = min(1.0, max(0.0, (t - a) / (b - a)))
    x1, y1, x2, y2 = (p + w * (q - p) for p, q in zip(boxes[a], boxes[b], strict=False))
    v = page.locator("#video").bounding_box()
    scale = min(v["width"] / SIZE[0], v["height"] / SIZE[1])
    pw, ph = SIZE[0] * scale, SIZE[1] * scale
    ox, oy = v["x"] + (v["width"] - pw) / 2, v["y"] + (v["height"] - ph) / 2
    return {
        "x": ox + x1 * pw,
        "y": oy + y1 * ph,
        "width": (x2 - x1) * pw,
        "height": (y2 - y1) * ph,
        "pillarbox": ox - v["x"],
    }


SHOWN = """() => [...document.querySelectorAll('#actors .actor')].map(e => {
  const r = e.getBoundingClientRect();
  return {track: e.dataset.track, x: r.x, y: r.y, width: r.width, height: r.height, label: e.textContent,
          bridged: e.classList.contains('bridged'), markup: e.querySelectorAll('img, script, b, i, a').length};
})"""


def _seek(page, t: float) -> list[dict]:
    page.evaluate(
        f"() => new Promise(r => {{ const v = document.getElementById('video'); v.addEventListener('seeked', r, {{once: true}}); v.currentTime = {t}; }})"
    )
    return page.evaluate(SHOWN)


def _near(shown: dict, want: dict, px: float = 2.0) -> bool:
    return all(abs(shown[k] - want[k]) <= px for k in ("x", "y", "width", "height"))


def test_people_boxes_follow_the_tube_over_the_video(server: str, browser, library: Path) -> None:
    vid = _store_tubes(library)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the page's own play() is held (the test seeks to exact times); the real one is kept for later
    page.add_init_script(
        "HTMLMediaElement.prototype.realPlay = HTMLMediaElement.prototype.play;"
        "HTMLMediaElement.prototype.play = function () { return Promise.resolve(); };"
    )
    page.goto(f"{server}/#v={vid}&t=1.00,9.00")
    page.wait_for_selector("#toggle-actors:not([hidden])")
    page.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && !v.seeking; }"
    )
    # two label sets: a choice, the first one shown; each tube marked under the timeline
    assert page.locator("#actor-set option").all_inner_texts() == ["moves.txt (2 people)", "other.txt (1 person)"]
    assert page.locator("#timeline .tube").count() == 2

    assert _seek(page, 1.0) == []  # before the tube
    (box,) = _seek(page, 2.4)  # between keyframes 2 and 3, nearer 2
    want = _expected(page, TUBE, 2.4)
    assert want["pillarbox"] > 50  # 1280x800: the 4:3 picture is pillarboxed inside the player
    assert _near(box, want), (box, want)
    assert box["label"] == f"{HOSTILE_LABEL} 0.80" and box["markup"] == 0  # the label is text: no <img> made of it
    assert box["bridged"] is False
    (later,) = _seek(page, 3.4)
    assert _near(later, _expected(page, TUBE, 3.4)) and later["x"] > box["x"] + 50  # it moved with time
    assert later["bridged"] is True  # nearest keyframe (3 s) was a bridged detector miss: dashed
    assert _seek(page, 5.0) == []  # between the two tubes
    (other,) = _seek(page, 6.5)
    assert other["label"] == "sit 0.60" and _near(other, _expected(page, LATER, 6.5))
    assert _seek(page, 8.0) == []  # after both
    page.select_option("#actor-set", "1")
    (box,) = _seek(page, 3.0)
    assert (
        box["label"] == "stand 0.50"
        and _near(box, _expected(page, TUBE, 3.0))
        and page.locator("#timeline .tube").count() == 1
    )
    page.select_option("#actor-set", "0")

    _seek(page, 3.0)
    page.locator("#toggle-actors").click()
    assert page.evaluate(SHOWN) == [] and page.get_attribute("#toggle-actors", "aria-pressed") == "false"
    page.keyboard.press("b")  # and back on from the keyboard
    (box,) = page.evaluate(SHOWN)
    assert _near(box, _expected(page, TUBE, 3.0))

    # playing: the box is redrawn frame by frame (requestVideoFrameCallback) as the tube moves
    _seek(page, 2.0)
    xs = page.evaluate("""() => new Promise(resolve => {
      const v = document.getElementById('video'), xs = [];
      v.muted = true;
      const tick = () => {
        const b = document.querySelector('#actors .actor');
        if (b) xs.push(b.getBoundingClientRect().x);
        if (v.currentTime >= 2.8 || xs.length > 600) { v.pause(); resolve(xs); } else requestAnimationFrame(tick);
      };
      v.realPlay().then(() => requestAnimationFrame(tick));
    })""")
    page.wait_for_function("() => document.getElementById('video').paused")
    t = page.evaluate("document.getElementById('video').currentTime")
    assert len(set(round(x) for x in xs)) >= 3 and xs == sorted(xs), xs  # several positions, always moving right
    page.wait_for_timeout(100)
    (box,) = page.evaluate(SHOWN)
    assert _near(box, _expected(page, TUBE, t), px=3.0), (box, t)
    page.screenshot(path=str(ARTIFACTS / "serve-actors.png"))

    page.keyboard.press("Escape")
    page.wait_for_selector("#overlay", state="hidden")
    assert page.evaluate("document.querySelectorAll('#actors .actor').length") == 0
    assert page.evaluate("window.__xss") is None and not errors, errors
    page.close()


def test_said_words_quoted_captions_and_transcript_panel(server: str, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("HTMLMediaElement.prototype.play = function () { return Promise.resolve(); };")
    page.goto(server + "/")
    page.keyboard.type("lighthouse keeper")
    page.keyboard.press("Enter")
    page.wait_for_selector(".card")
    first = page.locator(".card").first
    assert first.locator(".name").inner_text() == "garden/sunset.mp4"  # seen and said beats seen alone
    assert first.locator(".why").inner_text() == "both"
    assert first.locator("q.said").inner_text() == "the lighthouse keeper waves goodbye"
    assert first.locator("q.said mark").inner_text() == "lighthouse keeper"
    first.click()
    page.wait_for_selector("#transcript:not([hidden]) li")
    lines = page.locator("#transcript li")
    assert lines.count() == 3 and "night falls" in lines.nth(2).inner_text()
    track = page.evaluate(
        "() => { const t = document.querySelector('#video track'); return t && [t.kind, t.src, t.default]; }"
    )
    assert track[0] == "captions" and track[1].endswith("/transcript.vtt") and track[2] is True
    page.wait_for_function("() => document.getElementById('video').readyState >= 1")
    lines.nth(2).click()  # a click on a line plays from it, and the panel follows playback
    page.wait_for_function("() => Math.abs(document.getElementById('video').currentTime - 11.0) < 0.05")
    page.wait_for_function("() => document.querySelector('#transcript li.now') !== null")
    assert "night falls" in page.locator("#transcript li.now").inner_text()
    cues = page.evaluate(
        "() => { const t = document.getElementById('video').textTracks[0]; t.mode = 'hidden';"
        " return new Promise(r => setTimeout(() => r(t.cues ? t.cues.length : -1), 500)); }"
    )
    assert cues == 3  # the WebVTT track loaded
    page.screenshot(path=str(ARTIFACTS / "serve-transcript.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#overlay", state="hidden")
    assert page.locator("#video track").count() == 0 and not errors, errors
    page.close()


HEAT_PIXELS = """() => { const c = document.getElementById('heat'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let lit = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) lit++; return {lit, width: c.width}; }"""


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 0.05:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
def test_timeline_heat_marks_match_bar_sort_dates_and_links(server: str, browser, viewport: dict) -> None:
    phone = viewport["width"] < 500
    query, top = _pick_query(server)
    context = browser.new_context(viewport=viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    # the page's play() is held in every page of the context: the test checks exact times
    context.add_init_script("HTMLMediaElement.prototype.play = function () { return Promise.resolve(); };")
    page = context.new_page()
    page.set_default_timeout(120_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(server + "/?q=" + query.replace(" ", "%20"))
    page.wait_for_selector(".card")
    # scores people understand: a bar, full for the best result, the raw score only in the tooltip
    bars = page.locator(".card .matchbar")
    assert bars.count() == page.locator(".card").count() == 4
    assert page.evaluate("document.querySelector('.card .matchbar i').style.width") == "100%"
    assert "not a probability" in bars.first.get_attribute("title") and "Raw score" in bars.first.get_attribute("title")
    assert "viclip" not in page.inner_text("#status") and "viclip" not in page.inner_text(
        "#results"
    )  # model key: not here
    first_date = page.locator(".card .date").first.get_attribute("datetime")
    assert first_date.startswith("2024-03-")

    page.locator(".card").first.click()
    page.wait_for_selector("#timeline[data-heat=ready]")
    assert page.evaluate("document.getElementById('video').controls") is False  # one timeline: ours
    assert page.locator(".timeline").count() == 1
    lit = page.evaluate(HEAT_PIXELS)
    assert lit["lit"] > 0.9 * lit["width"]  # the strip covers the whole video
    marks = page.locator("#timeline .match")
    scores = httpx.get(f"{server}/api/v1/videos/{top['video']['id']}/scores", params={"q": query}, timeout=60).json()
    assert marks.count() == len(scores["spans"]) >= 1
    page.wait_for_function("() => document.getElementById('video').readyState >= 1")
    last = marks.nth(marks.count() - 1)
    want = float(last.get_attribute("data-start"))
    last.click()  # click to jump
    page.wait_for_function(f"() => Math.abs(document.getElementById('video').currentTime - {want}) < 0.05")
    page.screenshot(path=str(ARTIFACTS / f"serve-timeline-{'phone' if phone else 'desktop'}.png"))
    # the URL follows seeks; "copy link at this time" gives that URL
    page.evaluate(
        "() => new Promise(r => { const v = document.getElementById('video'); v.addEventListener('seeked', r, {once: true}); v.currentTime = 5.0; })"
    )
    page.wait_for_function("() => location.hash.includes('t=5.00')")
    page.locator("#copy-link").click()
    page.wait_for_function("() => document.getElementById('copy-link').textContent === 'Link copied'")
    link = page.evaluate("navigator.clipboard.readText()")
    assert "t=5.00" in link and f"v={top['video']['id']}" in link and "span=" in link
    other = context.new_page()
    other.set_default_timeout(120_000)
    other.goto(link)
    other.wait_for_function(
        "() => { const v = document.getElementById('video'); return v.readyState >= 2 && !v.seeking; }"
    )
    assert abs(other.evaluate("document.getElementById('video').currentTime") - 5.0) < 0.05
    other.close()
    page.keyboard.press("Escape")

    # sort by name and by date, and a date range, from the filters (kept in the URL)
    page.locator("#toggle-filters").click()
    page.select_option("#f-sort", "name")
    page.wait_for_function("() => location.search.includes('sort=name')")
    page.wait_for_function("() => document.querySelector('.card .name').textContent === 'beach walk.mp4'")
    assert page.locator(".card .name").all_inner_texts() == sorted(MTIMES)
    page.select_option("#f-sort", "date")
    page.wait_for_function("() => document.querySelector('.card .name').textContent === 'old camera.avi'")
    assert page.locator(".card .name").all_inner_texts() == sorted(MTIMES, key=lambda n: -MTIMES[n])
    page.fill("#f-date-from", "2024-03-04")
    page.fill("#f-date-to", "2024-03-06")
    page.locator("#f-date-to").dispatch_event("change")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 1")
    assert page.locator(".card .name").all_inner_texts() == ["garden/square.mp4"]
    assert "date_from=2024-03-04" in page.url
    page.fill("#f-date-from", "")
    page.fill("#f-date-to", "")
    page.select_option("#f-sort", "score")

    # every moment: one card per video, its overlapping windows merged into spans
    page.select_option("#f-group", "moment")
    page.wait_for_selector(".card .spans")
    moments = httpx.post(
        f"{server}/api/v1/search", json={"query": query, "k": 24, "group_by": "moment"}, timeout=60
    ).json()["results"]
    by_video: dict[str, list[tuple[float, float]]] = {}
    for m in moments:
        by_video.setdefault(m["video"]["name"], []).append((m["start"], m["end"]))
    assert page.locator(".card").count() == len(by_video)
    for name, spans in by_video.items():
        card = page.locator(".card", has=page.locator(".name", has_text=name))
        assert card.locator(".spans button").count() == len(_merged(spans)), name
    page.screenshot(path=str(ARTIFACTS / f"serve-moments-{'phone' if phone else 'desktop'}.png"))
    # the page's merge itself: overlapping and touching windows are one span, a gap starts another
    merged = page.evaluate(
        "() => mergeSpans([{start: 20, end: 28, score: .2}, {start: 0, end: 8, score: .1}, {start: 4, end: 12, score: .3},"
        " {start: 28.02, end: 30, score: .5}]).map(s => [s.start, s.end, s.score])"
    )
    assert merged == [[0, 12, 0.3], [20, 30, 0.5]]
    chip = page.locator(".card .spans button").first
    chip.click()
    page.wait_for_selector("#overlay:not([hidden])")
    # the player and its download link take the merged span, not one of its windows
    first_name = page.locator(".card .name").first.inner_text()
    a, b = _merged(by_video[first_name])[0]
    href = page.get_attribute("#clip-download", "href")
    assert href.endswith(f"-{round(a * 1000)}-{round(b * 1000)}/clip.mp4"), (href, a, b)
    page.keyboard.press("Escape")
    if phone:
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not [u for u in missing if "favicon" in u], missing
    assert not errors, errors
    context.close()


def test_server_stopped_keeps_results_and_says_so(library: Path, browser) -> None:
    server = ThreadedServer(create_app(ServeConfig(library=library)))
    url = server.__enter__()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(120_000)
        page.add_init_script("HTMLMediaElement.prototype.play = function () { return Promise.resolve(); };")
        page.goto(url + "/?q=a%20sunset")
        page.wait_for_selector(".card")
        shown = page.locator(".card .name").all_inner_texts()
    finally:
        server.__exit__(None, None, None)
    page.fill("#q", "a red car on a road")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('status').textContent.includes('does not answer')")
    assert "Failed to fetch" not in page.inner_text("#status")
    assert page.locator(".card .name").all_inner_texts() == shown  # the results shown are kept
    playable = [i for i, n in enumerate(shown) if not n.endswith(".avi")][0]
    page.locator(".card").nth(playable).click()
    page.wait_for_selector("#player-error:not([hidden])")  # a message, not a dead black player
    assert "cannot be played" in page.inner_text("#player-error")
    page.screenshot(path=str(ARTIFACTS / "serve-offline.png"))
    page.close()
