"""`vidsearch serve`'s HTTP API on a generated library with the tiny random-weight model.

Every endpoint, paging, HTTP Range, the thumbnail cache, and each security rule of issue 14:
traversal attempts, foreign Host, tokens, non-loopback binds, removed and replaced files.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import av  # noqa: E402
import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from vidsearch.errors import InputError  # noqa: E402
from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.serve import frames  # noqa: E402
from vidsearch.serve.app import create_app, public_message  # noqa: E402
from vidsearch.serve.security import check_bind  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.catalog import get_video  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

BASE = "http://127.0.0.1:8700"
FPS = 10


def _index(folder: Path, lib: Path, ckpt: Path) -> None:
    with Library.open(lib) as library:
        report = index_folder(library, folder, IndexOptions(model=str(ckpt), workers=1))
    assert not report.failed, report.failed


def _write_fade_in(path: Path, black: int = 8, total: int = 30) -> Path:
    """An H.264 file whose first ``black`` frames are black (a fade-in), then generated frames."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(total):
            img = (
                np.zeros((120, 160, 3), np.uint8)
                if i < black
                else videogen.make_frame(i, (160, 120), color=(220, 160, 60))
            )
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("serve-lib")
    videos = root / "videos"
    videogen.write_video(videos / "long.mp4", seconds=20, fps=FPS, size=(160, 120), gop=10, pattern="moving_square")
    videogen.write_video(videos / "sub" / "red.mp4", seconds=4, fps=FPS, size=(160, 120), color=(220, 40, 40))
    videogen.write_video(
        videos / "sub" / "green.mp4", seconds=6, fps=FPS, size=(160, 120), color=(40, 220, 40), pattern="moving_square"
    )
    videogen.write_video(videos / "old codec.avi", seconds=4, fps=FPS, size=(160, 120), codec="mpeg4")
    _write_fade_in(videos / "fade.mp4")
    _index(videos, root / "lib", tiny_checkpoint)
    return root / "lib"


@pytest.fixture(scope="module")
def client(library: Path):
    with TestClient(create_app(ServeConfig(library=library)), base_url=BASE) as c:
        yield c


def _search(client: TestClient, **body) -> dict:
    r = client.post("/api/v1/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(page: dict) -> list[int]:
    return [r["video"]["id"] for r in page["results"]]


def _error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def _video_id(library: Path, name: str) -> int:
    with Library.open(library, create=False) as lib:
        from vidsearch.store.catalog import list_videos

        return next(v.id for v in list_videos(lib) if v.path.endswith(name))


# ------------------------------------------------------------------------------- API


def _wait_until_loaded(client: TestClient, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while (h := client.get("/api/v1/health").json())["status"] == "loading":
        assert time.monotonic() < deadline, "the model did not finish loading"
        time.sleep(0.05)
    return h


def test_health_page_and_openapi(client: TestClient) -> None:
    h = _wait_until_loaded(client)  # the text encoder opens when the server starts
    assert h["status"] == "ok" and h["counts"]["videos"] == 5 and h["indexing"] is False
    assert h["model"]["state"] == "ready" and h["model"]["loaded"] is True
    assert h["model"]["key"].startswith("viclip-custom")
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and 'id="q"' in page.text
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {
        "/api/v1/search",
        "/api/v1/videos",
        "/api/v1/videos/{video_id}",
        "/api/v1/health",
        "/media/{video_id}",
    } <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/v1/search"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


def test_search_is_the_ranking_of_vidsearch_query(client: TestClient, library: Path) -> None:
    from typer.testing import CliRunner

    from vidsearch.cli import commands  # noqa: F401
    from vidsearch.cli.main import app

    page = _search(client, query="a red square moving", k=5)
    out = CliRunner().invoke(
        app, ["query", "a red square moving", "--library", str(library), "-k", "5", "--json"], catch_exceptions=False
    )
    cli_hits = json.loads(out.stdout)
    assert [os.path.basename(h["path"]) for h in cli_hits] == [
        os.path.basename(r["video"]["name"]) for r in page["results"]
    ]
    for h, r in zip(cli_hits, page["results"], strict=False):
        assert r["score"] == pytest.approx(h["score"], abs=1e-5)
        assert (r["start"], r["end"]) == (pytest.approx(h["start"], abs=1e-3), pytest.approx(h["end"], abs=1e-3))
        assert r["rank"] == h["rank"] and r["video"]["id"] == h["video_id"]
        assert r["moment_id"] == f"{h['video_id']}-{round(h['start'] * 1000)}-{round(h['end'] * 1000)}"
    first = page["results"][0]
    assert first["play_url"].startswith(f"/media/{first['video']['id']}?v=") and "#t=" in first["play_url"]
    assert page["model"].startswith("viclip-custom")


def test_model_loads_once_and_concurrent_searches_agree(client: TestClient) -> None:
    queries = ["a person", "a green field", "a person", "cars", "a green field", "cars", "a person", "a dog"]
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda q: _search(client, query=q, k=5), queries))
    by_query: dict[str, list] = {}
    for q, p in zip(queries, pages, strict=False):
        by_query.setdefault(q, []).append([(r["moment_id"], r["score"]) for r in p["results"]])
    assert all(all(x == v[0] for x in v) for v in by_query.values())
    assert client.get("/api/v1/health").json()["model"]["loaded"] is True
    assert len(client.app.state.serve._encoders) == 1


def test_text_encoder_opens_at_start_up(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health says "loading" until the text encoder is open; the first search uses it (no second load),
    and once its ONNX graph is cached the server's text path is the torch-free one `query` takes."""
    import threading

    import vidsearch.usecases.encoders as encoders

    real, gate, opened = encoders.open_encoder, threading.Event(), []

    def held_open(spec):  # the real opener, held back until the test has seen "loading"
        opened.append(spec.towers)
        gate.wait(120)
        return real(spec)

    monkeypatch.setattr(encoders, "open_encoder", held_open)
    with TestClient(create_app(ServeConfig(library=library)), base_url=BASE) as c:
        h = c.get("/api/v1/health").json()
        assert (h["status"], h["model"]["state"], h["model"]["loaded"]) == ("loading", "loading", False)
        gate.set()
        assert _wait_until_loaded(c)["model"]["state"] == "ready"
        assert _search(c, query="a red square moving", k=3)["results"]
    assert opened == ["text"]
    # the graph is cached now (by the first opening through PyTorch, or an earlier one): ONNX Runtime
    with TestClient(create_app(ServeConfig(library=library, device="cpu")), base_url=BASE) as c:
        _wait_until_loaded(c)
        serve = c.app.state.serve
        assert type(serve.text_encoder(serve.space()).inner).__name__ == "OnnxTextEncoder"


def test_paging_is_stable_and_complete(client: TestClient) -> None:
    whole = _search(client, query="something", k=100)
    assert whole["next_cursor"] is None and len(whole["results"]) == 5
    for group in ("video", "moment"):
        full = _search(client, query="something", k=100, group_by=group)["results"]
        seen, cursor = [], None
        while True:
            page = _search(client, query="something", k=2, cursor=cursor, group_by=group)
            seen.extend(page["results"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert [r["moment_id"] for r in seen] == [r["moment_id"] for r in full]
        assert [r["rank"] for r in seen] == list(range(1, len(full) + 1))
    first = _search(client, query="something", k=2)
    msg = _error(
        client.post("/api/v1/search", json={"query": "other words", "k": 2, "cursor": first["next_cursor"]}), 400
    )
    assert "another search" in msg
    assert "cursor" in _error(client.post("/api/v1/search", json={"query": "something", "cursor": "%%%"}), 400)


def test_moments_mode_gives_several_non_overlapping_moments_per_video(client: TestClient, library: Path) -> None:
    long_id = _video_id(library, "long.mp4")
    moments = [
        r for r in _search(client, query="a square", k=100, group_by="moment")["results"] if r["video"]["id"] == long_id
    ]
    assert len(moments) >= 3  # 20 s: windows 0-8, 4-12, 8-16, 12-20, no whole-video moment
    assert all(r["end"] - r["start"] == pytest.approx(8.0) for r in moments)
    spans = sorted((r["start"], r["end"]) for r in moments)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        assert (min(e1, e2) - max(s1, s2)) / (max(e1, e2) - min(s1, s2)) <= 0.5


def test_filters(client: TestClient, library: Path) -> None:
    all_ids = set(_ids(_search(client, query="x", k=100)))
    sub = _search(client, query="x", k=100, path_prefix="sub")
    assert {r["video"]["name"] for r in sub["results"]} == {"sub/red.mp4", "sub/green.mp4"}
    short = _search(client, query="x", k=100, max_duration=5)
    assert all(r["video"]["duration"] <= 5 for r in short["results"]) and len(short["results"]) == 3
    assert all(r["video"]["duration"] >= 6 for r in _search(client, query="x", k=100, min_duration=6)["results"])
    scores = [r["score"] for r in _search(client, query="x", k=100)["results"]]
    cut = sorted(scores)[2] - 1e-6  # scores are rounded to 6 digits in the response
    assert [r["score"] for r in _search(client, query="x", k=100, min_score=cut)["results"]] == [
        s for s in scores if s >= cut
    ]
    assert _search(client, query="x", indexed_after="2999-01-01T00:00:00Z")["results"] == []
    assert set(_ids(_search(client, query="x", k=100, indexed_after="2000-01-01T00:00:00Z"))) == all_ids
    assert "enrich recognize" in _error(client.post("/api/v1/search", json={"query": "x", "label": "dancing"}), 400)


def test_more_like_this_and_uploaded_clip(client: TestClient, library: Path) -> None:
    red = _video_id(library, "red.mp4")
    page = _search(client, clip={"video_id": red, "start": 0, "end": 4}, k=3)
    assert len(page["results"]) == 3 and red not in _ids(page)  # the source moment itself is left out
    assert all(r["matched"] == ["vectors"] for r in page["results"])
    similar = client.get(f"/api/v1/moments/{red}-0-4000/similar?k=3").json()
    assert [r["moment_id"] for r in similar["results"]] == [r["moment_id"] for r in page["results"]]
    # the page's folder and length filters apply to "more like this" as to a search
    sub = client.get(f"/api/v1/moments/{red}-0-4000/similar?k=10&path_prefix=sub").json()
    assert [r["video"]["name"] for r in sub["results"]] == ["sub/green.mp4"]
    longer = client.get(f"/api/v1/moments/{red}-0-4000/similar?k=10&min_duration=6").json()["results"]
    assert longer and all(r["video"]["duration"] >= 6 for r in longer)
    assert "enrich recognize" in _error(client.get(f"/api/v1/moments/{red}-0-4000/similar?label=dancing"), 400)
    assert "no moment" in _error(client.get("/api/v1/moments/nonsense/similar"), 404)
    assert "no video" in _error(
        client.post("/api/v1/search", json={"clip": {"video_id": 999, "start": 0, "end": 1}}), 404
    )

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "vidsearch-upload-*")))
    with open(library.parent / "videos" / "sub" / "green.mp4", "rb") as fh:
        r = client.post("/api/v1/search", files={"file": ("green.mp4", fh, "video/mp4")}, data={"k": "2"})
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    # sampled exactly as the indexer samples a whole video: the file finds itself
    assert top["video"]["name"] == "sub/green.mp4" and top["score"] == pytest.approx(1.0, abs=1e-3)
    bad = client.post("/api/v1/search", files={"file": ("clip.mp4", b"not a video" * 100, "video/mp4")})
    msg = _error(bad, 400)
    assert "uploaded clip" in msg and tempfile.gettempdir() not in msg
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "vidsearch-upload-*"))) == before  # deleted afterwards


def test_uploaded_image_is_a_still_clip(client: TestClient, tmp_path: Path) -> None:
    from PIL import Image

    still = tmp_path / "still.png"
    Image.fromarray(videogen.make_frame(3, (160, 120), color=(220, 40, 40))).save(still)
    with open(still, "rb") as fh:
        r = client.post("/api/v1/search", files={"file": ("still.png", fh, "image/png")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3 and all(x["matched"] == ["vectors"] for x in results)


def test_model_takes_what_query_model_takes(client: TestClient, library: Path, tiny_checkpoint: Path) -> None:
    """`serve --model` resolves as `query --model` does: a checkpoint path or a space's name too."""
    key = client.get("/api/v1/health").json()["model"]["key"]
    for model in (str(tiny_checkpoint), key.split("@")[0], key):
        with TestClient(create_app(ServeConfig(library=library, model=model)), base_url=BASE) as c:
            assert c.get("/api/v1/health").json()["model"]["key"] == key


def test_bad_requests_are_one_line_400s(client: TestClient) -> None:
    post = lambda body: client.post("/api/v1/search", json=body)  # noqa: E731
    assert "k" in _error(post({"query": "x", "k": 0}), 400)
    assert "k" in _error(post({"query": "x", "k": 101}), 400)
    assert "exactly one" in _error(post({"query": "x", "clip": {"video_id": 1, "start": 0, "end": 1}}), 400)
    assert "exactly one" in _error(post({"k": 3}), 400)
    assert "empty" in _error(post({"query": "   "}), 400)
    assert "group_by" in _error(post({"query": "x", "group_by": "scene"}), 400)
    assert "extra" in _error(post({"query": "x", "sql": "drop table"}), 400).lower()
    _error(client.post("/api/v1/search", content=b"{not json", headers={"content-type": "application/json"}), 400)
    _error(client.post("/api/v1/search", content=b"[1, 2]", headers={"content-type": "application/json"}), 400)
    assert "greater than" in _error(post({"clip": {"video_id": 1, "start": 3, "end": 1}}), 400)
    assert _error(client.get("/nothing/here"), 404)


def test_videos_list_and_detail(client: TestClient, library: Path) -> None:
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/videos", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen.extend(page["videos"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [v["id"] for v in seen] == sorted(v["id"] for v in seen) and len(seen) == 5
    by_name = {v["name"]: v for v in seen}
    assert by_name["long.mp4"]["codec"] == "h264" and by_name["long.mp4"]["playable"] is True
    assert by_name["old codec.avi"]["codec"] == "mpeg4" and by_name["old codec.avi"]["playable"] is False
    detail = client.get(f"/api/v1/videos/{by_name['long.mp4']['id']}").json()
    assert detail["duration"] == pytest.approx(20.0) and detail["label_sets"] == [] and "path" not in detail
    assert "no video" in _error(client.get("/api/v1/videos/99999"), 404)
    assert "no video" in _error(client.get("/api/v1/videos/abc"), 404)
    with Library.open(library, create=False) as lib:  # recorded at index time (migration 0004)
        assert get_video(lib, by_name["long.mp4"]["id"]).codec == "h264"


def test_a_shared_moment_is_described_as_its_search_result(client: TestClient) -> None:
    """``GET /moments/{id}``: what the page opens for a shared link, the result's fields without a score."""
    result = _search(client, query="a red video", k=1)["results"][0]
    alone = client.get(f"/api/v1/moments/{result['moment_id']}").json()
    assert {k: alone[k] for k in alone} == {k: result[k] for k in alone} and "score" not in alone
    assert alone["play_url"].startswith(f"/media/{result['video']['id']}?") and not alone["video"]["live"]
    assert client.get(alone["play_url"].split("#")[0]).status_code == 200
    assert "no moment" in _error(client.get("/api/v1/moments/12-9000-4000"), 404)  # ends before it starts


# ------------------------------------------------------------------------------- media


def test_media_ranges(client: TestClient, library: Path) -> None:
    vid = _video_id(library, "long.mp4")
    data = (library.parent / "videos" / "long.mp4").read_bytes()
    full = client.get(f"/media/{vid}")
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4" and full.headers["cache-control"] == "no-cache"
    part = client.get(f"/media/{vid}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(f"/media/{vid}", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    assert client.get(f"/media/{vid}", headers={"Range": f"bytes={len(data) + 10}-"}).status_code == 416
    multi = client.get(f"/media/{vid}", headers={"Range": "bytes=0-9,1000-1019"})
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")
    assert data[0:10] in multi.content and data[1000:1020] in multi.content
    head = client.head(f"/media/{vid}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data) and head.content == b""
    url = _search(client, query="x", k=100)["results"][0]["play_url"].split("#")[0]
    assert client.get(url).headers["cache-control"].endswith("immutable")
    assert "stale" in _error(client.get(f"/media/{vid}?v=0000000000000000"), 404)


def test_thumbnails_and_strips_are_cached(client: TestClient, library: Path) -> None:
    vid = _video_id(library, "long.mp4")
    r = client.get(f"/thumbs/{vid}/5300.jpg?w=160")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    decoded_after_first = frames.decode_count()
    again = client.get(f"/thumbs/{vid}/5300.jpg?w=160")
    assert again.content == r.content and frames.decode_count() == decoded_after_first  # no decoding the second time
    assert list((library / "cache" / "frames").rglob("*.jpg"))
    img = next(av.open(__import__("io").BytesIO(r.content)).decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape[1] == 160 and 53 <= videogen.frame_number(img, 12) <= 63  # within a second after 5.3 s
    strip = client.get(f"/strips/{vid}-4000-12000.jpg")
    tiles = next(av.open(__import__("io").BytesIO(strip.content)).decode(video=0)).to_ndarray(format="rgb24")
    assert strip.status_code == 200 and tiles.shape[1] == 8 * 160
    numbers = [videogen.frame_number(t, 12) for t in np.split(tiles, 8, axis=1)]
    assert numbers == sorted(numbers) and 40 <= numbers[0] and numbers[-1] < 120
    decoded = frames.decode_count()
    assert client.get(f"/strips/{vid}-4000-12000.jpg").content == strip.content and frames.decode_count() == decoded
    assert "w must be" in _error(client.get(f"/thumbs/{vid}/100.jpg?w=7"), 400)
    assert _error(client.get(f"/thumbs/{vid}/nope.png"), 404)
    assert _error(client.get(f"/strips/{vid}-9000-1000.jpg"), 404)
    assert _error(client.get(f"/strips/{vid}-30000-40000.jpg"), 404)


def test_thumbnail_skips_a_black_fade_in(client: TestClient, library: Path) -> None:
    vid = _video_id(library, "fade.mp4")
    r = client.get(f"/thumbs/{vid}/0.jpg?w=160")
    img = next(av.open(__import__("io").BytesIO(r.content)).decode(video=0)).to_ndarray(format="rgb24")
    # frames 0-7 are black; the thumbnail is the first real frame after them, within a second
    assert img[60:].mean() > 20 and 8 <= videogen.frame_number(img, 12) <= 10
    black = np.zeros((8, 8, 3), np.uint8)
    scene = videogen.make_frame(3, (8, 8))
    assert frames.pick_representative([black, black, scene, scene]) == 2
    assert frames.pick_representative([scene, black]) == 0


def test_unplayable_codec_is_flagged(client: TestClient) -> None:
    results = _search(client, query="x", k=100)["results"]
    by_name = {r["video"]["name"]: r for r in results}
    assert by_name["old codec.avi"]["video"]["playable"] is False and by_name["long.mp4"]["video"]["playable"] is True
    assert client.get(by_name["old codec.avi"]["thumbnail_url"]).status_code == 200  # stills still work


# ------------------------------------------------------------------------------- security


def test_traversal_and_foreign_ids_get_404(client: TestClient) -> None:
    for path in (
        "/media/../../etc/passwd",
        "/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/media//etc/passwd",
        "/media/1%2f..%2f..%2fetc%2fpasswd",
        "/media/-1",
        "/media/1.0",
        "/thumbs/1/..%2f..%2fsecret.jpg",
        "/strips/..%2f..%2fetc%2fpasswd.jpg",
        "/static/../library.sqlite",
        "/static/%2e%2e/app.py",
    ):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "root:" not in r.text


def test_host_header_check_and_no_cors(client: TestClient) -> None:
    assert "Host" in _error(client.get("/api/v1/health", headers={"Host": "evil.example"}), 400)
    assert "Host" in _error(client.get("/api/v1/health", headers={"Host": "attacker.test:8700"}), 400)
    for host in ("localhost:8700", "127.0.0.1", "[::1]:8700"):
        assert client.get("/api/v1/health", headers={"Host": host}).status_code == 200
    r = client.get("/api/v1/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(
        "/api/v1/search", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in pre.headers
    assert (
        r.headers["x-content-type-options"] == "nosniff"
        and "default-src 'self'" in r.headers["content-security-policy"]
    )


def test_token_bearer_and_one_time_link_cookie(library: Path) -> None:
    app = create_app(ServeConfig(library=library, host="0.0.0.0", token="s3cret-token"))
    with TestClient(app, base_url="http://192.0.2.10:8700") as c:
        assert "token" in _error(c.get("/api/v1/health"), 401)
        assert _error(c.get("/media/1"), 401)
        assert _error(c.get("/api/v1/health", headers={"Authorization": "Bearer wrong"}), 401)
        assert c.get("/api/v1/health", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert _error(c.get("/?token=wrong", follow_redirects=False), 401)
        link = c.get("/?token=s3cret-token&q=dogs", follow_redirects=False)
        assert link.status_code == 303 and link.headers["location"] == "/?q=dogs"  # the token leaves the address bar
        cookie = link.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert c.get("/api/v1/health").status_code == 200  # the client kept the cookie
        assert c.get("/media/1", headers={"Range": "bytes=0-9"}).status_code == 206  # what <video src> needs


def test_non_loopback_bind_needs_a_token(library: Path) -> None:
    check_bind("127.0.0.1", None)
    check_bind("localhost", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "tok")
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(InputError, match="--token"):
            check_bind(host, None)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "serve", "--host", "0.0.0.0", "--library", str(library)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "Traceback" not in proc.stderr


def test_body_size_caps(library: Path) -> None:
    app = create_app(ServeConfig(library=library, max_upload_bytes=20_000, max_body_bytes=2_000))
    with TestClient(app, base_url=BASE) as c:
        big = (library.parent / "videos" / "long.mp4").read_bytes()
        assert "too large" in _error(c.post("/api/v1/search", files={"file": ("big.mp4", big, "video/mp4")}), 413)
        assert "too large" in _error(c.post("/api/v1/search", json={"query": "x" * 3000}), 413)

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(10):
                yield b" " * 1000

        assert "too large" in _error(
            c.post("/api/v1/search", content=chunks(), headers={"content-type": "application/json"}), 413
        )


def test_removed_replaced_and_symlinked_files_get_404(tmp_path: Path, tiny_checkpoint: Path) -> None:
    videos = tmp_path / "videos"
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        videogen.write_video(videos / name, seconds=2, fps=FPS, size=(64, 48))
    _index(videos, tmp_path / "lib", tiny_checkpoint)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n" * 100)
    with TestClient(create_app(ServeConfig(library=tmp_path / "lib")), base_url=BASE) as c:
        ids = {Path(v["name"]).name: v["id"] for v in c.get("/api/v1/videos").json()["videos"]}
        assert all(c.get(f"/media/{i}").status_code == 200 for i in ids.values())
        with Library.open(tmp_path / "lib", create=False) as lib:
            lib.remove_videos([ids["a.mp4"]])
        for url in (
            f"/media/{ids['a.mp4']}",
            f"/thumbs/{ids['a.mp4']}/0.jpg",
            f"/api/v1/videos/{ids['a.mp4']}",
            f"/strips/{ids['a.mp4']}-0-1000.jpg",
        ):
            assert "no video" in _error(c.get(url), 404)
        (videos / "b.mp4").unlink()
        (videos / "b.mp4").symlink_to(secret)  # a symlink put in place of an indexed file
        msg = _error(c.get(f"/media/{ids['b.mp4']}"), 404)
        assert "changed" in msg and str(tmp_path) not in msg
        with open(videos / "c.mp4", "ab") as fh:  # the file changed since indexing
            fh.write(b"\0" * 10)
        assert "changed" in _error(c.get(f"/media/{ids['c.mp4']}"), 404)
        shutil.rmtree(videos)
        assert "gone" in _error(c.get(f"/thumbs/{ids['c.mp4']}/0.jpg"), 404)


def test_empty_library(tmp_path: Path) -> None:
    with Library.open(tmp_path / "empty"):
        pass
    with TestClient(create_app(ServeConfig(library=tmp_path / "empty")), base_url=BASE) as c:
        h = c.get("/api/v1/health").json()
        assert h["counts"]["videos"] == 0 and h["model"]["key"] is None
        assert c.post("/api/v1/search", json={"query": "x"}).json() == {
            "results": [],
            "next_cursor": None,
            "model": None,
        }
        assert c.get("/api/v1/videos").json() == {"videos": [], "next_cursor": None}


def test_writer_lock_shows_as_indexing(library: Path) -> None:
    with TestClient(create_app(ServeConfig(library=library)), base_url=BASE) as c:
        with Library.open(library, create=False) as lib, lib.writer_lock():
            assert c.get("/api/v1/health").json()["indexing"] is True
        assert c.get("/api/v1/health").json()["indexing"] is False


def test_error_messages_carry_no_server_paths() -> None:
    msg = public_message(InputError("/srv/videos/private/clip.mp4: cannot be decoded: bad data at /usr/lib/x.so"))
    assert msg == "clip.mp4: cannot be decoded: bad data at x.so"
    assert (
        public_message(
            InputError("no library at /home/me/lib; run `vidsearch index DIR --library /home/me/lib` first")
        ).count("/home")
        == 0
    )


def test_cli_serve_answers_then_stops_cleanly_on_ctrl_c(library: Path) -> None:
    import signal

    import httpx
    from serving import free_port, serve_cli

    port = free_port()
    proc = serve_cli(library, port, "--token", "auto")  # Ctrl-C handled as in a terminal
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=30)
        assert r.status_code == 401  # --token auto: nothing without the token
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # the README's exit code for Ctrl-C
    link = next(line for line in out.splitlines() if "?token=" in line)
    token = link.split("?token=")[1].split()[0]
    assert len(token) >= 24 and "stopped" in out and "Traceback" not in err
