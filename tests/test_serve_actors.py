"""`GET /api/v1/videos/{id}/actors`: the person tubes of ``vidsearch enrich actors`` over HTTP.

The library is made the real way: synthetic actor videos (shapes moving in different directions,
with their ground-truth box tracks) indexed with the tiny random-weight ViCLIP, then scanned by
``enrich_actors`` with the colour detector of ``tests/test_actors.py``; one more scan is stored
through the store API with a label a user could have typed into a label file (HTML in it).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e .[serve,dev]")
pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

import videogen  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_actors import ColourDetector  # noqa: E402

from vidsearch.enrich.actors import ActorConfig  # noqa: E402
from vidsearch.enrich.actors_library import enrich_actors  # noqa: E402
from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.serve.app import create_app  # noqa: E402
from vidsearch.serve.service import ServeConfig  # noqa: E402
from vidsearch.store import actors as stored  # noqa: E402
from vidsearch.store.catalog import list_videos  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402
from vidsearch.testing.synthetic import encode_video  # noqa: E402
from vidsearch.testing.synthetic_actors import ActorClipSpec, make_actor_dataset  # noqa: E402

BASE = "http://127.0.0.1:8700"
HOSTILE = '<img src=x onerror="alert(1)"> & wave'


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict:
    root = tmp_path_factory.mktemp("serve-actors")
    data = make_actor_dataset(root / "data", videos=2, seed=5, spec=ActorClipSpec(seconds=4))
    encode_video(data["videos"] / "nobody.mp4", np.full((24, 64, 96, 3), 128, np.uint8), fps=8)  # grey: no shape in it
    lib_dir = root / "lib"
    labels = root / "dirs.txt"
    labels.write_text("left\nright\nup\ndown\n")
    with Library.open(lib_dir) as lib:
        report = index_folder(lib, data["videos"], IndexOptions(model=str(tiny_checkpoint), workers=1))
        assert not report.failed, report.failed
        rep = enrich_actors(
            lib, labels, config=ActorConfig(margin=0.1, detect_size=160, top=2), detector=ColourDetector()
        )
        assert (rep.scanned, rep.tubes, rep.failed) == (3, 5, {})  # 2 + 3 shapes; nobody.mp4 has none
        ids = {Path(v.path).name: v.id for v in list_videos(lib)}
        space = lib.space(None)
        with lib.session() as s:  # a second label set, stored through the store API
            (seg,) = [
                g for v, g, p in stored.unscanned_videos(s, space.id, "hostile.txt") if v == ids["actors_0000.mp4"]
            ]
            box = stored.BoxRow(1.0, 0.1, 0.2, 0.3, 0.4, 0.8, HOSTILE, 0.7)
            stored.save_scan(
                s,
                seg,
                space.id,
                "hostile.txt",
                "hand",
                2,
                [
                    stored.TubeRow(
                        0,
                        1.0,
                        2.0,
                        [(HOSTILE, 0.7), ("sit", 0.3)],
                        [box, stored.BoxRow(2.0, 0.2, 0.2, 0.4, 0.4, None, "sit", 0.6)],
                    )
                ],
            )
    return {"lib": lib_dir, "ids": ids, "annotations": data["annotations"]}


@pytest.fixture(scope="module")
def client(library: dict):
    with TestClient(create_app(ServeConfig(library=library["lib"])), base_url=BASE) as c:
        yield c


def _truth(annotations: Path, video: str) -> dict[float, list[np.ndarray]]:
    out: dict[float, list[np.ndarray]] = {}
    for r in csv.reader(open(annotations)):
        if r[0] == video:
            out.setdefault(float(r[1]), []).append(np.asarray([float(v) for v in r[2:6]]))
    return out


def test_tubes_of_a_scanned_video(client: TestClient, library: dict) -> None:
    vid = library["ids"]["actors_0001.mp4"]
    r = client.get(f"/api/v1/videos/{vid}/actors")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["video_id"], body["width"], body["height"], body["coordinates"]) == (vid, 160, 160, "normalized")
    assert body["label_sets"] == ["dirs.txt"] and body["duration"] == pytest.approx(4.0, abs=0.2)
    (scan,) = body["scans"]
    assert scan["detector"] == "colour@0.5" and scan["keyframes"] == 3 and scan["space"].startswith("viclip-custom")
    assert len(scan["tubes"]) == 3  # three shapes, one tube each
    truth = _truth(library["annotations"], "actors_0001")
    for tube in scan["tubes"]:
        assert (tube["start"], tube["end"]) == (1.0, 3.0)
        assert tube["label"] == tube["labels"][0]["label"] and tube["score"] == tube["labels"][0]["score"]
        assert (
            tube["label"] in {"left", "right", "up", "down"} and 0.0 < tube["score"] <= 1.0 and len(tube["labels"]) == 2
        )
        assert [b["t"] for b in tube["boxes"]] == [1.0, 2.0, 3.0]
        for b in tube["boxes"]:
            assert b["detected"] and b["label"] in {"left", "right", "up", "down"}
            # normalized by the source frame: each box is one of the ground-truth boxes at its keyframe
            assert min(np.abs(g - np.asarray(b["box"])).max() for g in truth[b["t"]]) < 0.03, (b, truth[b["t"]])


def test_label_set_choice_order_and_raw_labels(client: TestClient, library: dict) -> None:
    vid = library["ids"]["actors_0000.mp4"]
    both = client.get(f"/api/v1/videos/{vid}/actors").json()
    assert both["label_sets"] == ["dirs.txt", "hostile.txt"]
    one = client.get(f"/api/v1/videos/{vid}/actors", params={"label_set": "hostile.txt"}).json()
    (tube,) = one["scans"][0]["tubes"]
    # JSON carries the label as stored; the page puts it in as text (tests/test_serve_browser.py)
    assert tube["label"] == HOSTILE and tube["score"] == pytest.approx(0.7)
    assert [b["detected"] for b in tube["boxes"]] == [True, False]  # the second box was bridged
    assert tube["boxes"][0]["box"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    r = client.get(f"/api/v1/videos/{vid}/actors", params={"label_set": "kinetics400"})
    assert r.status_code == 404 and "dirs.txt, hostile.txt" in r.json()["error"]
    r = client.get(f"/api/v1/videos/{vid}/actors", params={"label_set": "/etc/passwd"})
    assert r.status_code == 404 and "/etc" not in r.json()["error"]  # never a path on the server


def test_unscanned_unknown_and_detail_link(client: TestClient, library: dict) -> None:
    vid = library["ids"]["nobody.mp4"]
    body = client.get(f"/api/v1/videos/{vid}/actors").json()
    assert body["scans"][0]["tubes"] == [] and body["label_sets"] == ["dirs.txt"]  # scanned, nobody found
    detail = client.get(f"/api/v1/videos/{vid}").json()
    assert detail["actors_url"] == f"/api/v1/videos/{vid}/actors"
    for bad in ("999999", "..", "1;drop", "-1"):
        r = client.get(f"/api/v1/videos/{bad}/actors")
        assert r.status_code == 404 and set(r.json()) == {"error"}, (bad, r.text)
    assert "/api/v1/videos/{video_id}/actors" in client.get("/openapi.json").json()["paths"]


def test_a_video_never_scanned_has_no_scans(tmp_path: Path, tiny_checkpoint: Path) -> None:
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=2, fps=10, size=(64, 48))
    with Library.open(tmp_path / "lib") as lib:
        index_folder(lib, tmp_path / "v", IndexOptions(model=str(tiny_checkpoint), workers=1))
        (vid,) = [v.id for v in list_videos(lib)]
    with TestClient(create_app(ServeConfig(library=tmp_path / "lib")), base_url=BASE) as c:
        body = c.get(f"/api/v1/videos/{vid}/actors").json()
    assert body["scans"] == [] and body["label_sets"] == [] and (body["width"], body["height"]) == (64, 48)
