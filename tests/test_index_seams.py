"""The seams of an index run: sources, a producer feeding a sink, the store's space writer,
a query's one-transaction snapshot, and Parquet staging without a cluster."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from vidsearch.indexer.options import IndexOptions, IndexReport
from vidsearch.indexer.pipeline import run_pipeline
from vidsearch.indexer.producer import Encoded, Failed, Result, Work
from vidsearch.indexer.sink import LibrarySink
from vidsearch.indexer.sources import Clock, FileSource, Source, file_source
from vidsearch.media import SegmentPlan, VideoInfo
from vidsearch.media.jobs import DecodedVideo
from vidsearch.store.library import Library
from vidsearch.store.segments import SpanRow
from vidsearch.store.vectors import VectorIndex
from vidsearch.store.vectors.fileformat import read_header
from vidsearch.store.vectors.ondisk import OnDiskVectorIndex
from vidsearch.store.vectors.protocol import SpaceIndex
from vidsearch.store.writer import FailedVideo, SpaceWriter, VideoRows

DIM = 4


def unit(seed: str) -> np.ndarray:
    x = np.random.default_rng(zlib.crc32(seed.encode())).standard_normal(DIM).astype(np.float32)
    return x / np.linalg.norm(x)


@dataclass(frozen=True)
class StreamSource:
    """A live camera as a source: an URL, no size or mtime, wall-clock times."""

    uri: str
    size: int = -1
    mtime_ns: int = 0
    clock: ClassVar[Clock] = "wall"

    def fingerprint(self) -> str:
        return ""


class WindowsProducer:
    """A producer that is not the decode pool: each source yields two 8 s windows starting at ``t0``
    (wall-clock seconds for a stream), or fails when its uri says so."""

    def __init__(self, t0: float) -> None:
        self.t0, self.entered = t0, False

    @property
    def encode_seconds(self) -> float:
        return 0.0

    def __enter__(self) -> WindowsProducer:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.entered = False

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        for item in work:
            if "offline" in item.source.uri:
                yield Failed(item.job_id, item.source, "camera offline", decoding=False)
                continue
            segments = [SegmentPlan("window", self.t0 + 8 * i, self.t0 + 8 * (i + 1), []) for i in range(2)]
            info = VideoInfo(item.source.uri, 0, 8.0, 16.0, 8, 8)
            video = DecodedVideo(item.job_id, item.source.uri, info, segments, np.zeros(0), np.zeros((0, 0)), "pyav", 0)
            vectors = np.stack([unit(f"{item.source.uri}/{i}") for i in range(2)])
            yield Encoded(item.job_id, item.source, video, vectors)


def test_a_new_source_and_producer_need_no_change_below(tmp_path: Path) -> None:
    """A live-stream-like source through a producer of its own and the library's sink."""
    t0 = 1_765_000_000.0  # wall-clock seconds
    sources: list[Source] = [
        StreamSource("rtsp://cam/1"),
        StreamSource("rtsp://cam/offline"),
        StreamSource("rtsp://cam/2"),
    ]
    assert all(isinstance(s, Source) for s in sources)
    with Library.open(tmp_path / "lib") as library, library.writer_lock():
        space = library.ensure_space("fake@0", DIM, {"model": "fake"}, {})
        report = IndexReport(space_key=space.key)
        producer = WindowsProducer(t0)
        sink = LibrarySink(library, space, {}, IndexOptions())
        run_pipeline(producer, sink, [Work(i, s) for i, s in enumerate(sources)], 1, report)
        assert (report.added, report.segments) == (2, 4) and not producer.entered
        assert report.failed == [("rtsp://cam/offline", "camera offline")]  # no decode options appended
        ids, xb = library.load_vectors(space.id)
        infos = library.segment_infos(ids)
        assert sorted({i.path for i in infos.values()}) == ["rtsp://cam/1", "rtsp://cam/2"]
        assert {(i.start, i.end) for i in infos.values()} == {(t0, t0 + 8), (t0 + 8, t0 + 16)}
        assert np.array_equal(np.sort(library.vector_index(space).ids()), ids)
        with library.session() as s:
            from vidsearch.store import videos

            failed = {v.path: v for v in videos.snapshot(s, space.id).videos if v.failed}
        assert failed["rtsp://cam/offline"].failed_options is None  # not retried for other options


def test_file_source_is_the_scan_stat(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x" * 100)
    source = file_source(str(tmp_path / "a.mp4"))
    assert isinstance(source, FileSource) and isinstance(source, Source)
    assert (source.uri, source.size, source.clock) == (str(tmp_path / "a.mp4"), 100, "media")
    assert len(source.fingerprint()) == 32
    assert file_source(str(tmp_path / "gone.mp4")) == (
        str(tmp_path / "gone.mp4"),
        "file not found (it vanished, or is a broken symlink)",
    )


def rows(uri: str, n: int) -> VideoRows:
    spans = [SpanRow("window", float(i), float(i + 1)) for i in range(n)]
    xb = np.stack([unit(f"{uri}/{i}") for i in range(n)])
    return VideoRows(uri, 10, 1, "fp-" + uri, "pyav", VideoInfo(uri, 8, 8.0, 1.0, 8, 8), spans, xb)


def test_space_writer_orders_commit_index_and_save(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as library, library.writer_lock():
        space = library.ensure_space("fake@0", DIM, {}, {})
        with SpaceWriter(library, space) as writer:
            first = writer.add([rows("/v/a.mp4", 2), rows("/v/b.mp4", 1)])
            assert np.array_equal(np.sort(writer.index.ids()), np.sort(first))
            again = writer.add([rows("/v/a.mp4", 1)])  # a re-encoded file replaces its rows
            assert set(writer.index.ids().tolist()) == set(first[2:]) | set(again)
            writer.fail(FailedVideo("/v/b.mp4", "broken", 10, 1, "fp", {"window": 8.0}))
            assert writer.index.ids().tolist() == again
        header = read_header(library.index_path(space.id))
        assert header["ntotal"] == 1 and header["meta"]["generation"] == library.generation(space.id)
        assert library.failures() == {"/v/b.mp4": "broken"}


@pytest.mark.parametrize("where", ["before the index add", "inside the index add"])
def test_interrupted_writer_saves_what_sqlite_holds(tmp_path: Path, where: str) -> None:
    """Ctrl-C between a commit and its index update: the save on the way out is whole and current."""
    with Library.open(tmp_path / "lib") as library, library.writer_lock():
        space = library.ensure_space("fake@0", DIM, {}, {})
        with SpaceWriter(library, space) as writer:
            writer.add([rows("/v/a.mp4", 1)])
        writer = SpaceWriter(library, space)
        index = writer.index
        assert isinstance(index, VectorIndex)

        def interrupt(*_: object) -> None:
            raise KeyboardInterrupt

        # "inside": the rows are in FAISS but the id map is not refreshed yet (a torn index)
        target = "add" if where == "before the index add" else "_sync_positions"
        setattr(index, target, interrupt)
        with pytest.raises(KeyboardInterrupt):
            writer.add([rows("/v/b.mp4", 2)])
        writer.close(completed=False)
        header = read_header(library.index_path(space.id))
        assert header["ntotal"] == 3 and header["meta"]["generation"] == library.generation(space.id)
    with Library.open(tmp_path / "lib") as library:
        ids = library.vector_index(library.space("fake@0")).ids()
        assert np.array_equal(np.sort(ids), library.segment_ids(space.id))  # no duplicate, none missing


def test_in_ram_and_on_disk_indexes_share_one_protocol(tmp_path: Path) -> None:
    from vidsearch.store.vectors import ondisk

    xb = np.stack([unit(str(i)) for i in range(64)])
    ids = np.arange(64, dtype=np.int64)
    ram = VectorIndex.build(ids, xb)
    disk = OnDiskVectorIndex(ondisk.build_ondisk(tmp_path / "x.ondisk", DIM, "IVF2,Flat", xb, [(ids, xb)]))
    for index in (ram, disk):
        assert isinstance(index, SpaceIndex)
        _, I = index.search(xb[:1], 1)
        assert I[0, 0] == 0


def test_a_query_snapshot_is_one_transaction(tmp_path: Path) -> None:
    """Inside snapshot() every read sees the same state, whatever commits meanwhile."""
    with Library.open(tmp_path / "lib") as library, library.writer_lock():
        space = library.ensure_space("fake@0", DIM, {}, {})
        with SpaceWriter(library, space) as writer:
            writer.add([rows("/v/a.mp4", 1)])
        before = library.generation(space.id)
        with Library.open(tmp_path / "lib", read_only=True) as reader, reader.snapshot():
            assert reader.generation(space.id) == before
            other = sqlite3.connect(library.db_path)  # another process's commit, in effect
            other.execute("UPDATE spaces SET generation = generation + 1")
            other.commit()
            other.close()
            assert reader.generation(space.id) == before  # still the snapshot's
            assert len(reader.segment_ids(space.id)) == 1
        assert library.generation(space.id) == before + 1


def test_parquet_sink_then_ingest_once(tmp_path: Path) -> None:
    """``--stage`` without a cluster: any producer can feed the Parquet sink; ingest commits once."""
    pytest.importorskip("pyarrow")
    import videogen

    from vidsearch.cluster.staging import ParquetSink, ingest, list_shards, write_stage_roots

    folder = tmp_path / "videos"
    sources = []
    for name in ("a.mp4", "offline.mp4", "b.mp4"):
        videogen.write_video(folder / name, seconds=1, fps=8, size=(32, 32))  # ingest opens what it commits
        source = file_source(str(folder / name))
        assert isinstance(source, FileSource)
        sources.append(source)
    options = IndexOptions()
    sink = ParquetSink(tmp_path / "stage", "fake@0", DIM, {"model": "fake"}, options, {}, videos_per_shard=2)
    report = IndexReport(space_key="fake@0")
    run_pipeline(WindowsProducer(0.0), sink, [Work(i, s) for i, s in enumerate(sources)], 1, report)
    assert len(list_shards(tmp_path / "stage")) == 2 and sink.videos == 3
    write_stage_roots(tmp_path / "stage", [folder])  # as `index --ray --stage` does
    with Library.open(tmp_path / "lib") as library:
        first = ingest(library, tmp_path / "stage")
        assert (first.added, first.segments, [p for p, _ in first.failed]) == (2, 4, [sources[1].uri])
        space = library.space("fake@0")
        ids = library.segment_ids(space.id)
        assert np.array_equal(np.sort(library.vector_index(space).ids()), ids) and len(ids) == 4
        second = ingest(library, tmp_path / "stage")
        # the indexed ones are not added twice; a staged failure is recorded again (as before)
        assert (second.added, second.updated, second.unchanged, len(second.failed)) == (0, 0, 2, 1)
        assert len(library.segment_ids(space.id)) == 4
