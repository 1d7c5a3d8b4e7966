"""The actor pipeline end to end on synthetic shape videos with the tiny random-weight ViCLIP:
tubes from ground-truth tracks and from a detector, crops that frame the actor, storage per
video (``enrich actors``, ``vidsearch labels``), ``localize --boxes`` and ``bench ava``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.enrich.actors import ActorConfig, clip_times, keyframe_times, localize_actors, track_video
from vidsearch.errors import InputError
from vidsearch.media.pool import DecodePool
from vidsearch.models import EncoderSpec, open_encoder
from vidsearch.testing.synthetic import COLOURS
from vidsearch.testing.synthetic_actors import ActorClipSpec, make_actor_dataset
from vidsearch.tubes import tubes_from_tracks

runner = CliRunner()
SPEC = ActorClipSpec(seconds=4)


class ColourDetector:
    """A detector for the synthetic videos: one box per shape colour present (a test double of
    the Detector protocol that finds what the generator drew)."""

    name = "colour"
    threshold = 0.5

    def detect(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for f in frames.astype(np.int32):
            boxes = []
            for rgb in COLOURS.values():
                mask = np.abs(f - np.asarray(rgb)).max(axis=2) < 40
                if mask.sum() >= 6:
                    ys, xs = np.nonzero(mask)
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            b = np.asarray(boxes, np.float32).reshape(-1, 4)
            out.append((b, np.full(len(b), 0.9, np.float32)))
        return out


class Recorder:
    """Wraps an encoder and keeps every clip it encodes."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.clips: list[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_video(self, frames):
        self.clips.extend(np.asarray(frames))
        return self.encoder.encode_video(frames)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_actor_dataset(tmp_path_factory.mktemp("actors"), videos=2, seed=3, spec=SPEC)


@pytest.fixture(scope="module")
def encoder(tiny_checkpoint: Path):
    return open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))


def gt_rows(data: dict[str, Path], video: str) -> list[list[str]]:
    return [r for r in csv.reader(open(data["annotations"])) if r[0] == video]


def test_keyframes_and_clip_times() -> None:
    assert keyframe_times(4.0) == [1.0, 2.0, 3.0]
    assert keyframe_times(4.5, 2.0) == [2.0, 4.0]
    assert keyframe_times(0.6) == [0.3]
    assert clip_times(2.0, 2.0, 4) == pytest.approx((1.25, 1.75, 2.25, 2.75))


def test_ground_truth_tubes_are_cropped_around_their_shape(data: dict[str, Path], encoder) -> None:
    rows = gt_rows(data, "actors_0000")
    tracks: dict[str, list] = {}
    for r in rows:
        tracks.setdefault(r[7], []).append((float(r[1]), np.asarray([float(v) for v in r[2:6]], np.float32)))
    tubes = tubes_from_tracks(tracks)
    rec = Recorder(encoder)
    config = ActorConfig(margin=0.1, detect_size=160)
    with DecodePool(workers=1) as pool:
        info, out = track_video(
            data["videos"] / "actors_0000.mp4", rec, None, config, pool, tubes=tubes, normalized=True
        )
    assert (info.width, info.height) == (SPEC.size, SPEC.size)
    assert len(out) == 2  # two shapes in an even-numbered video
    assert len(rec.clips) == sum(len(t.times) for t in out) == 6
    for tr in out:
        assert tr.xb.shape == (3, encoder.embed_dim)
        np.testing.assert_allclose(np.linalg.norm(tr.xb, axis=1), 1.0, atol=1e-4)
        assert tr.boxes.min() >= 0.0 and tr.boxes.max() <= 1.0
    for clip in rec.clips:
        assert clip.shape == (encoder.num_frames, encoder.resolution, encoder.resolution, 3)
        # the crop's centre region shows a saturated shape pixel at some frame (the shape is in it)
        c = clip[:, 8:-8, 8:-8].astype(int)
        assert (c.max(axis=3) - c.min(axis=3)).max() > 120


def test_detected_tubes_follow_the_shapes(data: dict[str, Path], encoder) -> None:
    config = ActorConfig(margin=0.1, detect_size=160)
    with DecodePool(workers=1) as pool:
        _, out = track_video(data["videos"] / "actors_0001.mp4", encoder, ColourDetector(), config, pool)
    rows = gt_rows(data, "actors_0001")
    assert len(out) == 3  # three shapes in an odd-numbered video, each one tube over 3 keyframes
    truth = {(float(r[1]), tuple(round(float(v), 2) for v in r[2:6])) for r in rows}
    for tr in out:
        assert tr.times == [1.0, 2.0, 3.0]
        for t, b in zip(tr.times, tr.boxes, strict=False):
            near = [g for tt, g in truth if tt == t and max(abs(np.asarray(g) - b)) < 0.03]
            assert near, (t, b)


def test_localize_actors_returns_box_tracks(data: dict[str, Path], encoder) -> None:
    hits = localize_actors(
        data["videos"] / "actors_0001.mp4",
        "a red circle moving left",
        encoder,
        ColourDetector(),
        ActorConfig(margin=0.1, detect_size=160),
        top=2,
    )
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    d = hits[0].to_dict()
    assert d["start"] == 1.0 and d["end"] == 3.0 and len(d["boxes"]) == 3 and len(d["boxes"][0]["box"]) == 4


def test_enrich_actors_stores_tubes_and_labels_shows_them(
    data: dict[str, Path], encoder, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from vidsearch.enrich.actors_library import enrich_actors, video_actors
    from vidsearch.store.library import Library

    lib_dir = tmp_path / "lib"
    res = runner.invoke(
        app,
        [
            "index",
            str(data["videos"]),
            "--library",
            str(lib_dir),
            "--model",
            str(tiny_checkpoint),
            "--workers",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stdout
    labels = tmp_path / "dirs.txt"
    labels.write_text("left\nright\nup\ndown\n")
    config = ActorConfig(margin=0.1, detect_size=160, top=2)
    with Library.open(lib_dir) as lib:
        rep = enrich_actors(lib, labels, config=config, detector=ColourDetector(), encoder=encoder)
        assert (rep.scanned, rep.tubes, rep.already, rep.failed) == (2, 5, 0, {})
        again = enrich_actors(lib, labels, config=config, detector=ColourDetector(), encoder=encoder)
        assert (again.scanned, again.already) == (0, 2)  # done videos are kept
        info = video_actors(lib, data["videos"] / "actors_0001.mp4")
    (scan,) = info["scans"]
    assert scan["detector"] == "colour@0.5" and scan["keyframes"] == 3 and len(scan["tubes"]) == 3
    tube = scan["tubes"][0]
    assert len(tube["labels"]) == 2 and tube["labels"][0]["label"] in ("left", "right", "up", "down")
    assert [b["t"] for b in tube["boxes"]] == [1.0, 2.0, 3.0] and all(b["detected"] for b in tube["boxes"])
    res = runner.invoke(app, ["labels", str(data["videos"] / "actors_0001.mp4"), "--library", str(lib_dir)])
    assert res.exit_code == 0, res.stdout
    assert "3 tubes over 3 keyframes" in res.stdout and "tube 2" in res.stdout
    res = runner.invoke(app, ["labels", str(data["videos"] / "actors_0001.mp4"), "--library", str(lib_dir), "--json"])
    assert json.loads(res.stdout)["actors"][0]["tubes"][1]["track"] == 1


def test_bench_ava_with_ground_truth_boxes(data: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "ava.json"
    res = runner.invoke(
        app,
        [
            "bench",
            "ava",
            "--annotations",
            str(data["annotations"]),
            "--videos",
            str(data["videos"]),
            "--labels",
            str(data["labels"]),
            "--boxes",
            "gt",
            "--templates",
            str(data["templates"]),
            "--margin",
            "0.1",
            "--detect-size",
            "160",
            "--model",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.stdout
    results = json.loads(out.read_text())
    assert results["model"]["precision"] == "fp32" and results["model"]["key"].startswith(
        "viclip-custom"
    )  # what ran, as every bench says
    m = results["metrics"]
    assert m["videos"] == 2 and m["keyframes"] == 6 and m["detections"] == 15  # 2 + 3 shapes at 3 keyframes
    assert sum(m["positives"].values()) == 15 and set(m["ap"]) == {"left", "right", "up", "down"}
    assert 0.0 <= m["frame_mAP"] <= 1.0
    with pytest.raises(InputError, match="--boxes must be one of gt, detect"):
        runner.invoke(
            app,
            [
                "bench",
                "ava",
                "--annotations",
                str(data["annotations"]),
                "--videos",
                str(data["videos"]),
                "--labels",
                str(data["labels"]),
                "--boxes",
                "maybe",
                "--model",
                str(tiny_checkpoint),
            ],
            catch_exceptions=False,
        )
