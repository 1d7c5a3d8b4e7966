"""`query --source` and `--since`: streams by name or URL prefix, files by path prefix; a stream's
moments by their wall-clock times, a file's by its modification time; stream hits carry their name."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vidsearch.indexer.live import StreamSource
from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.producer import Encoded
from vidsearch.indexer.sink import LibrarySink
from vidsearch.indexer.sources import FileSource
from vidsearch.media import SegmentPlan, VideoInfo
from vidsearch.media.jobs import DecodedVideo
from vidsearch.store.alerts import StoredAlert, record_alert_start
from vidsearch.store.library import Library
from vidsearch.usecases.encoders import LocalEmbedder
from vidsearch.usecases.query import MomentRef, Query, QueryFilters, search
from vidsearch.usecases.streams import name_streams

E = np.eye(4, dtype=np.float32)
NOW = time.time()


def _encoded(source: object, spans: list[tuple[float, float]], xb: np.ndarray) -> Encoded:
    uri = source.uri  # type: ignore[attr-defined]
    info = VideoInfo(uri, 8, 2.0, 4.0, 8, 8)
    segments = [SegmentPlan("window", a, b, ()) for a, b in spans]
    return Encoded(0, source, DecodedVideo(0, uri, info, segments, np.zeros(0), np.zeros((0, 0)), "pyav", 0), xb)  # type: ignore[arg-type]


@pytest.fixture()
def library(tmp_path: Path) -> Library:
    lib = Library.open(tmp_path / "lib")
    space = lib.ensure_space("test-space", 4, {}, {})
    sink = LibrarySink(lib, space, {}, IndexOptions(model="test"))
    files = []
    for name in ("a.mp4", "b.mp4"):
        path = tmp_path / "videos" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(name.encode() * 100)
        files.append(FileSource(str(path), path.stat().st_size, path.stat().st_mtime_ns))
    near = (E[0] * 0.9 + E[1] * 0.1) / np.linalg.norm(E[0] * 0.9 + E[1] * 0.1)
    sink.add([_encoded(files[0], [(0, 4), (4, 8)], E[[0, 2]])])  # the query's moment: a.mp4 0-4 s
    sink.add([_encoded(files[1], [(0, 4)], near[None])])
    door, yard = StreamSource("rtsp://cam/1", "door"), StreamSource("rtsp://cam/2", "yard")
    sink.add([_encoded(door, [(NOW - 3 * 3600, NOW - 3 * 3600 + 4)], E[[0]])])  # an old window, the best
    sink.add([_encoded(door, [(NOW - 60, NOW - 56)], near[None])])
    sink.add([_encoded(yard, [(NOW - 30, NOW - 26)], near[None])])
    porch = StreamSource("rtsp://cam/3", "porch")  # named as its watch started; it never alerted
    sink.add([_encoded(porch, [(NOW - 20, NOW - 16)], near[None])])
    sink.close(True)
    name_streams(lib, [("porch", porch.uri)])
    with lib.session() as s:  # the names streams are shown under: their alerts'
        record_alert_start(s, StoredAlert("door-1", "door", door.uri, "q", "text", 0.2, NOW - 60, 0.3, 0.3, NOW - 60))
        record_alert_start(s, StoredAlert("yard-1", "yard", yard.uri, "q", "text", 0.2, NOW - 30, 0.3, 0.3, NOW - 30))
    return lib


def _utc(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc)


def _moments(lib: Library, **filters: object) -> tuple[list[tuple[str, float]], dict[int, str]]:
    (video,) = [i.video_id for i in lib.segment_infos(list(range(1, 10))).values() if i.path.endswith("a.mp4")][:1]
    query = Query(moment=MomentRef(video, 0, 4), k=10, group_by="moment", filters=QueryFilters(**filters))  # type: ignore[arg-type]
    page = search(lib, query, LocalEmbedder("cpu"))
    return [(h.path, h.start) for h in page.hits], page.streams


def test_source_and_since_filter_streams_and_files(library: Library, tmp_path: Path) -> None:
    with library:
        hits, streams = _moments(library)
        paths = [p for p, _ in hits]
        assert {"rtsp://cam/1", "rtsp://cam/2", str(tmp_path / "videos" / "b.mp4")} <= set(paths)
        assert sorted(streams.values()) == ["door", "porch", "yard"]  # by video id
        assert {p for p, _ in _moments(library, source="door")[0]} == {"rtsp://cam/1"}
        assert {p for p, _ in _moments(library, source="porch")[0]} == {"rtsp://cam/3"}
        cams = {"rtsp://cam/1", "rtsp://cam/2", "rtsp://cam/3"}
        assert {p for p, _ in _moments(library, source="rtsp://cam/")[0]} == cams
        videos = str(tmp_path / "videos")
        assert {p for p, _ in _moments(library, source=videos)[0]} == {f"{videos}/a.mp4", f"{videos}/b.mp4"}
        assert _moments(library, source="nowhere")[0] == []
        recent = _moments(library, date_from=_utc(NOW - 600))[0]
        # the stream's old window is gone, its recent one stays; the files were written just now
        assert ("rtsp://cam/1", pytest.approx(NOW - 60)) in recent
        assert all(start > NOW - 600 for p, start in recent if p.startswith("rtsp://"))
        assert f"{videos}/b.mp4" in [p for p, _ in recent]
        assert _moments(library, date_from=_utc(NOW + 3600))[0] == []  # nothing happened or was modified since
        assert {p for p, _ in _moments(library, source="door", date_from=_utc(NOW - 600))[0]} == {"rtsp://cam/1"}


def test_query_cli_since_is_checked_and_stream_hits_show_their_name(library: Library, tmp_path: Path) -> None:
    library.close()
    cmd = [sys.executable, "-m", "vidsearch.cli", "query", "x", "--library", str(tmp_path / "lib")]
    bad = subprocess.run([*cmd, "--since", "yesterday"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --since 'yesterday' is not a time")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_query_cli_until_and_sort_are_checked(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "vidsearch.cli", "query", "x", "--library", str(tmp_path / "lib")]
    bad_until = subprocess.run([*cmd, "--until", "soon"], capture_output=True, text=True, timeout=120)
    assert bad_until.returncode == 2 and bad_until.stderr.startswith("error: --until 'soon' is not a time")
    bad_sort = subprocess.run([*cmd, "--sort", "size"], capture_output=True, text=True, timeout=120)
    assert bad_sort.returncode == 2 and "'size' is not an order" in bad_sort.stderr and "--sort" in bad_sort.stderr
    crossed = subprocess.run([*cmd, "--since", "1h", "--until", "2h"], capture_output=True, text=True, timeout=120)
    assert crossed.returncode == 2, crossed.stderr
    for proc in (bad_until, bad_sort, crossed):
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "lib").exists()  # refused before any library is opened or made
