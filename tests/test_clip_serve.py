"""Keep the moment in the page's API: ``GET /api/v1/moments/{id}/clip.mp4`` and its clip cache."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from recorded import RECORDED_URI, SILENT_URI, recorded_streams  # noqa: E402
from test_clip import BITS, FPS, GOP, SIZE, _decoded  # noqa: E402
from test_serve_api import _error  # noqa: E402
from test_serve_api import _index as index_library  # noqa: E402

from vidsearch.serve import clips as clip_routes  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.frames import FrameCache  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

WEIRD = 'beach "day" ;name.mp4'


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("clip-lib")
    videos = root / "videos"
    videogen.write_video(videos / WEIRD, seconds=6, fps=FPS, size=SIZE, gop=GOP, audio=True, bits=BITS)
    index_library(videos, root / "lib", tiny_checkpoint)
    return root / "lib"


@pytest.fixture(scope="module")
def client(library: Path):
    with TestClient(create_app(ServeConfig(library=library)), base_url="http://127.0.0.1:8700") as c:
        yield c


@pytest.fixture
def cuts(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The start of every clip the server cuts (the real cutter, counted)."""
    seen: list[float] = []
    lock = threading.Lock()
    real = clip_routes.cut_moment

    def counted(library, record, start, end, out):
        with lock:
            seen.append(start)
        return real(library, record, start, end, out)

    monkeypatch.setattr(clip_routes, "cut_moment", counted)
    return seen


def _video_id(library: Path) -> int:
    from vidsearch.usecases.videos import videos_page

    with Library.open(library, create=False, read_only=True) as lib:
        return videos_page(lib)[0].id


def test_api_clip_is_an_attachment_cut_once(client: TestClient, library: Path, tmp_path: Path, cuts) -> None:
    vid = _video_id(library)
    r = client.get(f"/api/v1/moments/{vid}-2520-4000/clip.mp4")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["content-disposition"] == 'attachment; filename="beach_day_name_2.52-4s.mp4"'
    assert int(r.headers["content-length"]) == len(r.content)
    (tmp_path / "got.mp4").write_bytes(r.content)
    numbers, times, audio = _decoded(tmp_path / "got.mp4")
    assert abs(numbers[0] - 63) <= 1 and times[0] == pytest.approx(0.0) and audio is not None
    again = client.get(f"/api/v1/moments/{vid}-2520-4000/clip.mp4")
    assert again.content == r.content and cuts == [2.52]  # the second answer came from the cache
    assert len(list((library / "cache" / "clips").glob("??/*.mp4"))) == 1


def test_api_concurrent_requests_cut_once(client: TestClient, library: Path, cuts) -> None:
    vid = _video_id(library)
    url = f"/api/v1/moments/{vid}-0-6000/clip.mp4?start=1.2&end=3.4"
    with ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: client.get(url), range(4)))
    assert [b.status_code for b in bodies] == [200] * 4
    assert len({b.content for b in bodies}) == 1 and cuts == [1.2]
    assert 'filename="beach_day_name_1.2-3.4s.mp4"' in bodies[0].headers["content-disposition"]


def test_clip_cache_evicts_past_its_cap_without_breaking_a_reader(tmp_path: Path) -> None:
    cache = FrameCache(tmp_path / "clips", max_bytes=1500, suffix=".mp4")
    made: list[str] = []

    def maker(name: str):
        def make(path: Path) -> None:
            made.append(name)
            path.write_bytes(name.encode() * 1000)

        return make

    with cache.open(("a",), maker("a")) as first:
        assert first.read() == b"a" * 1000
    with cache.open(("a",), maker("a")) as hit:  # a hit: nothing made
        assert hit.read() == b"a" * 1000 and made == ["a"]
    with cache.open(("b",), maker("b")) as second:  # over the cap: "a" (the older) goes
        assert second.read() == b"b" * 1000
    assert cache.size() <= 1500 and not cache.path_for("a").exists() and cache.path_for("b").exists()
    small = FrameCache(tmp_path / "tiny", max_bytes=10, suffix=".mp4")
    with small.open(("c",), maker("c")) as evicted:  # larger than the whole cap: evicted, still read
        assert evicted.read() == b"c" * 1000 and small.size() <= 10

    def failing(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        cache.open(("d",), failing)
    assert not [p for p in (tmp_path / "clips").rglob("*") if p.is_file() and p.suffix != ".mp4"]


@pytest.mark.parametrize(
    "path, status, says",
    [
        ("/api/v1/moments/999-0-1000/clip.mp4", 404, "no video 999"),
        ("/api/v1/moments/..%2F..%2Fetc%2Fpasswd/clip.mp4", 404, ""),
        ("/api/v1/moments/1-2000-1000/clip.mp4", 404, "no moment"),
        ("/api/v1/moments/VID-0-1000/clip.mp4?start=-1", 400, "start/end"),
        ("/api/v1/moments/VID-0-1000/clip.mp4?start=3&end=2", 400, "start/end"),
        ("/api/v1/moments/VID-0-1000/clip.mp4?start=50&end=60", 400, "past the end"),
        ("/api/v1/moments/VID-0-1000/clip.mp4?end=9999", 400, "at most"),
        ("/api/v1/moments/VID-0-1000/clip.mp4?end=nan", 400, ""),
    ],
)
def test_api_clip_errors(client: TestClient, library: Path, path: str, status: int, says: str) -> None:
    message = _error(client.get(path.replace("VID", str(_video_id(library)))), status)
    assert says in message and str(library) not in message


def test_api_stream_moment_comes_from_its_recording(tmp_path: Path) -> None:
    """A stream's moment id carries UTC milliseconds; recorded it is cut, not recorded it is a 404."""
    streams = recorded_streams(tmp_path)
    ms = int(round((streams.t0 + 1.25) * 1000))
    with TestClient(create_app(ServeConfig(library=streams.library)), base_url="http://127.0.0.1:8700") as c:
        r = c.get(f"/api/v1/moments/{streams.ids[RECORDED_URI]}-{ms}-{ms + 1500}/clip.mp4")
        assert r.status_code == 200, r.text
        assert r.headers["content-disposition"].startswith('attachment; filename="cam_door_')
        (tmp_path / "got.mp4").write_bytes(r.content)
        numbers, times, _ = _decoded(tmp_path / "got.mp4")
        assert abs(numbers[0] - 12) <= 2 and times[0] == pytest.approx(0.0) and abs(len(numbers) - 15) <= 2
        message = _error(c.get(f"/api/v1/moments/{streams.ids[SILENT_URI]}-{ms}-{ms + 1500}/clip.mp4"), 404)
        assert "not recorded" in message
