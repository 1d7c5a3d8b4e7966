"""The page's library view, query by example and accessibility, in Debian's Chromium driven by Playwright.

Accessibility is checked by axe-core (the npm package in ``tests/browser``, installed with
``npm ci --prefix tests/browser``): the test evaluates ``axe.min.js`` in the page itself, so the
server never serves it, and the page's Content-Security-Policy (no inline scripts) stays in force
for the page's own code. axe runs with the WCAG 2.1 A/AA rules (and 2.2's target size) on the
search results, the open player and the library view, on a desktop and a phone viewport; a
serious or critical violation fails the test, the others are printed. What axe does not check is
measured here: control borders against their background (WCAG 1.4.11, 3:1), tap targets on the
phone (24 px), Tab order through the cards, and focus kept inside the player dialog.
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import httpx
import pytest

# first: the page test's skips (Chromium, Playwright, the serve extra); its browser and artifacts folder
import test_serve_browser as page_test
import videogen
from serving import ThreadedServer

from vidsearch.indexer.pipeline import IndexOptions, index_folder
from vidsearch.serve.app import create_app
from vidsearch.serve.service import ServeConfig
from vidsearch.store.library import Library
from vidsearch.store.progress import PROGRESS_FILE, IndexProgress, write_progress

pytestmark = pytest.mark.slow

ARTIFACTS = page_test.ARTIFACTS
browser = page_test.browser  # the module's Chromium (a fixture), shared

AXE = Path(__file__).resolve().parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
FPS = 10
SIZE = (160, 120)

AXE_RUN = """async () => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}});
  return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\\n').slice(1).join(' ').trim())}));
}"""

# Visible controls whose border is their boundary, with the contrast of that border against the
# background behind the control (the nearest ancestor that paints one).
BORDERS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const behind = (el) => { for (let e = el.parentElement; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  return [...document.querySelectorAll('input:not([type=file]), select, button')].filter(el => el.getClientRects().length && !el.closest('[hidden]'))
    .map(el => { const s = getComputedStyle(el), back = behind(el);
      // the boundary: the border where there is one, else an outline drawn as a box shadow
      // (its colour laid over the background behind), else the control's own fill
      const shadow = s.boxShadow !== 'none' ? rgb(s.boxShadow) : null;
      const over = (c) => c.slice(0, 3).map((v, i) => (c.length > 3 ? c[3] : 1) * v + (1 - (c.length > 3 ? c[3] : 1)) * back[i]);
      const edge = parseFloat(s.borderTopWidth) > 0 ? rgb(s.borderTopColor) : shadow ? over(shadow) : rgb(s.backgroundColor);
      return {what: el.id || el.className || el.tagName, ratio: ratio(edge.slice(0, 3), back)}; });
}"""

# Tap targets under 24 px, less those WCAG 2.5.8's spacing exception lets be: a 24 px circle
# centred on the small target reaches no other target (nor another small one's circle).
TARGETS = """() => {
  const all = [...document.querySelectorAll('a[href], button, input:not([type=file]), select')]
    .filter(el => el.getClientRects().length && !el.closest('[hidden]') && getComputedStyle(el).visibility !== 'hidden')
    .map(el => ({el, r: el.getBoundingClientRect()}));
  const small = (t) => t.r.width < 24 || t.r.height < 24;
  const centre = (t) => [t.r.x + t.r.width / 2, t.r.y + t.r.height / 2];
  const toRect = ([x, y], r) => Math.hypot(Math.max(r.x - x, 0, x - r.right), Math.max(r.y - y, 0, y - r.bottom));
  return all.filter(small).filter(t => all.some(o => o !== t && (small(o)
      ? Math.hypot(centre(t)[0] - centre(o)[0], centre(t)[1] - centre(o)[1]) < 24
      : toRect(centre(t), o.r) < 12)))
    .map(t => ({what: t.el.id || t.el.className || t.el.tagName, w: t.r.width, h: t.r.height}));
}"""


@pytest.fixture(scope="module")
def axe_source() -> str:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (apt-get install -y nodejs npm): axe-core checks the page")
    if not AXE.exists():
        pytest.skip("axe-core is not installed for the browser test: run `npm ci --prefix tests/browser`")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("browser-library")
    videos = root / "videos"
    videogen.write_video(videos / "beach walk.mp4", seconds=16, fps=FPS, size=SIZE, gop=FPS, color=(60, 140, 230))
    videogen.write_video(
        videos / "garden" / "square.mp4", seconds=12, fps=FPS, size=SIZE, gop=FPS, pattern="moving_square"
    )
    (videos / "notes.mp4").write_bytes(b"this is not a video")
    with Library.open(root / "lib") as lib:
        report = index_folder(lib, videos, IndexOptions(model=str(tiny_checkpoint), workers=1))
    assert [Path(p).name for p, _ in report.failed] == ["notes.mp4"]
    return root / "lib"


@pytest.fixture(scope="module")
def server(library: Path):
    with ThreadedServer(create_app(ServeConfig(library=library))) as url:
        yield url


def _page(browser, viewport: str):
    page = browser.new_page(viewport=VIEWPORTS[viewport])
    page.set_default_timeout(120_000)  # a shared, busy machine
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("HTMLMediaElement.prototype.play = function () { return Promise.resolve(); };")
    return page, errors


def _axe(page, axe_source: str, where: str) -> None:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    found = page.evaluate(AXE_RUN)
    for v in found:
        print(f"axe ({where}): {v['impact']} {v['id']}: {v['help']}: {v['nodes']}")
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{where}: {bad}"


def _borders_and_targets(page, viewport: str, where: str) -> None:
    low = [c for c in page.evaluate(BORDERS) if c["ratio"] < 3.0]
    assert not low, f"{where}: control boundaries under 3:1 against their background: {low}"
    if viewport == "phone":
        small = page.evaluate(TARGETS)
        assert not small, f"{where}: tap targets under 24 px: {small}"


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_results_player_and_library_pass_axe_and_keyboard(server: str, browser, axe_source: str, viewport: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page, errors = _page(browser, viewport)
    page.goto(server + "/?q=waves%20on%20a%20beach")
    page.wait_for_selector(".card")
    # thumbnails are images with text; each card has a play link with a name
    alts = page.eval_on_selector_all(".card .thumb img", "els => els.map(e => e.alt)")
    assert len(alts) == 2 and all(a.strip() for a in alts), alts
    page.wait_for_function(
        "() => [...document.querySelectorAll('.card .thumb img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    _axe(page, axe_source, f"results, {viewport}")
    _borders_and_targets(page, viewport, f"results, {viewport}")

    # Tab from the search box reaches every card's play link, in order
    page.focus("#q")
    reached: list[str] = []
    for _ in range(12):
        page.keyboard.press("Tab")
        label = page.evaluate(
            "document.activeElement.matches('.card a.name') ? document.activeElement.getAttribute('aria-label') : null"
        )
        if label:
            reached.append(label)
    names = page.locator(".card a.name").all_inner_texts()
    assert [r.split(" from ")[0] for r in reached] == [f"Play {n}" for n in names], reached
    page.focus(".card:nth-child(2) a.name")
    assert page.evaluate("document.querySelector('.card.selected').dataset.index") == "1"  # focus selects
    page.keyboard.press("Enter")
    page.wait_for_selector("#overlay:not([hidden])")
    assert page.evaluate("document.getElementById('overlay').contains(document.activeElement)")
    _axe(page, axe_source, f"player, {viewport}")
    _borders_and_targets(page, viewport, f"player, {viewport}")
    for key in ["Tab"] * 12 + ["Shift+Tab"] * 12:  # focus never leaves the dialog
        page.keyboard.press(key)
        assert page.evaluate("document.getElementById('overlay').contains(document.activeElement)"), key
    page.screenshot(path=str(ARTIFACTS / f"serve-player-a11y-{viewport}.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#overlay", state="hidden")
    assert page.evaluate("document.activeElement.matches('.card:nth-child(2) a.name')")  # focus comes back

    page.click("#library-link")
    page.wait_for_selector("#lib-videos tbody tr")
    _axe(page, axe_source, f"library, {viewport}")
    _borders_and_targets(page, viewport, f"library, {viewport}")
    page.screenshot(path=str(ARTIFACTS / f"serve-library-{viewport}.png"), full_page=True)
    assert not errors, errors
    page.close()


def test_library_view_lists_failures_and_follows_an_index_run(server: str, browser, library: Path) -> None:
    page, errors = _page(browser, "desktop")
    page.goto(server + "/#library")  # a link straight to the view
    page.wait_for_selector("#lib-videos tbody tr")
    assert page.get_attribute("#library-link", "aria-current") == "page"
    rows = page.eval_on_selector_all(
        "#lib-videos tbody tr", "rs => rs.map(r => [r.dataset.status, r.cells[0].textContent])"
    )
    assert sorted(rows) == [["failed", "notes.mp4"], ["indexed", "beach walk.mp4"], ["indexed", "garden/square.mp4"]]
    reason = page.inner_text("#lib-videos tr[data-status=failed] .reason")
    assert reason.startswith("notes.mp4: ") and str(library.parent) not in page.content()  # why, without server folders
    assert page.inner_text("[data-count='Videos indexed']") == "2" and page.inner_text("[data-count='Failed']") == "1"
    spaces = page.locator("#lib-spaces tbody tr")
    assert spaces.count() == 1 and "tiny-viclip.pth" in spaces.inner_text() and "fp32" in spaces.inner_text()
    assert "No index run" in page.inner_text("#lib-progress")

    with Library.open(library, create=False) as lib:
        with lib.writer_lock():  # what `vidsearch index` holds and writes while it runs
            write_progress(lib.root, IndexProgress(total=7, done=3, last="day 3.mp4"))
            page.wait_for_function(
                "() => document.getElementById('lib-progress').textContent.includes('Indexing 4 of 7')"
            )
            assert "day 3.mp4" in page.inner_text("#lib-progress")
            assert page.eval_on_selector("#lib-progress progress", "p => [p.value, p.max]") == [3, 7]
            page.screenshot(path=str(ARTIFACTS / "serve-library-indexing.png"))
            (lib.root / PROGRESS_FILE).unlink()
        page.wait_for_function("() => document.getElementById('lib-progress').textContent.includes('No index run')")
        lib.remove_paths([library.parent / "videos" / "garden"])  # the counts and the list follow the library
    page.wait_for_function("() => document.querySelector(\"[data-count='Videos indexed']\").textContent === '1'")
    page.wait_for_function("() => document.querySelectorAll('#lib-videos tbody tr').length === 2")
    page.click("#close-library")
    assert page.is_hidden("#library") and "#library" not in page.url
    assert page.get_attribute("#search-link", "aria-current") == "page"
    page.click("#library-link")  # and between the views by their links
    page.wait_for_selector("#lib-videos tbody tr")
    current = page.eval_on_selector_all(".views a[aria-current=page]", "links => links.map(a => a.id)")
    assert current == ["library-link"], current
    page.click("#streams-link")
    page.wait_for_selector("#streams-view:not([hidden])")
    assert page.is_hidden("#library") and page.get_attribute("#library-link", "aria-current") is None
    page.go_back()
    page.wait_for_selector("#lib-videos tbody tr")
    assert page.is_hidden("#streams-view") and page.get_attribute("#library-link", "aria-current") == "page"
    assert not errors, errors
    page.close()


def _png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(videogen.make_frame(5, SIZE, color=color)).save(out, format="PNG")
    return out.getvalue()


def _api_order(server: str, name: str, data: bytes, mime: str) -> list[str]:
    r = httpx.post(f"{server}/api/v1/search", files={"file": (name, data, mime)}, data={"k": "24"}, timeout=120)
    assert r.status_code == 200, r.text
    return [x["video"]["name"] for x in r.json()["results"]]


DROP = """([b64, name, type, event]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type}));
  if (event === 'paste') { document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true})); return; }
  const target = document.getElementById('results');
  target.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
  window.__dropShown = !document.getElementById('drop').hidden;
  target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
}"""


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_query_by_example_drop_paste_and_pick(server: str, browser, tmp_path: Path, viewport: str) -> None:
    page, errors = _page(browser, viewport)
    uploads: list[str] = []
    page.on(
        "request",
        lambda r: uploads.append(r.headers.get("content-type", "")) if r.url.endswith("/api/v1/search") else None,
    )
    page.goto(server + "/")
    page.wait_for_function("() => document.getElementById('status').textContent.length > 0")

    still = _png((60, 140, 230))
    page.evaluate(DROP, [base64.b64encode(still).decode(), "beach still.png", "image/png", "drop"])
    page.wait_for_selector(".card")
    assert page.evaluate("window.__dropShown") is True and page.is_hidden("#drop")  # shown while dragging only
    assert page.locator(".card .name").all_inner_texts() == _api_order(server, "beach still.png", still, "image/png")
    assert "like beach still.png" in page.inner_text("#status")
    assert uploads and uploads[-1].startswith("multipart/form-data")
    page.screenshot(path=str(ARTIFACTS / f"serve-example-{viewport}.png"))

    pasted = _png((80, 200, 90))
    page.evaluate(DROP, [base64.b64encode(pasted).decode(), "image.png", "image/png", "paste"])
    page.wait_for_function("() => document.getElementById('status').textContent.includes('like image.png')")
    assert page.locator(".card .name").all_inner_texts() == _api_order(server, "image.png", pasted, "image/png")

    clip = tmp_path / "query clip.mp4"
    videogen.write_video(clip, seconds=3, fps=FPS, size=SIZE, pattern="moving_square")
    # "By example" is a real button: the keyboard opens the file picker (the hidden input's click)
    page.evaluate(
        "window.__picks = 0; document.getElementById('example-file').addEventListener('click', () => window.__picks++)"
    )
    page.focus("#pick-example")
    page.keyboard.press(" ")
    page.wait_for_function("() => window.__picks === 1")
    page.set_input_files("#example-file", str(clip))  # what the user picks there
    page.wait_for_function("() => document.getElementById('status').textContent.includes('like query clip.mp4')")
    assert page.locator(".card .name").all_inner_texts() == _api_order(
        server, "query clip.mp4", clip.read_bytes(), "video/mp4"
    )

    page.evaluate(DROP, [base64.b64encode(b"hello").decode(), "notes.txt", "text/plain", "drop"])
    assert "not a video or an image" in page.inner_text("#status")
    assert not errors, errors
    page.close()
