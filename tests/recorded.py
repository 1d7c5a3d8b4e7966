"""A library holding two watched streams' windows, as ``vidsearch watch`` stores them: one stream
recorded (real segment files under ``<library>/recordings/``), one not."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import videogen
from test_clip import BITS, SIZE

from vidsearch.store.library import Library

RECORDED_URI, SILENT_URI = "rtsp://cam/door", "rtsp://cam/yard"


@dataclass(frozen=True)
class RecordedStreams:
    """The library, its streams' video ids by URI, and when the recording (and each window) starts."""

    library: Path
    ids: dict[str, int]
    t0: float  # UTC seconds: the first recording segment's start, and each stream's window's
    window: float = 4.0  # seconds the window (and the recording) lasts


def recorded_streams(tmp_path: Path) -> RecordedStreams:
    """Record a 4 s camera (10 fps, frame ``n`` shows number ``n``) and store a window of each stream."""
    from vidsearch.indexer.live import StreamSource
    from vidsearch.indexer.options import IndexOptions
    from vidsearch.indexer.producer import Encoded
    from vidsearch.indexer.sink import LibrarySink
    from vidsearch.media import SegmentPlan, VideoInfo
    from vidsearch.media.jobs import DecodedVideo
    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader
    from vidsearch.media.recorder import RECORDINGS_DIR, recordings_folder, segment_start, segments_in
    from vidsearch.usecases.videos import videos_page

    recorded, silent = StreamSource(RECORDED_URI, "door"), StreamSource(SILENT_URI, "yard")
    camera = videogen.write_video(tmp_path / "door.mp4", seconds=4, fps=10, size=SIZE, gop=10, bits=BITS)
    lib_dir = tmp_path / "lib"
    folder = recordings_folder(lib_dir / RECORDINGS_DIR, recorded.uri)
    LiveReader(str(camera), LiveOptions(short_side=32, record_to=folder), DropOldest(100)).run()
    t0 = segment_start(segments_in(folder)[0])
    with Library.open(lib_dir) as lib, lib.writer_lock():  # a window of each stream, as `watch` stores them
        sink = LibrarySink(lib, lib.ensure_space("fake@0", 4, {}, {}), {}, IndexOptions())
        for k, source in enumerate((recorded, silent)):
            seg = SegmentPlan("window", t0, t0 + 4, [])
            info = VideoInfo(source.uri, 40, 10.0, 4.0, SIZE[0], SIZE[1])
            video = DecodedVideo(0, source.uri, info, [seg], np.zeros(0), np.zeros((0, 0)), "pyav", 0)
            sink.add([Encoded(0, source, video, np.eye(4, dtype=np.float32)[k : k + 1])])
        sink.close(True)
        ids = {v.path: v.id for v in videos_page(lib)}
    return RecordedStreams(lib_dir, ids, t0)
