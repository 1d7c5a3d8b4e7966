"""The streams view: what `watch` leaves for other processes, and `serve`'s API and page over it.

The library is filled with the real writers: alert rows through ``store.alerts``, status files and
frames through ``indexer.stream_status.StatusBoard`` (fed the reader's own state type), and a real
H.264 MP4 clip. Then: status and stale detection, the frame, the alerts filter, the clip with HTTP
Range, refused paths, server-sent events that deliver a new alert, ``serve`` exiting on SIGTERM
with an event stream open, (slow) the page in Chromium on desktop and phone viewports, and (slow)
``watch`` against a real RTSP server writing the status and frame.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("sse_starlette", reason="the serve extra is not installed: pip install -e .[serve,dev]")

import av  # noqa: E402
import httpx  # noqa: E402
import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serving import ThreadedServer, free_port, serve_cli  # noqa: E402

from vidsearch.indexer.stream_status import (  # noqa: E402
    FRAME_FILE,
    STALE_AFTER,
    STATUS_FILE,
    StatusBoard,
    read_statuses,
    stream_state,
)
from vidsearch.media.live import Gap, ReaderState, Window  # noqa: E402
from vidsearch.media.recorder import RECORDINGS_DIR, recordings_folder  # noqa: E402
from vidsearch.media.uri import redact_uri  # noqa: E402
from vidsearch.serve import streams as streams_api  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.alerts import StoredAlert, record_alert_end, record_alert_start  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

BASE = "http://127.0.0.1:8700"
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z: stream times are UTC seconds
ORANGE = (230, 120, 20)
# a query as a user may type it: the page must show it as text
NASTY = 'a <img src=x onerror="document.body.dataset.pwned=1"> at the door'


def _window(end: float, colour: tuple[int, int, int] = ORANGE) -> Window:
    return Window(end - 4.0, end, np.full((8, 72, 128, 3), colour, np.uint8))


def _live_reader(windows: int = 12) -> ReaderState:
    return ReaderState(frames=windows * 20, windows=windows, connected=True)


def _alert(key: str, stream: str, query: str, start: float, uri: str = "rtsp://admin:hunter2@cam/door") -> StoredAlert:
    return StoredAlert(key, stream, uri, query, "text", 0.2, start, 0.25, 0.25, start)


def _fill(lib_dir: Path, clip_seconds: float = 3.0) -> Path:
    """A library with two streams' status (one fresh, one stale) and four alerts."""
    with Library.open(lib_dir) as lib:
        with lib.session() as s:
            record_alert_start(s, _alert("door-1-1", "door", "a parcel", T0 + 10))
            record_alert_start(s, _alert("door-2-2", "door", NASTY, T0 + 60))
            record_alert_start(s, _alert("yard-3-1", "yard", "a fox", T0 + 30, uri="rtsp://cam/yard"))
            record_alert_start(s, _alert("door-4-3", "door", "a cat", T0 + 90))
        clip = recordings_folder(lib_dir / RECORDINGS_DIR, "door") / "clips" / "door-1-1.mp4"
        videogen.write_video(clip, seconds=clip_seconds, fps=10, size=(160, 120), gop=10, color=(40, 200, 90))
        with lib.session() as s:
            record_alert_end(s, "door-1-1", T0 + 20, 0.4, T0 + 14, str(clip.relative_to(lib_dir)))
            # rows naming files outside the library, or one that retention deleted
            record_alert_end(s, "door-2-2", T0 + 70, 0.5, T0 + 64, "../outside.mp4")
            record_alert_end(s, "yard-3-1", T0 + 40, 0.3, T0 + 34, "/etc/hostname")
            record_alert_end(s, "door-4-3", T0 + 95, 0.3, T0 + 92, "recordings/door/clips/gone.mp4")
    (lib_dir.parent / "outside.mp4").write_bytes(b"not for clients")
    board = StatusBoard(lib_dir / RECORDINGS_DIR)
    board.report("door", "rtsp://admin:hunter2@cam/door?token=abc&ch=1", _live_reader(), 2, _window(T0 + 100))
    old = StatusBoard(lib_dir / RECORDINGS_DIR, clock=lambda: time.time() - 3 * STALE_AFTER)
    old.report("yard", "rtsp://cam/yard", _live_reader(3), 0, None)
    return lib_dir


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fill(tmp_path_factory.mktemp("streams") / "lib")


@pytest.fixture(scope="module")
def client(library: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ServeConfig(library=library)), base_url=BASE) as c:
        yield c


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return str(body["error"])


# ------------------------------------------------------------------ the status writer


def test_stream_state_follows_the_reader() -> None:
    assert stream_state(ReaderState(), finished=False) == "connecting"
    assert stream_state(ReaderState(connected=True), finished=False) == "connected"
    gap = ReaderState(connected=True, gaps=[Gap(1.0, None, "lost")])
    assert stream_state(gap, finished=False) == "reconnecting"
    gap.gaps[0].end = 2.0
    assert stream_state(gap, finished=False) == "connected"
    assert stream_state(ReaderState(connected=True), finished=True) == "stopped"
    assert stream_state(ReaderState(error="refused", ended=True), finished=False) == "failed"


def test_redact_uri_removes_passwords_and_tokens() -> None:
    assert redact_uri("rtsp://admin:hunter2@cam:554/live") == "rtsp://admin@cam:554/live"
    assert redact_uri("https://cam/x.m3u8?token=abc&ch=1") == "https://cam/x.m3u8?token=***&ch=1"
    assert redact_uri("rtsp://cam/live") == "rtsp://cam/live"
    assert redact_uri("/dev/video0") == "/dev/video0"


def test_a_stream_without_a_name_is_named_without_its_password() -> None:
    from vidsearch.cli.watch import stream_specs

    (spec,) = stream_specs("rtsp://admin:hunter2@127.0.0.1:8554/door", None, [], 0.25)
    assert spec.name == "rtsp://admin@127.0.0.1:8554/door" and spec.url.endswith("hunter2@127.0.0.1:8554/door")


def test_status_board_writes_atomically_and_throttles(tmp_path: Path) -> None:
    now = [1000.0]
    board = StatusBoard(tmp_path, clock=lambda: now[0])
    reader = _live_reader(5)
    board.report("front door", "rtsp://u:p@cam/1", reader, 0, _window(990.0))
    folder = recordings_folder(tmp_path, "front door")
    status = json.loads((folder / STATUS_FILE).read_text())
    assert status["name"] == "front door" and status["uri"] == "rtsp://u@cam/1" and "p@" not in json.dumps(status)
    assert status["state"] == "connected" and status["windows"] == 5 and status["last_window"] == 990.0
    assert status["frame_at"] == 1000.0 and (folder / FRAME_FILE).read_bytes()[:2] == b"\xff\xd8"
    # a new window 0.5 s later: no new frame (at most one per 2 s), and the same counts: no rewrite
    now[0] += 0.5
    board.report("front door", "rtsp://u:p@cam/1", reader, 0, _window(992.0, (0, 0, 255)))
    assert json.loads((folder / STATUS_FILE).read_text())["updated_at"] == 1000.0
    # a change is written at once; the heartbeat rewrites an unchanged status every second
    reader.gaps.append(Gap(1000.6, None, "lost"))
    now[0] += 0.1
    board.report("front door", "rtsp://u:p@cam/1", reader, 0)
    assert json.loads((folder / STATUS_FILE).read_text())["state"] == "reconnecting"
    now[0] += 1.5
    board.report("front door", "rtsp://u:p@cam/1", reader, 0, _window(994.0, (0, 0, 255)))
    status = json.loads((folder / STATUS_FILE).read_text())
    assert status["updated_at"] == 1002.1 and status["frame_at"] == 1002.1 and status["last_window"] == 994.0
    with av.open(str(folder / FRAME_FILE)) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape[:2] == (72, 128) and frame[..., 2].mean() > 200  # the newest window's frame
    board.report("front door", "rtsp://u:p@cam/1", reader, 0, finished=True)
    assert json.loads((folder / STATUS_FILE).read_text())["state"] == "stopped"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # temp files renamed, none left
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / STATUS_FILE).write_text("{not json")
    assert [s.name for s, _ in read_statuses(tmp_path)] == ["front door"]


def test_status_board_never_raises_on_a_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "recordings"
    blocker.write_text("a file where the folder should be")
    StatusBoard(blocker).report("cam", "rtsp://cam/1", _live_reader(), 0, _window(T0))  # logged, not raised


# ------------------------------------------------------------------ the API


def test_streams_list_status_and_staleness(client: TestClient) -> None:
    r = client.get("/api/v1/streams")
    assert r.status_code == 200
    assert "hunter2" not in r.text and "abc" not in r.text  # credentials never leave the server
    door, yard = r.json()["streams"]
    assert door["name"] == "door" and door["state"] == "connected" and door["windows"] == 12 and door["drops"] == 2
    assert door["uri"] == "rtsp://admin@cam/door?token=***&ch=1"
    assert door["stale"] is False and door["running"] is True and door["last_window"] == T0 + 100
    assert yard["stale"] is True and yard["running"] is False and yard["frame_url"] is None


def test_stream_frame(client: TestClient) -> None:
    door = client.get("/api/v1/streams").json()["streams"][0]
    r = client.get(door["frame_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert r.headers["cache-control"] == "no-store"
    _error(client.get("/api/v1/streams/yard/frame.jpg"), 404)  # a stream without a frame yet
    _error(client.get("/api/v1/streams/nobody/frame.jpg"), 404)
    _error(client.get("/api/v1/streams/..%2F..%2F..%2Fetc/frame.jpg"), 404)


def test_alerts_newest_first_and_filters(client: TestClient) -> None:
    alerts = client.get("/api/v1/alerts").json()["alerts"]
    assert [a["id"] for a in alerts] == ["door-4-3", "door-2-2", "yard-3-1", "door-1-1"]
    first = alerts[-1]
    assert first["query"] == "a parcel" and first["peak"] == 0.4 and first["ongoing"] is False
    assert first["uri"] == "rtsp://admin@cam/door" and first["clip_url"] == "/api/v1/alerts/door-1-1/clip.mp4"
    assert [a["id"] for a in client.get("/api/v1/alerts?stream=yard").json()["alerts"]] == ["yard-3-1"]
    since = client.get("/api/v1/alerts", params={"since": str(T0 + 30), "limit": 2}).json()["alerts"]
    assert [a["id"] for a in since] == ["door-4-3", "door-2-2"]
    iso = client.get("/api/v1/alerts", params={"since": "2026-05-28T20:27:50Z"}).json()["alerts"]
    assert [a["id"] for a in iso] == ["door-4-3"]  # T0 + 90 is 20:28:10 UTC
    assert "is not a time" in _error(client.get("/api/v1/alerts?since=yesterday"), 400)
    assert "is not a time" in _error(client.get("/api/v1/alerts?since=nan"), 400)
    _error(client.get("/api/v1/alerts?limit=0"), 400)


def test_alert_clip_plays_with_range(client: TestClient) -> None:
    url = "/api/v1/alerts/door-1-1/clip.mp4"
    full = client.get(url)
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    size = len(full.content)
    part = client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == full.content[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{size}"
    assert client.get(url, headers={"Range": f"bytes={size + 10}-"}).status_code == 416
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"clip-{os.getpid()}.mp4"
    tmp.write_bytes(full.content)
    try:
        with av.open(str(tmp)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 30  # the 3 s clip, every frame
    finally:
        tmp.unlink()


def test_alert_clip_paths_never_leave_the_library(client: TestClient) -> None:
    assert "gone" in _error(client.get("/api/v1/alerts/door-2-2/clip.mp4"), 404)  # ../outside.mp4
    assert "gone" in _error(client.get("/api/v1/alerts/yard-3-1/clip.mp4"), 404)  # /etc/hostname
    assert "gone" in _error(client.get("/api/v1/alerts/door-4-3/clip.mp4"), 404)  # deleted by retention
    assert "no alert" in _error(client.get("/api/v1/alerts/..%2F..%2Fetc%2Fpasswd/clip.mp4"), 404)
    assert "no alert" in _error(client.get("/api/v1/alerts/nope/clip.mp4"), 404)


def test_page_has_the_streams_view(client: TestClient) -> None:
    page = client.get("/").text
    assert 'id="streams-link"' in page and 'id="streams-view"' in page and "/static/streams.js" in page
    assert client.get("/static/streams.js").status_code == 200
    assert client.get("/static/streams.css").status_code == 200
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/api/v1/streams", "/api/v1/alerts", "/api/v1/streams/events"} <= paths


# ------------------------------------------------------------------ server-sent events


class _Events:
    """Reads a text/event-stream in a thread: (event, data) pairs and comment lines as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[tuple[str, dict]] = []
        self.comments: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        kind, data = "message", ""
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif not line and data:
                    self.events.append((kind, json.loads(data)))
                    kind, data = "message", ""
        except httpx.HTTPError:
            pass  # closed by the test

    def wait_for(self, kind: str, timeout: float = 20.0, **match: object) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for k, data in self.events:
                if k == kind and all(data.get(key) == value for key, value in match.items()):
                    return data
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event {match} in {timeout} s: {self.events}")


def test_events_push_stream_changes_and_new_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_api, "HEARTBEAT_SECONDS", 1)
    lib_dir = _fill(tmp_path / "lib")
    server = ThreadedServer(create_app(ServeConfig(library=lib_dir)))
    with server as url, httpx.Client(timeout=30) as http:
        with http.stream("GET", f"{url}/api/v1/streams/events") as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            events = _Events(response)
            assert events.wait_for("stream", name="door")["state"] == "connected"  # every stream at first
            events.wait_for("ready")
            assert not [e for e in events.events if e[0].startswith("alert")]  # old alerts: fetched, not pushed
            with Library.open(lib_dir) as lib:
                with lib.session() as s:
                    record_alert_start(s, _alert("door-9-5", "door", "a fox", time.time()))
                t = time.monotonic()
                new = events.wait_for("alert", timeout=10, id="door-9-5")
                assert new["query"] == "a fox" and new["ongoing"] is True and time.monotonic() - t < 5
                with lib.session() as s:
                    record_alert_end(s, "door-9-5", time.time(), 0.6, time.time(), None)
                assert events.wait_for("alert_end", timeout=10, id="door-9-5")["peak"] == 0.6
            board = StatusBoard(lib_dir / RECORDINGS_DIR)
            board.report("door", "rtsp://cam/door", ReaderState(connected=True, gaps=[Gap(1, None, "x")]), 2)
            events.wait_for("stream", timeout=10, name="door", state="reconnecting")
            deadline = time.monotonic() + 10
            while not events.comments and time.monotonic() < deadline:
                time.sleep(0.05)
            assert events.comments, "no heartbeat comment"
    # the client left before the server stopped: its event stream ended, or uvicorn would still
    # be waiting for the connection to close
    assert not server.thread.is_alive(), "the event stream outlived its client"


def test_serve_exits_promptly_on_sigterm_with_an_event_stream_open(tmp_path: Path) -> None:
    lib_dir = _fill(tmp_path / "lib")
    port = free_port()
    proc = serve_cli(lib_dir, port)
    try:
        with httpx.Client(timeout=30) as http:
            with http.stream("GET", f"http://127.0.0.1:{port}/api/v1/streams/events") as response:
                events = _Events(response)
                events.wait_for("ready")
                proc.send_signal(signal.SIGTERM)
                t = time.monotonic()
                out, err = proc.communicate(timeout=60)
                took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert took < 10, f"serve took {took:.1f} s to stop with an event stream open"
    assert "Traceback" not in err


# ------------------------------------------------------------------ the page, in Chromium

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("VIDSEARCH_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
ZONE = "America/New_York"  # not the machine's zone: the page must convert UTC to the browser's own


class _Heartbeat:
    """Keeps a stream's status fresh as a running watch does: the real writer, a new window every 0.5 s."""

    def __init__(self, lib_dir: Path) -> None:
        self.board = StatusBoard(lib_dir / RECORDINGS_DIR)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.wait(0.5):
            i += 1
            colour = ORANGE if i % 8 < 4 else (30, 90, 230)
            self.board.report("door", "rtsp://cam/door", _live_reader(12 + i), 2, _window(time.time(), colour))

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
@pytest.mark.parametrize(("label", "viewport"), [("desktop", (1280, 800)), ("phone", (390, 844))])
def test_streams_view_in_the_browser(label: str, viewport: tuple[int, int], tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lib_dir = _fill(tmp_path / "lib")
    app = create_app(ServeConfig(library=lib_dir))
    with _Heartbeat(lib_dir), ThreadedServer(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, timezone_id=ZONE, locale="en-US"
        )
        page = context.new_page()
        page.set_default_timeout(60_000)  # a shared, busy machine
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.get_by_role("link", name="Streams", exact=True).click()  # the view is one link away
        assert page.url.endswith("#streams")
        assert page.get_by_role("link", name="Streams", exact=True).get_attribute("aria-current") == "page"
        door = page.locator('li.stream[data-stream="door"]')
        door.wait_for()
        page.wait_for_function(
            "() => document.querySelector('li.stream[data-stream=door] .stream-state').textContent === 'live'"
        )
        assert "not running" in page.locator('li.stream[data-stream="yard"] .stream-state').inner_text()
        frame = door.locator("img.stream-frame")
        assert frame.get_attribute("alt") == "Latest frame of door"
        page.wait_for_function("() => document.querySelector('li.stream[data-stream=door] img').naturalWidth > 0")
        first_src = frame.get_attribute("src")
        page.wait_for_function(  # the frame refreshes as the watch writes new ones (pushed by events)
            f"() => document.querySelector('li.stream[data-stream=door] img').getAttribute('src') !== {json.dumps(first_src)}"
        )
        # alerts: local time, the query as text (never markup), the peak score
        parcel = door.locator('li.alert[data-alert="door-1-1"]')
        local = datetime.fromtimestamp(T0 + 10, ZoneInfo(ZONE))
        assert f"{local.hour % 12 or 12}:{local.minute:02d}:{local.second:02d}" in parcel.locator("time").inner_text()
        assert parcel.locator("time").get_attribute("datetime") == "2026-05-28T20:26:50.000Z"
        assert "peak 0.400" in parcel.inner_text()
        nasty = door.locator('li.alert[data-alert="door-2-2"] .alert-query')
        assert nasty.inner_text() == NASTY and nasty.locator("img").count() == 0
        assert page.evaluate("document.body.dataset.pwned") is None
        # a new alert arrives live (server-sent events), without a reload
        with Library.open(lib_dir) as lib, lib.session() as s:
            record_alert_start(s, _alert("door-99-7", "door", "a heron", time.time()))
        door.locator('li.alert[data-alert="door-99-7"]').wait_for(timeout=20_000)
        assert "ongoing" in door.locator('li.alert[data-alert="door-99-7"]').inner_text()
        assert door.locator("li.alert").first.get_attribute("data-alert") == "door-99-7"  # newest first
        # the clip plays in the page, started from the keyboard
        play = parcel.get_by_role("button", name="Play the clip of")
        play.focus()
        page.keyboard.press("Enter")
        assert play.get_attribute("aria-expanded") == "true"
        page.wait_for_function(
            "() => { const v = document.querySelector('li.alert[data-alert=\"door-1-1\"] video'); return v && v.readyState >= 2; }"
        )
        assert parcel.locator("video").get_attribute("aria-label").startswith('Clip of "a parcel" on door')
        if label == "phone":
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]  # nothing off screen
            box = play.bounding_box()
            assert box is not None and box["height"] >= 24  # a tap target
        page.screenshot(path=str(ARTIFACTS / f"serve-streams-{label}.png"), full_page=True)
        # back to search: the event stream is closed
        page.get_by_role("link", name="Search", exact=True).click()
        assert page.locator("#streams-view").is_hidden() and page.locator("main").is_visible()
        assert not errors, errors
        context.close()
        browser.close()


# ------------------------------------------------------------------ watch, end to end


@pytest.mark.slow
def test_watch_writes_status_and_frame_from_a_real_rtsp_server(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from test_streams import RED, RtspServer, needs_rtsp, watch_cmd, write_colours

    if needs_rtsp.args[0]:
        pytest.skip(needs_rtsp.kwargs["reason"])
    video = write_colours(tmp_path / "cam.mp4", [(60.0, RED)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        server = RtspServer(s.getsockname()[1])
    server.start(video)
    lib = tmp_path / "lib"
    status_file = recordings_folder(lib / RECORDINGS_DIR, "porch") / STATUS_FILE
    args = ["--name", "porch", "--json", "--duration", "60"]
    proc = subprocess.Popen(watch_cmd(server.url, lib, tiny_checkpoint, *args), stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        status: dict = {}
        while not (status.get("state") == "connected" and status.get("frame_at") and status.get("last_window")):
            assert proc.poll() is None, "watch ended early"
            assert time.monotonic() < deadline, f"no connected status with a frame: {status}"
            time.sleep(0.2)
            if status_file.exists():
                status = json.loads(status_file.read_text())
        assert status["uri"] == server.url and status["windows"] >= 1 and time.time() - status["updated_at"] < 5
        with av.open(str(status_file.parent / FRAME_FILE)) as c:
            frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
        assert frame[..., 0].mean() > 150 and frame[..., 2].mean() < 100  # the camera's red picture
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    assert json.loads(status_file.read_text())["state"] == "stopped"  # the last word of a watch that ended
