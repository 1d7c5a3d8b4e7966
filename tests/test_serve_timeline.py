"""The player's timeline and the results' order over HTTP: a query's scores over a whole video,
relative match, sorting by score/date/name and date ranges (files by modification time, stream
moments by their wall-clock time)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.media import VideoInfo  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402
from vidsearch.store.segments import SpanRow  # noqa: E402
from vidsearch.store.writer import SpaceWriter, VideoRows  # noqa: E402
from vidsearch.usecases.timeline import matching_spans  # noqa: E402

FPS = 10
DAY = 86400.0
# Modification times of the files, one day apart (2024-03-01.. UTC), and a stream's wall-clock windows.
MTIMES = {"a long.mp4": 1709251200.0, "b red.mp4": 1709251200.0 + DAY, "c green.mp4": 1709251200.0 + 2 * DAY}
STREAM = "rtsp://cam.local/garden"
STREAM_T0 = 1709251200.0 + 1.5 * DAY  # between b's and c's file times
QUERY = "a dog catching a frisbee"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("timeline-lib")
    videos = root / "videos"
    videogen.write_video(videos / "a long.mp4", seconds=24, fps=FPS, size=(160, 120), gop=10, pattern="moving_square")
    videogen.write_video(videos / "b red.mp4", seconds=12, fps=FPS, size=(160, 120), color=(220, 40, 40))
    videogen.write_video(videos / "c green.mp4", seconds=16, fps=FPS, size=(160, 120), color=(40, 220, 40))
    for name, t in MTIMES.items():
        os.utime(videos / name, (t, t))
    with Library.open(root / "lib") as lib:
        report = index_folder(lib, videos, IndexOptions(model=str(tiny_checkpoint), workers=1))
        assert not report.failed, report.failed
        # A watched stream's windows, as `vidsearch watch` appends them: UTC-second times, no file.
        space = lib.spaces()[0]
        rng = np.random.default_rng(0)
        xb = rng.normal(size=(6, space.dim)).astype(np.float32)
        xb /= np.linalg.norm(xb, axis=1, keepdims=True)
        spans = [SpanRow("window", STREAM_T0 + 4 * i, STREAM_T0 + 4 * i + 8) for i in range(6)]
        with lib.writer_lock(), SpaceWriter(lib, space) as writer:
            info = VideoInfo(STREAM, 0, float(FPS), 0.0, 160, 120)
            writer.add([VideoRows(STREAM, -1, 0, "", "pyav", info, spans, xb, append=True)])
    return root / "lib"


@pytest.fixture(scope="module")
def client(library: Path):
    with TestClient(create_app(ServeConfig(library=library)), base_url="http://127.0.0.1:8700") as c:
        yield c


def _search(client: TestClient, **body) -> dict:
    r = client.post("/api/v1/search", json={"query": QUERY, "k": 50, **body})
    assert r.status_code == 200, r.text
    return r.json()


def _names(page: dict) -> list[str]:
    return [r["video"]["name"] for r in page["results"]]


def _error(r, status: int = 400) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_relative_match_and_dates_of_results(client: TestClient) -> None:
    page = _search(client)
    results = page["results"]
    assert len(results) == 4  # three files and the stream
    assert results[0]["match"] == 1.0  # the best result is the top of the scale
    matches = [r["match"] for r in results]
    assert matches == sorted(matches, reverse=True) and all(0.0 <= m <= 1.0 for m in matches)
    assert results[-1]["match"] == 0.0  # the lowest of the scale (fewer results than its depth)
    scores = [r["score"] for r in results]
    lo, hi = min(scores), max(scores)
    for r in results:  # the raw score stays, and the match is where it sits between the extremes
        assert abs(r["match"] - (r["score"] - lo) / (hi - lo)) < 1e-3
    by_name = {r["video"]["name"]: r for r in results}
    for name, t in MTIMES.items():  # a file's moment is dated by the file's modification time
        assert by_name[name]["date"] == datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")
        assert by_name[name]["video"]["live"] is False
    live = next(r for r in results if r["video"]["live"])  # a stream's moment by its wall-clock start
    assert datetime.fromisoformat(live["date"]).timestamp() == pytest.approx(live["start"], abs=1.0)
    assert live["start"] >= STREAM_T0


def test_sort_by_date_and_name(client: TestClient) -> None:
    by_date = _search(client, sort="date")["results"]
    stamps = [datetime.fromisoformat(r["date"]).timestamp() for r in by_date]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert by_date[0]["video"]["name"] == "c green.mp4" and by_date[-1]["video"]["name"] == "a long.mp4"
    assert by_date[1]["video"]["live"] is True  # the stream's moment sits between the files' days
    # the match is still relative to the best score, whatever the order
    assert max(r["match"] for r in by_date) == 1.0
    by_name = _names(_search(client, sort="name"))
    assert by_name[:3] == ["a long.mp4", "b red.mp4", "c green.mp4"]
    # the same order pages the same way: two pages of 2 are the first 4
    first = client.post("/api/v1/search", json={"query": QUERY, "k": 2, "sort": "date"}).json()
    second = client.post(
        "/api/v1/search", json={"query": QUERY, "k": 2, "sort": "date", "cursor": first["next_cursor"]}
    ).json()
    assert [r["moment_id"] for r in first["results"] + second["results"]] == [r["moment_id"] for r in by_date]
    # moments, sorted by date: every window of the stream is dated by its own time
    moments = _search(client, sort="date", group_by="moment")["results"]
    stamps = [datetime.fromisoformat(r["date"]).timestamp() for r in moments]
    assert stamps == sorted(stamps, reverse=True) and len(moments) > 4


def test_date_range_filters_files_and_stream_moments(client: TestClient) -> None:
    day = lambda t: datetime.fromtimestamp(t, tz=timezone.utc).isoformat()  # noqa: E731
    only_b = _search(client, date_from=day(MTIMES["b red.mp4"] - 3600), date_to=day(MTIMES["b red.mp4"] + 3600))
    assert _names(only_b) == ["b red.mp4"]
    later = _search(client, date_from=day(MTIMES["b red.mp4"] + 3600))
    # files modified since, and the stream (its best moment is after the bar too)
    assert {r["video"]["name"] for r in later["results"] if not r["video"]["live"]} == {"c green.mp4"}
    assert any(r["video"]["live"] for r in later["results"])
    # a range inside the stream's windows keeps only the stream's moments in it
    lo, hi = STREAM_T0 + 3.0, STREAM_T0 + 13.0
    moments = _search(client, group_by="moment", date_from=day(lo), date_to=day(hi))["results"]
    assert moments and all(r["video"]["live"] and lo <= r["start"] <= hi for r in moments)
    assert {r["start"] for r in moments} == {STREAM_T0 + 4, STREAM_T0 + 8, STREAM_T0 + 12}
    naive = _search(client, date_from="2024-03-02T00:00:00", date_to="2024-03-02T06:00:00")  # naive: UTC
    assert _names(naive) == ["b red.mp4"]
    # the same on "more like this"
    mid = only_b["results"][0]["moment_id"]
    r = client.get(f"/api/v1/moments/{mid}/similar", params={"sort": "name", "date_from": day(MTIMES["c green.mp4"])})
    assert r.status_code == 200, r.text
    assert {x["video"]["name"] for x in r.json()["results"] if not x["video"]["live"]} == {"c green.mp4"}


def test_bad_sort_and_date_range_are_one_line(client: TestClient) -> None:
    r = client.post("/api/v1/search", json={"query": QUERY, "sort": "size"})
    assert "sort" in _error(r)
    r = client.post(
        "/api/v1/search", json={"query": QUERY, "date_from": "2024-03-03T00:00:00Z", "date_to": "2024-03-01T00:00:00Z"}
    )
    assert "date range ends before it starts" in _error(r)
    r = client.post("/api/v1/search", json={"query": QUERY, "date_from": "yesterday"})
    assert "date_from" in _error(r)


def test_scores_over_a_whole_video(client: TestClient, library: Path) -> None:
    results = _search(client, group_by="moment")["results"]
    long_hits = [r for r in results if r["video"]["name"] == "a long.mp4"]
    vid = long_hits[0]["video"]["id"]
    r = client.get(f"/api/v1/videos/{vid}/scores", params={"q": QUERY})
    assert r.status_code == 200, r.text
    body = r.json()
    windows = body["windows"]
    assert body["video_id"] == vid and body["duration"] == pytest.approx(24.0, abs=0.2)
    assert len(windows) >= 4 and windows[0]["start"] == 0.0 and windows[-1]["end"] >= 23.0  # the whole video
    assert [w["start"] for w in windows] == sorted(w["start"] for w in windows)
    assert body["high"] == max(w["score"] for w in windows) and body["low"] == min(w["score"] for w in windows)
    # the same vectors as the search: each moment found is a window with the same score
    by_span = {(w["start"], w["end"]): w["score"] for w in windows}
    for hit in long_hits:
        assert by_span[(hit["start"], hit["end"])] == pytest.approx(hit["score"], abs=1e-5)
    spans = body["spans"]
    assert spans and all(0 <= s["start"] < s["end"] <= windows[-1]["end"] for s in spans)
    assert [s["start"] for s in spans] == sorted(s["start"] for s in spans)
    best = max(s["score"] for s in spans)
    cut = body["low"] + 0.5 * (best - body["low"])
    assert all(s["score"] >= cut - 1e-6 for s in spans)  # only the peaks that match
    # a higher bar leaves fewer (or no) spans
    strict = client.get(f"/api/v1/videos/{vid}/scores", params={"q": QUERY, "min_score": 1.0}).json()
    assert strict["spans"] == [] and strict["windows"] == windows
    # "more like this": the moment's own windows score highest around it
    similar = client.get(f"/api/v1/videos/{vid}/scores", params={"similar": long_hits[0]["moment_id"]}).json()
    top = max(similar["windows"], key=lambda w: w["score"])
    assert top["start"] < long_hits[0]["end"] and long_hits[0]["start"] < top["end"]


def test_scores_errors_are_one_line(client: TestClient) -> None:
    assert "exactly one of q" in _error(client.get("/api/v1/videos/1/scores"))
    assert "exactly one of q" in _error(client.get("/api/v1/videos/1/scores", params={"q": "x", "similar": "1-0-1000"}))
    assert "empty" in _error(client.get("/api/v1/videos/1/scores", params={"q": "  "}))
    assert "no video" in _error(client.get("/api/v1/videos/999/scores", params={"q": "a dog"}), 404)
    assert "ids are numbers" in _error(client.get("/api/v1/videos/x/scores", params={"q": "a dog"}), 404)
    assert "moment ids look like" in _error(client.get("/api/v1/videos/1/scores", params={"similar": "zz"}), 404)


def test_favicon_is_served(client: TestClient) -> None:
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml") and b"<svg" in r.content
    assert 'rel="icon"' in client.get("/").text


def test_matching_spans_are_the_peaks_above_half_way() -> None:
    # two events on a flat, low curve: both marked, in time order; a ripple below half way is not
    windows = [(float(t), float(t + 8), 0.1) for t in range(0, 60, 4)]
    hot = {8: 0.9, 12: 0.9, 40: 0.7, 44: 0.7, 24: 0.3}
    windows = [(s, e, hot.get(int(s), sc)) for s, e, sc in windows]
    spans = matching_spans(windows)
    assert len(spans) == 2 and spans[0].start < spans[1].start
    assert spans[0].start <= 12 <= spans[0].end and spans[1].start <= 44 <= spans[1].end
    (strict,) = matching_spans(windows, min_score=0.6)  # the bar raised: only the better event
    assert strict.start <= 12 <= strict.end and strict.score >= 0.6
    # a third, weak event (below half way from the floor to the best span) is not marked
    weak = [(s, e, 0.25 if s == 28 else sc) for s, e, sc in windows]
    assert len(matching_spans(weak)) == 2
    assert matching_spans([]) == []


def test_relative_match_scales_each_retriever_apart() -> None:
    from vidsearch.search import VideoHit
    from vidsearch.usecases.ordering import relative_matches

    def hit(score: float, matched: tuple[str, ...]) -> VideoHit:
        return VideoHit(0, "/v.mp4", score, 0.0, 1.0, 1.0, 1, 1, "window", matched)

    hits = [hit(0.30, ("vectors",)), hit(12.0, ("transcripts",)), hit(0.20, ("vectors", "transcripts"))]
    hits += [hit(0.10, ("vectors",)), hit(4.0, ("transcripts",))]
    # cosines between 0.10 and 0.30, BM25 values between 4 and 12: each on its own scale
    assert relative_matches(hits) == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    # below the depth: clamped to the scale of the top ones; a retriever absent from the top: 0
    assert relative_matches([*hits[:2], hit(0.05, ("vectors",)), hit(1.0, ("other",))], depth=2) == pytest.approx(
        [1.0, 1.0, 0.0, 0.0]
    )
    assert relative_matches([hit(-0.2, ("vectors",))]) == [1.0]  # a single result is the best one
