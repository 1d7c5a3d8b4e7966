"""Clips of the library's moments: a span of an indexed video, or of a watched stream's recording.

Front ends (``vidsearch clip``, the web page's "Download clip") ask here. A file's span is cut
from the file (:func:`vidsearch.media.clip.cut_clip`); a stream's moment (its times are UTC
seconds) is copied out of the stream's recording segments, then cut from that copy the same way,
so both start on the frame at the span start.
"""

from __future__ import annotations

import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from vidsearch.media.clip import Clip, cut_clip
from vidsearch.media.recorder import RECORDINGS_DIR, cut_recording, recordings_folder, segment_start, segments_in
from vidsearch.media.uri import redact_uri
from vidsearch.store import sources as stored_sources
from vidsearch.store.alerts import stream_names
from vidsearch.store.library import Library
from vidsearch.usecases.videos import NotFound, VideoRecord, indexed_video

__all__ = [
    "MAX_CLIP_SECONDS",
    "clip_name",
    "cut_moment",
    "is_stream",
    "moment_video",
    "recorded_since",
    "stream_recordings",
]

MAX_CLIP_SECONDS = 600.0  # one clip cuts at most this much (re-encoding costs CPU time)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def moment_video(library: Library, video_id: int) -> VideoRecord:
    """The indexed video (or stream) a moment belongs to.

    Raises:
        NotFound: no such indexed video.
    """
    return indexed_video(library, video_id)


def is_stream(record: VideoRecord) -> bool:
    """Whether the row is a watched stream (no file size; its times are UTC seconds)."""
    return record.size < 0


def stream_recordings(library: Library, record: VideoRecord) -> Path | None:
    """The folder of a stream's recording segments, or None when it was not recorded.

    ``vidsearch watch`` names the folder after the stream's name, which is its URL without the
    password unless a watch named it; the name its watch recorded and those its alerts were
    stored under are tried too.
    """
    root = library.root / RECORDINGS_DIR
    with library.session() as s:
        named = stored_sources.names_by_uri(s, [record.path]).get(record.path)  # its watch's --name
        names = [redact_uri(record.path), record.path, *([named] if named else []), *stream_names(s, record.path)]
    for name in dict.fromkeys(names):
        folder = recordings_folder(root, name)
        if segments_in(folder):
            return folder
    return None


def recorded_since(library: Library, record: VideoRecord) -> float | None:
    """When a stream's kept recording begins (UTC seconds), or None when none is kept.

    A clip of the stream starts no earlier (older segments are deleted as the recording goes on).
    """
    folder = stream_recordings(library, record)
    segments = segments_in(folder) if folder is not None else []
    return segment_start(segments[0]) if segments else None  # pruned meanwhile: none left


def _shown(uri: str) -> str:
    """A stream's address without its password (``rtsp://user:secret@cam/live`` -> ``cam/live``)."""
    parts = urlsplit(uri)
    return f"{parts.hostname or ''}{parts.path}" if "://" in uri else uri


def clip_name(record: VideoRecord, start: float, end: float) -> str:
    """A download name for a clip: the video's name and the span, in safe ASCII (``beach_12.5-17s.mp4``)."""
    if is_stream(record):
        when = datetime.fromtimestamp(start, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        span = f"{when}_{end - start:g}s"
        stem = _shown(record.path)
    else:
        span = f"{start:.3f}".rstrip("0").rstrip(".") + "-" + f"{end:.3f}".rstrip("0").rstrip(".") + "s"
        stem = Path(record.path).stem
    stem = _UNSAFE.sub("_", stem).strip("._-")[:60] or "clip"
    return f"{stem}_{span}.mp4"


def cut_moment(library: Library, record: VideoRecord, start: float, end: float, out: Path) -> Clip:
    """Write ``[start, end]`` of an indexed video or a recorded stream to the MP4 ``out``.

    Raises:
        NotFound: a stream that was not recorded, or whose recording no longer holds that time.
        InputError: an empty span, or one past the end of the video.
        MediaError: the file cannot be read as a video.
    """
    if not is_stream(record):
        return cut_clip(record.path, start, end, out)
    folder = stream_recordings(library, record)
    if folder is None:
        raise NotFound(
            f"stream {record.id} ({_shown(record.path)}) was not recorded; watch it with recording on to keep its moments"
        )
    with tempfile.TemporaryDirectory(prefix="vidsearch-clip-") as tmp:
        recorded = cut_recording(folder, start, end, Path(tmp) / "recorded.mkv")
        if recorded is None:
            raise NotFound(f"the recording of stream {record.id} no longer holds that time (older ones are deleted)")
        copy, begins = recorded
        clip = cut_clip(copy, max(0.0, start - begins), end - begins, out)
    return Clip(clip.path, clip.start + begins, clip.end + begins, clip.copied, clip.codec, clip.audio)
