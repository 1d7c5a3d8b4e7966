"""The index runner over swappable stages: a fake decoder and encoder drive the real commit stage."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.pipeline import Stages, index_folder
from vidsearch.media import SegmentPlan, VideoInfo
from vidsearch.media.jobs import DecodedVideo, DecodeFailure
from vidsearch.store.library import Library
from vidsearch.store.vectors import VectorIndex

DIM = 4
DECODE_SLEEP = 0.05


class FakeEncoder:
    """What the runner needs of an encoder; vectors come from the swapped-in encode stage."""

    key = "fake@0"
    embed_dim = DIM
    spec = {"model": "fake"}
    num_frames = 2
    resolution = 8
    antialias = False  # the resize choice a new space records


def vector_of(path: str, segment: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{Path(path).name}/{segment}".encode()))
    x = rng.standard_normal(DIM).astype(np.float32)
    return x / np.linalg.norm(x)


class FakeDecoder:
    """Decodes nothing: every file "has" a whole-video segment and one window; `bad*` files fail."""

    def __init__(self, options: IndexOptions) -> None:
        self.options = options

    def __enter__(self) -> FakeDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, jobs):
        for job in jobs:
            time.sleep(DECODE_SLEEP)
            if Path(job.path).name.startswith("bad"):
                yield DecodeFailure(job.job_id, job.path, "cannot decode: synthetic failure")
                continue
            info = VideoInfo(job.path, 16, 8.0, 2.0, 8, 8)
            segments = [SegmentPlan("video", 0.0, 2.0, (0, 1)), SegmentPlan("window", 0.0, 1.0, (0, 1))]
            frames = np.zeros((2, 8, 8, 3), np.uint8)
            yield DecodedVideo(job.job_id, job.path, info, segments, frames, np.array([[0, 1], [0, 1]]), "fake", 0.0)


def fake_encode(encoder: object, options: IndexOptions):
    def encode(video: DecodedVideo) -> np.ndarray:
        return np.stack([vector_of(video.path, i) for i in range(len(video.segments))])

    return encode


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4", "bad.mp4"):
        (root / name).write_bytes(name.encode() * 100)
    return root


def test_swapped_stages_commit_through_the_store(folder: Path, tmp_path: Path) -> None:
    stages = Stages(decode=FakeDecoder, encode=fake_encode)
    with Library.open(tmp_path / "lib") as library:
        report = index_folder(library, folder, IndexOptions(batch_size=3), encoder=FakeEncoder(), stages=stages)
        assert (report.added, report.segments) == (3, 6)
        assert [Path(p).name for p, _ in report.failed] == ["bad.mp4"]
        assert report.stage_seconds["decode"] >= 4 * DECODE_SLEEP  # the fake decoder's sleeps are counted there
        assert report.stage_seconds["encode"] < report.stage_seconds["decode"]
        space = library.space()
        ids, xb = library.load_vectors(space.id)
        infos = library.segment_infos(ids)
        for sid, x in zip(ids, xb, strict=False):
            info = infos[int(sid)]
            assert np.array_equal(x, vector_of(info.path, 0 if info.kind == "video" else 1))
        index = library.vector_index(space)
        assert np.array_equal(np.sort(index.ids()), ids)
        assert library.failures() == {
            str(folder / "bad.mp4"): "cannot decode: synthetic failure (with --window 8 --stride 4)"
        }  # the options it failed under
        again = index_folder(library, folder, IndexOptions(batch_size=3), encoder=FakeEncoder(), stages=stages)
        assert (again.added, again.unchanged, again.failed_unchanged) == (0, 3, 1)


def test_commit_stage_is_closed_after_an_error(folder: Path, tmp_path: Path) -> None:
    """An encoder that fails mid-run: what was committed stays, and the index file is saved."""
    calls: list[str] = []

    def failing_encode(encoder: object, options: IndexOptions):
        def encode(video: DecodedVideo) -> np.ndarray:
            if calls:
                raise RuntimeError("encoder broke")
            calls.append(video.path)
            return np.stack([vector_of(video.path, i) for i in range(len(video.segments))])

        return encode

    with Library.open(tmp_path / "lib") as library:
        with pytest.raises(RuntimeError, match="encoder broke"):
            index_folder(
                library,
                folder,
                IndexOptions(batch_size=1),
                encoder=FakeEncoder(),
                stages=Stages(decode=FakeDecoder, encode=failing_encode),
            )
        space = library.space()
        assert len(library.segment_ids(space.id)) == 2
        header = VectorIndex.read_header(library.index_path(space.id))
        assert header["ntotal"] == 2 and header["meta"]["generation"] == library.generation(space.id)
