"""The web API's transcripts: search results quote what is said; a video's transcript as JSON, WebVTT, SRT."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import speechgen  # noqa: E402
import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.indexer.transcribe import transcribe_library  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

BASE = "http://127.0.0.1:8700"
TALK = [(1.0, 3.0, "Good morning everyone"), (4.0, 6.0, "the bridge is closed today")]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):
    root = tmp_path_factory.mktemp("serve-speech")
    videos = root / "videos"
    videogen.write_video(videos / "talk.mp4", seconds=7, fps=5, size=(96, 64), color=(200, 40, 40))
    speechgen.write_srt(videos / "talk.srt", TALK)
    videogen.write_video(videos / "quiet.mp4", seconds=3, fps=5, size=(96, 64), pattern="moving_square")
    with Library.open(root / "lib") as library:
        assert not index_folder(library, videos, IndexOptions(model=str(tiny_checkpoint), workers=1)).failed
        assert transcribe_library(library).transcribed == 1
    with TestClient(create_app(ServeConfig(library=root / "lib")), base_url=BASE) as c:
        yield c


def _ids(client: TestClient) -> dict[str, int]:
    return {v["name"]: v["id"] for v in client.get("/api/v1/videos").json()["videos"]}


def test_search_results_quote_what_is_said(client: TestClient) -> None:
    page = client.post("/api/v1/search", json={"said": "bridge is closed"}).json()
    assert [r["video"]["name"] for r in page["results"]] == ["talk.mp4"]
    top = page["results"][0]
    assert top["why"] == "said" and top["matched"] == ["transcripts"]
    assert top["said"]["text"] == "the bridge is closed today" and top["said"]["match"] == "bridge is closed"
    assert 4.0 <= top["start"] < top["end"] <= 6.0
    both = client.post("/api/v1/search", json={"query": "bridge"}).json()["results"]
    assert both[0]["why"] == "both" and both[0]["said"]["match"] == "bridge" and len(both) == 2
    seen = client.post("/api/v1/search", json={"query": "bridge", "mode": "seen"}).json()["results"]
    assert all(r["why"] == "seen" and r["said"] is None for r in seen)
    bad = client.post("/api/v1/search", json={"query": "bridge", "mode": "heard"})
    assert bad.status_code in (400, 422) and "\n" not in bad.json()["error"]


def test_transcript_as_json_vtt_and_srt(client: TestClient) -> None:
    ids = _ids(client)
    got = client.get(f"/api/v1/videos/{ids['talk.mp4']}/transcript").json()
    assert got["name"] == "talk.mp4" and "path" not in got and got["source"] == "sidecar"
    assert [(x["start"], x["end"], x["text"]) for x in got["lines"]] == TALK
    vtt = client.get(f"/api/v1/videos/{ids['talk.mp4']}/transcript.vtt")
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT") and "00:00:04.000 --> 00:00:06.000" in vtt.text
    srt = client.get(f"/api/v1/videos/{ids['talk.mp4']}/transcript.srt")
    assert "00:00:01,000 --> 00:00:03,000\nGood morning everyone" in srt.text
    quiet = client.get(f"/api/v1/videos/{ids['quiet.mp4']}/transcript.vtt")
    assert quiet.status_code == 200 and quiet.text.strip() == "WEBVTT"  # an empty captions track, not an error
    assert client.get("/api/v1/videos/999999/transcript").status_code == 404
    page = client.get("/").text
    assert 'id="transcript"' in page and 'id="f-mode"' in page
