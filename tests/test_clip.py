"""Keep the moment: `cut_clip`, `vidsearch clip` and ``/api/v1/moments/{id}/clip.mp4``.

The sources are generated videos whose frames carry their frame number (tests/videogen.py), with
a keyframe every 2 s and an AAC track, so a clip's first frame can be read back and compared with
the frame at the span start.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import pytest
import videogen
from test_cli_hardening import one_line_error, run_main

from vidsearch.errors import InputError, MediaError
from vidsearch.media.clip import cut_clip, keyframe_span

FPS = 25
GOP = 50  # a keyframe every 2 s
SIZE = (128, 96)
BITS = 12


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clip-src")
    return videogen.write_video(
        folder / "counter.mp4", seconds=8, fps=FPS, size=SIZE, gop=GOP, audio=True, bits=BITS, pattern="moving_square"
    )


def _video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as f:
        return [bytes(p) for p in f.demux(video=0) if p.size]


def _decoded(path: Path) -> tuple[list[int], list[float], float | None]:
    """Frame numbers, frame times and the audio track's duration (None: no audio) of a clip."""
    with av.open(str(path)) as f:
        audio = f.streams.audio[0] if f.streams.audio else None
        frames = list(f.decode(video=0))
        numbers = [videogen.frame_number(fr.to_ndarray(format="rgb24"), BITS) for fr in frames]
        times = [float(fr.time) for fr in frames]
        seconds = float(audio.duration * audio.time_base) if audio is not None and audio.duration else None
    return numbers, times, seconds


def test_a_span_on_a_keyframe_is_stream_copied(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 2.0, 4.0, tmp_path / "copy.mp4")
    assert clip.copied and clip.start == pytest.approx(2.0) and clip.audio
    packets = _video_packets(clip.path)
    # the very bytes of the source's frames 50..99: nothing was decoded or encoded
    assert packets == _video_packets(source)[2 * FPS : 4 * FPS]
    numbers, times, audio = _decoded(clip.path)
    assert numbers[0] == 2 * FPS and times[0] == pytest.approx(0.0)
    assert abs(len(numbers) - 2 * FPS) <= 2
    assert audio is not None and abs(audio - 2.0) < 0.1


@pytest.mark.parametrize("start", [2.52, 3.3, 5.0])
def test_a_span_mid_gop_is_re_encoded_from_its_first_frame(source: Path, tmp_path: Path, start: float) -> None:
    end = start + 1.6
    clip = cut_clip(source, start, end, tmp_path / "cut.mp4")
    assert not clip.copied and clip.codec == "h264" and clip.audio
    numbers, times, audio = _decoded(clip.path)
    # the frame at the span start, not the previous keyframe (a jump back) nor a smear
    assert abs(numbers[0] - round(start * FPS)) <= 1, numbers[:5]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # every frame, in order
    assert times[0] == pytest.approx(0.0)
    assert abs(len(numbers) - round((end - start) * FPS)) <= 2
    assert audio is not None and abs(audio - (end - start)) < 0.1
    with av.open(str(clip.path)) as f:
        assert f.streams.video[0].codec_context.name == "h264"


def test_a_clip_is_fast_start_mp4(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 1.0, 2.0, tmp_path / "fast.mp4")
    head = clip.path.read_bytes()[:4096]
    assert head[4:8] == b"ftyp" and 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_a_span_past_the_end_is_clamped(source: Path, tmp_path: Path) -> None:
    clip = cut_clip(source, 7.0, 30.0, tmp_path / "tail.mp4")
    assert clip.end == pytest.approx(8.0)
    numbers, _, _ = _decoded(clip.path)
    assert abs(numbers[0] - 7 * FPS) <= 1 and numbers[-1] == 8 * FPS - 1


@pytest.mark.parametrize(
    "start, end, error, says",
    [
        (3.0, 3.0, InputError, "empty or reversed"),
        (4.0, 2.0, InputError, "empty or reversed"),
        (float("nan"), 2.0, InputError, "empty or reversed"),
        (9.0, 12.0, InputError, "past the end"),
    ],
)
def test_bad_spans_are_typed_errors(source: Path, tmp_path: Path, start, end, error, says) -> None:
    with pytest.raises(error, match=says) as info:
        cut_clip(source, start, end, tmp_path / "bad.mp4")
    assert "--" not in str(info.value)  # the library never names a flag
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


def test_unreadable_files_are_media_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(MediaError, match="junk.mp4"):
        cut_clip(junk, 0.0, 1.0, tmp_path / "out.mp4")
    with pytest.raises(MediaError, match="not found"):
        cut_clip(tmp_path / "missing.mp4", 0.0, 1.0, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_keyframe_span_keeps_the_references_of_b_frames() -> None:
    # decode order of a GOP with B-frames: I0 P3 B1 B2 P6 B4 B5 | I7
    order = [(0, True), (3, False), (1, False), (2, False), (6, False), (4, False), (5, False), (7, True)]
    packets = [(float(t), f"f{t}", key) for t, key in order]
    # from the keyframe before 1; B5 is shown before the end and needs P6, which is kept
    assert [p for _, p in keyframe_span(packets, 1.0, 5.5)] == ["f0", "f3", "f1", "f2", "f6", "f4", "f5"]
    # nothing shown at or after 4 is needed by a frame before it: P6 and its B-frames go
    assert [p for _, p in keyframe_span(packets, 0.0, 4.0)] == ["f0", "f3", "f1", "f2"]


# ------------------------------------------------------------------------------------ CLI


def test_cli_writes_a_clip_and_never_overwrites(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "moment.mp4"
    code, stdout, err = run_main("clip", str(source), "--start", "0:00:02.5", "--end", "3.5", "-o", str(out), "--json")
    assert code == 0, err
    assert '"copied": false' in stdout and out.is_file()
    before = out.read_bytes()
    code, _, err = run_main("clip", str(source), "--start", "1", "--end", "2", "-o", str(out))
    one_line_error(code, err, "--force")
    assert out.read_bytes() == before
    code, _, err = run_main("clip", str(source), "--start", "2", "--end", "4", "-o", str(out), "--force")
    assert code == 0, err
    assert _video_packets(out) == _video_packets(source)[2 * FPS : 4 * FPS]


@pytest.mark.parametrize(
    "args, says",
    [
        (["--start", "abc", "--end", "2"], "--start 'abc'"),
        (["--start", "1:75", "--end", "2"], "--start"),
        (["--start", "3", "--end", "2"], "--end 2 is not after --start 3"),
        (["--start", "20", "--end", "30"], "--start is past the end of counter.mp4"),
    ],
)
def test_cli_bad_times_are_one_line(source: Path, tmp_path: Path, args: list[str], says: str) -> None:
    code, _, err = run_main("clip", str(source), *args, "-o", str(tmp_path / "x.mp4"))
    one_line_error(code, err, says)
    assert not (tmp_path / "x.mp4").exists()


def test_cli_bad_inputs_are_one_line(source: Path, tmp_path: Path) -> None:
    code, _, err = run_main("clip", str(tmp_path / "nope.mp4"), "-s", "1", "-e", "2", "-o", str(tmp_path / "x.mp4"))
    one_line_error(code, err, "nope.mp4: file not found")
    code, _, err = run_main("clip", str(source), "-s", "1", "-e", "2", "-o", str(tmp_path / "x.avi"))
    one_line_error(code, err, "name it .mp4")
    code, _, err = run_main("clip", "42", "-s", "1", "-e", "2", "-o", str(tmp_path / "y.mp4"), "-l", str(tmp_path))
    one_line_error(code, err, "library")


# ------------------------------------------------------------------------------------ API

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from vidsearch.serve import clips as clip_routes  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

WEIRD = 'beach "day" ;name.mp4'


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    from vidsearch.indexer.pipeline import IndexOptions, index_folder

    root = tmp_path_factory.mktemp("clip-lib")
    videos = root / "videos"
    videogen.write_video(videos / WEIRD, seconds=6, fps=FPS, size=SIZE, gop=GOP, audio=True, bits=BITS)
    with Library.open(root / "lib") as lib:
        report = index_folder(lib, videos, IndexOptions(model=str(tiny_checkpoint), workers=1))
    assert not report.failed, report.failed
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
    from vidsearch.serve.frames import FrameCache

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
    r = client.get(path.replace("VID", str(_video_id(library))))
    assert r.status_code == status, r.text
    message = r.json()["error"]
    assert says in message and "\n" not in message and str(library) not in message


# ------------------------------------------------------------------------------- streams


def test_a_stream_moment_is_cut_from_its_recording(tmp_path: Path) -> None:
    """A stream's moment (UTC seconds) comes from the watch's recording, from the frame at its start."""
    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader
    from vidsearch.media.recorder import RECORDINGS_DIR, recordings_folder, segment_start, segments_in
    from vidsearch.store.catalog import VideoRecord
    from vidsearch.usecases.clips import clip_name, cut_moment
    from vidsearch.usecases.videos import NotFound

    uri = "rtsp://cam.local/live"
    source = videogen.write_video(tmp_path / "cam.mp4", seconds=5, fps=10, size=SIZE, gop=10, bits=BITS)
    with Library.open(tmp_path / "lib") as lib:
        stream = VideoRecord(id=7, path=uri, size=-1, mtime_ns=0, fingerprint="", status="indexed")
        with pytest.raises(NotFound, match="not recorded"):
            cut_moment(lib, stream, 1.0, 2.0, tmp_path / "none.mp4")
        folder = recordings_folder(lib.root / RECORDINGS_DIR, uri)
        LiveReader(
            str(source), LiveOptions(short_side=32, record_to=folder, segment_seconds=2.0), DropOldest(100)
        ).run()
        t0 = segment_start(segments_in(folder)[0])  # the wall time of the file's first frame
        clip = cut_moment(lib, stream, t0 + 1.35, t0 + 3.05, tmp_path / "moment.mp4")
        numbers, times, _ = _decoded(clip.path)
        # the recording's names are arrival times: a busy machine may shift them by a frame
        assert abs(numbers[0] - 13) <= 2 and times[0] == pytest.approx(0.0)
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and abs(len(numbers) - 17) <= 2
        assert clip.start == pytest.approx(t0 + 1.35, abs=0.15)
        assert clip_name(stream, clip.start, clip.end).startswith("cam.local_live_")
        with pytest.raises(NotFound, match="no longer holds"):
            cut_moment(lib, stream, t0 - 100, t0 - 90, tmp_path / "gone.mp4")
