"""A stream's moment in the page's results plays from the stream's recording.

A stream's "file" is its URL: the server cannot serve it, so a search result's ``play_url`` is a
clip of the recording around the span (``clip_start`` its first frame's UTC time), a ``<video>``
can play and seek it (Range requests), and nothing the result links to is a 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

from fastapi.testclient import TestClient  # noqa: E402
from recorded import RECORDED_URI, SILENT_URI, RecordedStreams, recorded_streams  # noqa: E402
from test_clip import _decoded  # noqa: E402

from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.playback import STREAM_CONTEXT_S, stream_media  # noqa: E402
from vidsearch.serve.service import ServeConfig, moment_id  # noqa: E402


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> RecordedStreams:
    return recorded_streams(tmp_path_factory.mktemp("stream-play"))


@pytest.fixture(scope="module")
def client(streams: RecordedStreams):
    with TestClient(create_app(ServeConfig(library=streams.library)), base_url="http://127.0.0.1:8700") as c:
        yield c


def _result_for(client: TestClient, streams: RecordedStreams, uri: str) -> dict:
    """The search result for ``uri``'s window: "more like this" from the other stream's window."""
    other = SILENT_URI if uri == RECORDED_URI else RECORDED_URI
    asked = moment_id(streams.ids[other], streams.t0, streams.t0 + streams.window)
    r = client.get(f"/api/v1/moments/{asked}/similar")
    assert r.status_code == 200, r.text
    (result,) = [m for m in r.json()["results"] if m["video"]["id"] == streams.ids[uri]]
    return result


def test_a_recorded_stream_moment_plays_its_recording(
    client: TestClient, streams: RecordedStreams, tmp_path: Path
) -> None:
    result = _result_for(client, streams, RECORDED_URI)
    assert result["video"]["live"] and result["video"]["playable"]
    assert result["video"]["recorded_from"] == pytest.approx(streams.t0, abs=1e-3)
    # the span with context, not before the recording's start: the clip starts with the recording
    assert result["clip_start"] == pytest.approx(streams.t0, abs=1e-3)
    assert result["thumbnail_url"] is None and result["strip_url"] is None
    url, fragment = result["play_url"].split("#")
    assert url.startswith(f"/api/v1/moments/{result['moment_id']}/clip.mp4?")
    assert fragment == f"t=0.000,{streams.window:.3f}"  # the span, counted from the clip's start
    r = client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4" and r.headers["accept-ranges"] == "bytes"
    (tmp_path / "play.mp4").write_bytes(r.content)
    numbers, times, _ = _decoded(tmp_path / "play.mp4")
    # the whole 4 s window at 10 fps, from its first frame (the context after it is not recorded yet)
    assert abs(numbers[0]) <= 1 and times[0] == pytest.approx(0.0) and abs(len(numbers) - 40) <= 2


def test_the_clip_answers_range_requests(client: TestClient, streams: RecordedStreams) -> None:
    url = _result_for(client, streams, RECORDED_URI)["play_url"].split("#")[0]
    whole = client.get(url).content
    size = len(whole)
    head = client.get(url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206 and head.content == whole[:100]
    assert head.headers["content-range"] == f"bytes 0-99/{size}" and head.headers["content-length"] == "100"
    rest = client.get(url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and head.content + rest.content == whole
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    past = client.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    several = client.get(url, headers={"Range": "bytes=0-1,5-6"})  # not read: the whole clip
    assert several.status_code == 200 and several.content == whole


def test_context_is_kept_inside_the_recording(streams: RecordedStreams) -> None:
    t0 = streams.t0
    later = stream_media("1-2-3", t0 + 10, t0 + 12, recorded_from=t0)
    assert later["clip_start"] == pytest.approx(t0 + 10 - STREAM_CONTEXT_S)
    assert later["play_url"].endswith(f"#t={STREAM_CONTEXT_S:.3f},{STREAM_CONTEXT_S + 2:.3f}")
    assert f"end={t0 + 12 + STREAM_CONTEXT_S:.3f}" in later["play_url"]
    # the recording of that time is deleted: nothing to play
    assert stream_media("1-2-3", t0 - 10, t0 - 8, recorded_from=t0)["play_url"] is None


def test_an_unrecorded_stream_moment_links_nothing(client: TestClient, streams: RecordedStreams) -> None:
    result = _result_for(client, streams, SILENT_URI)
    assert result["video"]["live"] and not result["video"]["playable"]
    assert result["video"]["recorded_from"] is None and result["clip_start"] is None
    assert result["play_url"] is None and result["thumbnail_url"] is None and result["strip_url"] is None


def test_nothing_a_stream_result_links_to_is_missing(client: TestClient, streams: RecordedStreams) -> None:
    for uri in (RECORDED_URI, SILENT_URI):
        result = _result_for(client, streams, uri)
        for key in ("play_url", "thumbnail_url", "strip_url"):
            if result[key] is not None:
                r = client.get(result[key].split("#")[0])
                assert r.status_code == 200, (key, r.status_code, r.text[:200])
        # what the player asks about the video: a stream has no people scan and no transcript
        video = result["video"]["id"]
        actors = client.get(f"/api/v1/videos/{video}/actors")
        assert actors.status_code == 200 and actors.json()["scans"] == [], actors.text[:200]
        transcript = client.get(f"/api/v1/videos/{video}/transcript")
        assert transcript.status_code in (200, 404), transcript.text[:200]


def test_a_moment_by_its_id_is_described_as_its_search_result(client: TestClient, streams: RecordedStreams) -> None:
    """``GET /moments/{id}`` (what a shared link opens) gives a result's video and media, without a score."""
    for uri in (RECORDED_URI, SILENT_URI):
        result = _result_for(client, streams, uri)
        r = client.get(f"/api/v1/moments/{result['moment_id']}")
        assert r.status_code == 200, r.text
        alone = r.json()
        assert "score" not in alone
        shared = ("moment_id", "date", "start", "end", "video", "play_url", "thumbnail_url", "strip_url", "clip_start")
        assert {k: alone[k] for k in shared} == {k: result[k] for k in shared}
    assert client.get("/api/v1/moments/999999-0-1000").status_code == 404
    assert client.get("/api/v1/moments/not-a-moment").status_code == 404
