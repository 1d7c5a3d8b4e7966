"""The library view's API: counts, spaces, videos with their status and failure reason, live progress.

A real index run over generated videos (one of them broken) with the tiny random-weight model;
its progress file is read while it runs; the event stream is read from a real uvicorn server.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install -e .[serve,dev]")

import httpx  # noqa: E402
import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from serving import ThreadedServer, free_port, serve_cli  # noqa: E402

from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.indexer.progress_file import FileProgress  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402
from vidsearch.store.progress import PROGRESS_FILE, IndexProgress, read_progress, write_progress  # noqa: E402

BASE = "http://127.0.0.1:8700"


class _Recorder:
    """The CLI's place in the chain: records what it is told, and what another process would read then."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, object]] = []
        self.seen: list[IndexProgress | None] = []

    def start(self, total: int) -> None:
        self.calls.append(("start", total))
        self.seen.append(read_progress(self.root))

    def advance(self, path: str, ok: bool) -> None:
        self.calls.append(("advance", ok))
        self.seen.append(read_progress(self.root))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> tuple[Path, _Recorder]:
    root = tmp_path_factory.mktemp("library-view")
    videos = root / "videos"
    videogen.write_video(videos / "a.mp4", seconds=4, fps=10, size=(96, 72), color=(220, 40, 40))
    videogen.write_video(videos / "sub" / "b.mp4", seconds=4, fps=10, size=(96, 72), pattern="moving_square")
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    lib_path = root / "lib"
    with Library.open(lib_path) as lib:
        recorder = _Recorder(lib.root)
        report = index_folder(lib, videos, IndexOptions(model=str(tiny_checkpoint), workers=1), progress=recorder)
    assert len(report.failed) == 1 and report.added == 2
    return lib_path, recorder


def test_the_index_run_writes_its_progress_for_other_processes(indexed: tuple[Path, _Recorder]) -> None:
    lib_path, recorder = indexed
    # the run's own sink (the CLI's bar) still hears everything
    assert recorder.calls[0] == ("start", 3) and sorted(recorder.calls[1:]) == [
        ("advance", False),
        ("advance", True),
        ("advance", True),
    ]
    first, *after = recorder.seen
    assert first is not None and first.total == 3 and first.done == 0
    assert all(p is not None for p in after)
    assert [p.done for p in after] == [1, 2, 3] and after[-1].failed == 1  # type: ignore[union-attr]
    assert {p.last for p in after} == {"a.mp4", "b.mp4", "broken.mp4"}  # names only, never folders
    assert not (lib_path / PROGRESS_FILE).exists()  # gone when the run is over


def test_a_progress_file_without_a_running_index_is_ignored(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        write_progress(lib.root, IndexProgress(total=5, done=2))  # what a killed run leaves
        assert read_progress(lib.root) is None
        with lib.writer_lock():
            got = read_progress(lib.root)
            assert got is not None and (got.total, got.done) == (5, 2)
            (lib.root / PROGRESS_FILE).write_text("{not json")
            assert read_progress(lib.root) is None  # a torn or foreign file is no progress


def test_progress_that_cannot_be_written_never_fails_the_run(tmp_path: Path) -> None:
    gone = tmp_path / "no-such-folder" / "lib"
    (tmp_path / "no-such-folder").write_text("a file where the folder should be")
    calls: list[object] = []

    class Inner:
        def start(self, total: int) -> None:
            calls.append(total)

        def advance(self, path: str, ok: bool) -> None:
            calls.append(path)

    with FileProgress(gone, Inner()) as shown:
        shown.start(1)
        shown.advance("/x/y.mp4", True)
    assert calls == [1, "/x/y.mp4"]


def test_library_summary_spaces_and_failures(indexed: tuple[Path, _Recorder]) -> None:
    lib_path, _ = indexed
    with TestClient(create_app(ServeConfig(library=lib_path)), base_url=BASE) as c:
        r = c.get("/api/v1/library")
        assert r.status_code == 200
        info = r.json()
        assert (info["videos"], info["failed"], info["indexing"], info["progress"]) == (2, 1, False, None)
        assert info["segments"] >= 2 and info["transcripts"] == 0
        (space,) = info["spaces"]
        assert space["key"] == info["searched_space"]
        assert space["model"] == "tiny-viclip.pth" and space["precision"] == "fp32" and space["videos"] == 2
        assert str(lib_path.parent) not in r.text  # no server folder leaves

        rows = c.get("/api/v1/library/videos").json()["videos"]
        assert sorted((v["name"], v["status"]) for v in rows) == [
            ("a.mp4", "indexed"),
            ("broken.mp4", "failed"),
            ("sub/b.mp4", "indexed"),
        ]
        (failed,) = [v for v in rows if v["status"] == "failed"]
        assert failed["reason"].startswith("broken.mp4: ") and "decod" in failed["reason"]
        assert c.get("/api/v1/library/videos", params={"status": "failed"}).json()["videos"] == [failed]

        # paging by id: every video exactly once
        seen, cursor = [], None
        while True:
            page = c.get("/api/v1/library/videos", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
            body = page.json()
            seen += [v["id"] for v in body["videos"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(v["id"] for v in rows) and len(set(seen)) == 3

        for bad in ({"cursor": "../1"}, {"status": "pending"}, {"limit": 0}):
            r = c.get("/api/v1/library/videos", params=bad)
            assert r.status_code == 400 and "\n" not in r.json()["error"], (bad, r.text)


def test_library_of_an_empty_folder(tmp_path: Path) -> None:
    with Library.open(tmp_path / "empty"):
        pass
    with TestClient(create_app(ServeConfig(library=tmp_path / "empty")), base_url=BASE) as c:
        info = c.get("/api/v1/library").json()
        assert info["spaces"] == [] and info["videos"] == 0 and info["searched_space"] is None
        assert c.get("/api/v1/library/videos").json() == {"videos": [], "next_cursor": None}


def _pulses(response: httpx.Response):
    """The ``pulse`` events of a stream, parsed, as they arrive."""
    event = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "pulse":
            yield json.loads(line[6:])
            event = None


def test_events_push_counts_and_progress_as_they_change(indexed: tuple[Path, _Recorder]) -> None:
    lib_path, _ = indexed
    server = ThreadedServer(create_app(ServeConfig(library=lib_path)))
    with server as url, Library.open(lib_path, create=False) as lib:
        with httpx.stream("GET", f"{url}/api/v1/library/events", timeout=60) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            pulses = _pulses(r)
            first = next(pulses)
            assert (first["videos"], first["failed"], first["indexing"], first["progress"]) == (2, 1, False, None)
            with lib.writer_lock():  # an index run starts, and reports where it is
                write_progress(lib.root, IndexProgress(total=7, done=3, last="c.mp4"))
                busy = next(pulses)
                assert busy["indexing"] is True and busy["progress"]["total"] == 7
                assert busy["progress"]["done"] == 3 and busy["progress"]["last"] == "c.mp4"
                assert "pid" not in busy["progress"]
                write_progress(lib.root, IndexProgress(total=7, done=4, last="d.mp4"))
                assert next(pulses)["progress"]["done"] == 4
            (lib.root / PROGRESS_FILE).unlink()
            done = next(pulses)
            assert done["indexing"] is False and done["progress"] is None
        # the client left: its stream ends on the server (no request task is left running)
        deadline = time.monotonic() + 30
        while server.server.server_state.tasks:
            assert time.monotonic() < deadline, "the stream went on after its client left"
            time.sleep(0.1)


def test_server_stop_ends_open_streams(indexed: tuple[Path, _Recorder]) -> None:
    lib_path, _ = indexed
    app = create_app(ServeConfig(library=lib_path))
    server = ThreadedServer(app)
    got: list[dict] = []
    with server as url:
        opened = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{url}/api/v1/library/events", timeout=120) as r:
                for pulse in _pulses(r):
                    got.append(pulse)
                    opened.set()

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        assert opened.wait(60), "no first event"
        t0 = time.monotonic()
    assert not server.thread.is_alive(), "shutdown waited on the open stream"
    reader.join(timeout=30)
    assert not reader.is_alive(), "the stream did not end at shutdown"
    assert time.monotonic() - t0 < 30 and got


@pytest.mark.slow
def test_cli_serve_stops_on_sigterm_with_a_stream_open(indexed: tuple[Path, _Recorder]) -> None:
    lib_path, _ = indexed
    port = free_port()
    proc = serve_cli(lib_path, port)
    try:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/v1/library/events", timeout=60) as r:
            assert next(_pulses(r))["videos"] == 2
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)  # the open stream does not hold the server up
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "stopped" in out and "Traceback" not in err
