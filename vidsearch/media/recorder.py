"""Recordings of live streams: packets remuxed (never re-encoded) into rolling segment files.

Each segment is a Matroska file named by the UTC time of its first packet
(``20261207T034704.333Z.mkv``) and starts on a keyframe, so it plays from its first frame; a
new one starts at the first keyframe after ``segment_seconds``. Matroska stays playable up to
the last complete cluster when the process dies mid-write. :func:`cut_clip` copies the packets
of a time range (from the keyframe at or before its start) out of the segments into a clip file
(``.mp4``: an MP4 with ``+faststart`` that a browser plays directly; else Matroska);
:func:`prune` deletes segments older than the retention.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.media.clip import clip_output, keyframe_span

__all__ = [
    "RECORDINGS_DIR",
    "SegmentRecorder",
    "cut_clip",
    "cut_recording",
    "prune",
    "recordings_folder",
    "segment_start",
    "segments_in",
]

_STAMP = "%Y%m%dT%H%M%S"
RECORDINGS_DIR = "recordings"  # under the library: one folder per watched stream


def recordings_folder(root: Path, stream: str) -> Path:
    """Where a stream's recording segments (and ``clips/``) live under ``root``."""
    return root / (re.sub(r"[^A-Za-z0-9._-]+", "_", stream).strip("._") or "stream")


def _name(t: float) -> str:
    when = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return f"{when.strftime(_STAMP)}.{when.microsecond // 1000:03d}Z.mkv"


def segment_start(path: Path) -> float:
    """The UTC time (epoch seconds) of a segment's first packet, from its name."""
    stem = path.name.removesuffix(".mkv").removesuffix("Z")
    base, ms = stem.split(".")
    when = dt.datetime.strptime(base, _STAMP).replace(tzinfo=dt.timezone.utc)
    return when.timestamp() + int(ms) / 1000


def segments_in(folder: Path) -> list[Path]:
    """The segment files under ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*Z.mkv") if not p.name.startswith("."))


@dataclass
class _Open:
    container: Any
    stream: Any
    start: float
    first_pts: int


class SegmentRecorder:
    """Writes one input video stream's packets into rolling segment files under ``folder``.

    Args:
        folder: where the segments go (created).
        template: the input's video stream (codec parameters are copied from it).
        segment_seconds: a new file starts at the first keyframe after this long.
    """

    def __init__(self, folder: Path, template: Any, segment_seconds: float = 10.0) -> None:
        self.folder, self.template, self.segment_seconds = folder, template, segment_seconds
        folder.mkdir(parents=True, exist_ok=True)
        self._open: _Open | None = None
        self.written: list[Path] = []

    def write(self, packet: Any, wall: float) -> None:
        """Record ``packet`` (demuxed from the template's stream), shown at ``wall`` (UTC seconds)."""
        if packet.pts is None or packet.size == 0:
            return
        current = self._open
        if packet.is_keyframe and (current is None or wall - current.start >= self.segment_seconds):
            self.close()
            current = self._start(wall, packet.pts)
        if current is None:
            return  # before the first keyframe nothing could play
        dts = packet.dts if packet.dts is not None else packet.pts
        packet.pts -= current.first_pts
        packet.dts = dts - current.first_pts
        packet.stream = current.stream
        current.container.mux(packet)

    def _start(self, wall: float, first_pts: int) -> _Open:
        import av

        path = self.folder / _name(wall)
        container = av.open(str(path), "w", format="matroska")
        stream = container.add_stream_from_template(self.template)
        self._open = _Open(container, stream, wall, first_pts)
        self.written.append(path)
        return self._open

    def close(self) -> None:
        """Finish the current segment (playable to its last packet)."""
        if self._open is not None:
            self._open.container.close()
            self._open = None


def _packets(path: Path) -> Any:
    """``(wall time, packet)`` of a segment's video packets."""
    import av

    start = segment_start(path)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base or 0.001)  # Matroska's own millisecond time base
        base = None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            base = packet.pts if base is None else base
            yield start + (packet.pts - base) * tb, packet, stream


def cut_clip(folder: Path, start: float, end: float, out: Path) -> Path | None:
    """Copy the recording of ``[start, end]`` (UTC seconds) into ``out``, from the keyframe at or before ``start``.

    ``out`` ending in ``.mp4`` is an MP4 with its index up front (``+faststart``: a browser plays
    it while it downloads); any other name is Matroska. Packets are copied, never re-encoded.

    Returns:
        ``out``, or None when the recording has nothing of that time.
    """
    cut = cut_recording(folder, start, end, out)
    return None if cut is None else cut[0]


def cut_recording(folder: Path, start: float, end: float, out: Path) -> tuple[Path, float] | None:
    """:func:`cut_clip`, also saying when the clip begins: ``(out, UTC time of its first frame)``.

    That time is the keyframe's at or before ``start``: a clip cut exactly at ``start`` is then
    cut from this one (see :func:`vidsearch.media.clip.cut_clip`).
    """
    segments = [p for p in segments_in(folder) if segment_start(p) <= end]
    starts = [segment_start(p) for p in segments]
    # the last segment starting at or before `start` holds its keyframe (segments start on one)
    first = max([i for i, s in enumerate(starts) if s <= start], default=0)

    def recorded() -> Iterator[tuple[float, tuple[int, Any, Any], bool]]:
        for index, path in enumerate(segments[first:]):
            for wall, packet, istream in _packets(path):
                yield wall, (index, packet, istream), bool(packet.is_keyframe)

    mp4 = out.suffix.lower() == ".mp4"
    try:
        with clip_output(out, "mp4" if mp4 else "matroska") as clip:
            ostream = None
            base: float | None = None
            last = -1  # the latest pts written (a live segment's name is its arrival time, which jitters)
            segment, shift = -1, 0  # shift: this segment's pts -> the clip's, in the input's time base
            kept: list[Any] = []  # the clip's packets in decode order
            for wall, (index, packet, istream) in keyframe_span(recorded(), start, end):
                if ostream is None:
                    ostream = clip.add_stream_from_template(istream)
                base = wall if base is None else base
                if index != segment:  # a segment starts on a keyframe after everything before it
                    segment = index
                    shift = max(round((wall - base) / float(istream.time_base)), last + 1) - packet.pts
                # Matroska keeps no decode times (the demuxer's guesses are not monotonic with
                # B-frames): its muxer orders by the packets as they come; MP4 gets them rebuilt
                packet.pts, packet.dts = packet.pts + shift, None
                last = max(last, packet.pts)
                packet.stream = ostream
                kept.append(packet)
            if ostream is None or base is None:
                raise _NothingRecorded
            if mp4:
                _decode_times(kept)
            for packet in kept:
                clip.mux(packet)
    except _NothingRecorded:
        return None
    return out, base


def _decode_times(packets: list[Any]) -> None:
    """Give packets (decode order) decode times that MP4 accepts: strictly increasing, never after pts.

    The i-th smallest pts, moved back by the largest reordering delay of the clip (0 without B-frames).
    """
    shown = sorted(p.pts for p in packets)
    delay = max(0, *(s - p.pts for s, p in zip(shown, packets, strict=True)))
    for s, p in zip(shown, packets, strict=True):
        p.dts = s - delay


class _NothingRecorded(Exception):
    """No packet of the asked time: the clip's temporary file is dropped."""


def prune(folder: Path, older_than: float) -> list[Path]:
    """Delete segments that ended before ``older_than`` (UTC seconds); the ones deleted."""
    segments = segments_in(folder)
    gone = []
    # a segment ends where the next begins; the newest is still being written
    for path, following in zip(segments, segments[1:], strict=False):
        if segment_start(following) < older_than:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone
