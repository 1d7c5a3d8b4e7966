"""The server under hostile or odd requests: cross-site requests, redirects, folder filters, the
frame cache's bounds, and inputs that once ended in a 500 with a traceback in the log."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_serve_api import _error, _search  # noqa: E402
from test_serve_api import _index as index_library  # noqa: E402

from vidsearch.serve import frames  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store.catalog import list_videos  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402

BASE = "http://127.0.0.1:8700"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    root = tmp_path_factory.mktemp("serve-hardening")
    videos = root / "videos"
    for folder in ("sub", "sub0", "sub1"):
        videogen.write_video(videos / folder / "a.mp4", seconds=3, fps=10, size=(96, 64))
    videogen.write_video(videos / "long.mp4", seconds=12, fps=10, size=(96, 64), pattern="moving_square")
    index_library(videos, root / "lib", tiny_checkpoint)
    return root / "lib"


def _ids(library: Path) -> dict[str, int]:
    with Library.open(library, create=False) as lib:
        return {v.path.split("/videos/", 1)[1]: v.id for v in list_videos(lib)}


@pytest.fixture(scope="module")
def client(library: Path):
    with TestClient(create_app(ServeConfig(library=library)), base_url=BASE) as c:
        yield c


# ------------------------------------------------------------------------- web security


def test_cross_origin_requests_are_refused_on_every_endpoint(client: TestClient) -> None:
    evil = {"Origin": "http://evil.example"}
    body = b'{"query": "a dog"}'
    assert "origin" in _error(
        client.post("/api/v1/search", content=body, headers={**evil, "Content-Type": "text/plain"}), 403
    )
    assert "origin" in _error(
        client.post("/api/v1/search", content=body, headers={**evil, "Content-Type": "application/json"}), 403
    )
    assert _error(client.get("/api/v1/health", headers=evil), 403)
    assert _error(client.get("/api/v1/videos", headers={"Sec-Fetch-Site": "cross-site"}), 403)
    assert _error(client.get("/media/1", headers={"Sec-Fetch-Site": "same-site"}), 403)  # another port, same host
    assert _error(client.get("/api/v1/health", headers={"Origin": "null"}), 403)
    # the page's own requests, typed addresses and non-browser clients pass
    own = {"Origin": BASE, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert client.post("/api/v1/search", content=body, headers=own).status_code == 200
    assert client.get("/api/v1/health", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    # browsers without fetch metadata: no other site may embed the files or hold the window
    r = client.get("/media/1", headers={"Range": "bytes=0-9"})
    assert r.headers["cross-origin-resource-policy"] == "same-origin"
    assert r.headers["cross-origin-opener-policy"] == "same-origin"


def test_search_takes_json_only_as_application_json(client: TestClient) -> None:
    body = b'{"query": "a dog"}'
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": kind} if kind else {}
        assert "application/json" in _error(client.post("/api/v1/search", content=body, headers=headers), 415)
    ok = client.post("/api/v1/search", content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_token_link_redirects_only_to_this_server(library: Path) -> None:
    app = create_app(ServeConfig(library=library, host="0.0.0.0", token="s3cret-token"))
    with TestClient(app, base_url="http://192.0.2.10:8700") as c:
        for path in ("//evil.example/x", "/\\evil.example/x", "///evil.example"):
            r = c.get(f"{path}?token=s3cret-token", follow_redirects=False)
            assert r.status_code == 303
            location = r.headers["location"]
            assert location.startswith("/") and not location.startswith(("//", "/\\")), location


def test_folder_filter_matches_whole_names_relative_to_the_library(client: TestClient) -> None:
    def names(prefix: str) -> set[str]:
        return {r["video"]["name"] for r in _search(client, query="x", k=100, path_prefix=prefix)["results"]}

    assert names("sub") == {"sub/a.mp4"}
    assert names("sub/") == names("./sub") == {"sub/a.mp4"}
    assert names("sub0") == {"sub0/a.mp4"}
    assert names("su") == set()
    assert names("sub/a.mp4") == set()  # a folder, not a file name
    # absolute prefixes would tell a client which folders exist on the server: refused, whatever they are
    for prefix in ("/", "/tmp", "/nonexistent", "../..", "sub/../.."):
        msg = _error(client.post("/api/v1/search", json={"query": "x", "path_prefix": prefix}), 400)
        assert "path_prefix" in msg and "relative" in msg or "inside" in msg


def test_frame_cache_quantizes_times_and_stays_under_its_cap(library: Path, tmp_path: Path) -> None:
    ids = _ids(library)
    config = ServeConfig(library=library, frame_cache_bytes=20_000)
    with TestClient(create_app(config), base_url=BASE) as c:
        cache = c.app.state.serve.frames
        cache.root = tmp_path / "frames"  # an empty cache of its own
        cache._bytes = 0
        long = ids["long.mp4"]
        decoded = frames.decode_count()
        for ms in range(2001, 2041):  # 40 strip URLs a few ms apart: one image
            assert c.get(f"/strips/{long}-{ms}-{ms + 3000}.jpg").status_code == 200
        assert frames.decode_count() - decoded == 1
        assert len(list(cache.root.rglob("*.jpg"))) == 1
        for ms in range(0, 11000, 250):  # many distinct stills: the oldest are evicted
            assert c.get(f"/thumbs/{long}/{ms}.jpg").status_code == 200
        on_disk = sum(p.stat().st_size for p in cache.root.rglob("*.jpg"))
        assert on_disk <= 20_000 and cache.size() == on_disk
        assert len(list(cache.root.rglob("*.jpg"))) >= 2


def test_a_full_disk_serves_stills_uncached(
    client: TestClient, library: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(frames, "atomic_write", full)
    vid = _ids(library)["long.mp4"]
    with caplog.at_level(logging.WARNING):
        r = client.get(f"/thumbs/{vid}/7777.jpg")
        strip = client.get(f"/strips/{vid}-5000-8000.jpg")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    assert strip.status_code == 200 and strip.content[:2] == b"\xff\xd8"
    assert "uncached" in caplog.text


# --------------------------------------------------------- inputs that were 500s


@pytest.mark.parametrize(
    "body",
    [
        {"clip": {"video_id": 1e20, "start": 0, "end": 1}},
        {"clip": {"video_id": 10**20, "start": 0, "end": 1}},
        {"clip": {"video_id": 1, "start": 0, "end": float("inf")}},
        {"query": "x", "indexed_after": "0001-01-01T00:00:00+01:00"},
        {"query": "x", "indexed_after": "9999-12-31T23:59:59-01:00"},
        {"query": "x", "min_duration": float("nan")},
    ],
)
def test_bad_search_bodies_are_400s(client: TestClient, body: dict) -> None:
    import json

    raw = json.dumps(body).encode()  # NaN and Infinity as Python's json writes them
    _error(client.post("/api/v1/search", content=raw, headers={"Content-Type": "application/json"}), 400)


def test_cursor_overflow_deep_json_and_non_ascii_digits_are_one_line_errors(client: TestClient) -> None:
    import base64

    bad_cursor = base64.urlsafe_b64encode(b'{"o": Infinity, "f": "x"}').decode()
    _error(client.post("/api/v1/search", json={"query": "x", "cursor": bad_cursor}), 400)
    deep = b"[" * 5000 + b"]" * 5000
    _error(client.post("/api/v1/search", content=deep, headers={"Content-Type": "application/json"}), 400)
    deep_obj = b'{"query": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    _error(client.post("/api/v1/search", content=deep_obj, headers={"Content-Type": "application/json"}), 400)
    _error(client.get("/api/v1/videos?cursor=99999999999999999999"), 400)
    _error(client.get("/api/v1/videos?cursor=²"), 400)
    for path in ("/media/²", "/thumbs/²/1000.jpg", "/api/v1/videos/²", "/api/v1/videos/²/actors", "/strips/²-0-1.jpg"):
        _error(client.get(path), 404)
    _error(client.get("/thumbs/1/٣.jpg"), 404)  # Arabic-Indic digits are no ms either
    assert client.get("/api/v1/health").status_code == 200  # the server is still fine


# ------------------------------------------------------------------- the serve process


def test_wildcard_bind_answers_ipv4_and_ipv6_and_sigterm_exits_143(library: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from conftest import default_sigint

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "vidsearch.cli", "serve", "--library", str(library), "--host", "::"]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--token", "auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        answers = {}
        for address in ("127.0.0.1", "[::1]"):
            while True:
                assert proc.poll() is None, proc.communicate()
                try:
                    answers[address] = httpx.get(f"http://{address}:{port}/api/v1/health", timeout=5).status_code
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, f"the server did not answer on {address}"
                    time.sleep(0.2)
        assert answers == {"127.0.0.1": 401, "[::1]": 401}  # both families reach it; the token guards both
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "stopped" in out and "Traceback" not in err


# ------------------------------------------------------------------------------ fuzzing

from urllib.parse import quote, urlencode  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e20, 1e308, 5e-324, 2**63, 2**63 - 1]),
)
_text = st.text(max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | _numbers | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_dates = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30", "now", ""]),
)
_fields = {
    "query": st.one_of(_text, _json),
    "clip": st.one_of(
        _json,
        st.fixed_dictionaries({"video_id": _numbers, "start": _numbers, "end": _numbers}),
    ),
    "k": _numbers,
    "cursor": st.one_of(_text, _json),
    "min_score": _numbers,
    "group_by": st.one_of(st.sampled_from(["video", "moment"]), _json),
    "path_prefix": st.one_of(_text, st.sampled_from(["/", "..", "sub", "sub/", "/etc", "./sub0"])),
    "min_duration": _numbers,
    "max_duration": _numbers,
    "label": _text,
    "label_set": _text,
    "indexed_after": st.one_of(_dates, _json),
}
_bodies = st.one_of(
    _json,
    st.fixed_dictionaries({}, optional=_fields),
    st.fixed_dictionaries({"query": st.just("a dog")}, optional={k: v for k, v in _fields.items() if k != "query"}),
)


def _sane(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]


@FUZZ
@given(body=_bodies)
def test_fuzz_search_bodies(client: TestClient, body: object) -> None:
    import json

    raw = json.dumps(body).encode()  # NaN and Infinity included, as a hostile client may send them
    _sane(client.post("/api/v1/search", content=raw, headers={"Content-Type": "application/json"}))


@FUZZ
@given(
    segment=st.one_of(_text, _numbers.map(str), st.sampled_from(["²", "٣", "1e3", "0x1f", "-1", "..", "%2e%2e"])),
    other=_text,
    query=st.dictionaries(
        st.sampled_from(["k", "cursor", "limit", "w", "v", "min_score", "group_by", "start", "end"]), _text
    ),
)
def test_fuzz_path_ids_and_query_strings(client: TestClient, segment: str, other: str, query: dict) -> None:
    seg, oth = quote(segment, safe=""), quote(other, safe="")
    qs = "?" + urlencode(query) if query else ""
    for path in (
        f"/media/{seg}",
        f"/thumbs/{seg}/{oth}.jpg",
        f"/thumbs/1/{seg}.jpg",
        f"/strips/{seg}.jpg",
        f"/api/v1/videos/{seg}",
        f"/api/v1/videos/{seg}/actors",
        f"/api/v1/moments/{seg}/similar",
        f"/api/v1/moments/{seg}/clip.mp4",
        "/api/v1/videos",
    ):
        _sane(client.get(path + qs))
