"""Videos: one row per scanned file, its identity on disk, what decoding found, its status."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from vidsearch.store.chunks import chunked
from vidsearch.store.schema import Segment, Video, VideoStatus
from vidsearch.store.segments import drop_segments
from vidsearch.store.spaces import bump_generation

__all__ = [
    "KNOWN_COLUMNS",
    "KnownVideo",
    "Snapshot",
    "VideoRef",
    "snapshot",
    "upsert_video",
    "mark_failed",
    "mark_indexed",
    "relocate_videos",
    "remove_videos",
    "video_ids_under",
    "videos_under",
    "find_video",
    "failures",
    "status_counts",
    "hours_indexed",
]


@dataclass(frozen=True)
class KnownVideo:
    """A video row as the scan diff sees it."""

    id: int
    path: str
    size: int
    mtime_ns: int
    fingerprint: str
    status: str
    error: str | None = None  # the one-line reason of a failed video
    # The options a failed video failed under (JSON); None: they played no part (unreadable file).
    failed_options: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        """Whether the last attempt to index it failed."""
        return self.status == VideoStatus.FAILED

    @property
    def live(self) -> bool:
        """Whether the row is a watched stream's: it has no file size, and its segment times are UTC seconds."""
        return self.size < 0 or "://" in self.path


@dataclass
class Snapshot:
    """Every video of the library, and which of them have segments in one space."""

    videos: list[KnownVideo] = field(default_factory=list)
    in_space: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class VideoRef:
    """Id, path and duration of a video."""

    id: int
    path: str
    duration: float | None


# The columns of a KnownVideo, in its fields' order (VideoRecord's begin with them too).
KNOWN_COLUMNS = (
    Video.id,
    Video.path,
    Video.size,
    Video.mtime_ns,
    Video.fingerprint,
    Video.status,
    Video.error,
    Video.failed_options,
)


def snapshot(s: Session, space_id: int | None) -> Snapshot:
    """The state an index run diffs a scan against (see ``vidsearch.indexer.scan``)."""
    rows = s.execute(select(*KNOWN_COLUMNS)).all()
    in_space: set[int] = set()
    if space_id is not None:
        in_space = {
            int(v) for v in s.scalars(select(Segment.video_id).where(Segment.space_id == space_id).distinct()).all()
        }
    return Snapshot([KnownVideo(*r) for r in rows], in_space)


def upsert_video(s: Session, path: str, keep_segments: bool = False) -> tuple[Video, list[tuple[int, int]]]:
    """The row of ``path``, created when missing; an existing row loses its (now stale) segments.

    ``keep_segments``: a live stream's row, whose windows accumulate, keeps them.

    Returns:
        ``(row, dropped)``: ``dropped`` lists the deleted segments as ``(space id, segment id)``.
    """
    row = s.scalar(select(Video).where(Video.path == path))
    if row is None:
        row = Video(path=path)
        s.add(row)
        return row, []
    return row, [] if keep_segments else drop_segments(s, row.id)


def mark_failed(
    s: Session,
    path: str,
    *,
    size: int,
    mtime_ns: int,
    fingerprint: str,
    reason: str,
    options: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """Record that ``path`` could not be indexed; its old segments are dropped.

    ``options`` are the options it failed under (None: none played a part).

    Returns:
        The dropped segments as ``(space id, segment id)``.
    """
    row, dropped = upsert_video(s, path)
    row.size, row.mtime_ns, row.fingerprint = size, mtime_ns, fingerprint
    row.status, row.error, row.failed_options = VideoStatus.FAILED, reason, options
    return dropped


def mark_indexed(
    s: Session,
    path: str,
    *,
    size: int,
    mtime_ns: int,
    fingerprint: str | None,
    reader: str | None,
    info: Any,
    compute_fingerprint: Callable[[], str] | None = None,
    append: bool = False,
) -> tuple[int, list[tuple[int, int]]]:
    """Record that ``path`` decoded; its old segments are dropped (the caller adds the new ones).

    ``append``: keep the old segments (a live stream's new windows add to its earlier ones).

    Args:
        fingerprint: the content fingerprint; None keeps the row's.
        info: what probing found (``duration``, ``fps``, ``num_frames``, ``width``, ``height``,
            and ``codec`` where known).
        compute_fingerprint: called when neither ``fingerprint`` nor the row has one.

    Returns:
        ``(video id, dropped segments as (space id, segment id))``.
    """
    row, dropped = upsert_video(s, path, keep_segments=append)
    fp = fingerprint or row.fingerprint or (compute_fingerprint() if compute_fingerprint is not None else "")
    row.size, row.mtime_ns, row.fingerprint = size, mtime_ns, fp
    row.status, row.error, row.failed_options, row.reader = VideoStatus.INDEXED, None, None, reader
    row.duration, row.fps, row.num_frames = info.duration, info.fps, info.num_frames
    row.width, row.height = info.width, info.height
    row.codec = getattr(info, "codec", "") or None  # "" (unknown) is stored as NULL
    s.flush()
    return row.id, dropped


def relocate_videos(s: Session, moves: Sequence[tuple[int, str, int, int]]) -> None:
    """Point videos at a new path/size/mtime: ``(video id, path, size, mtime_ns)`` each."""
    for vid, path, size, mtime_ns in moves:
        s.execute(update(Video).where(Video.id == vid).values(path=path, size=size, mtime_ns=mtime_ns))


def remove_videos(s: Session, video_ids: Sequence[int]) -> int:
    """Delete videos (segments, vectors and labels go with them); bump the affected spaces."""
    ids = [int(i) for i in video_ids]
    for part in chunked(ids):
        bump_generation(s, s.scalars(select(Segment.space_id).where(Segment.video_id.in_(part)).distinct()).all())
        s.execute(delete(Video).where(Video.id.in_(part)))
    return len(ids)


def videos_under(s: Session, targets: Sequence[str]) -> list[tuple[int, str]]:
    """``(id, path)`` of the videos whose path is one of ``targets`` or lies in a folder among them, by path."""
    prefixes = [t.rstrip(os.sep) + os.sep for t in targets]
    rows = s.execute(select(Video.id, Video.path).order_by(Video.path)).all()
    return [(int(vid), path) for vid, path in rows if path in targets or any(path.startswith(p) for p in prefixes)]


def video_ids_under(s: Session, targets: Sequence[str]) -> list[int]:
    """Ids of the videos whose path is one of ``targets`` or lies in a folder among them."""
    return [vid for vid, _ in videos_under(s, targets)]


def find_video(s: Session, path: str) -> VideoRef | None:
    """The video stored under exactly ``path``, if any."""
    row = s.execute(select(Video.id, Video.path, Video.duration).where(Video.path == path)).first()
    return VideoRef(int(row.id), row.path, row.duration) if row else None


def failures(s: Session) -> list[tuple[str, str]]:
    """``(path, one-line reason)`` of every failed video, by path."""
    rows = s.execute(
        select(Video.path, Video.error).where(Video.status == VideoStatus.FAILED).order_by(Video.path)
    ).all()
    return [(p, e or "failed") for p, e in rows]


def status_counts(s: Session) -> dict[str, int]:
    """Videos per status."""
    return {k: int(v) for k, v in s.execute(select(Video.status, func.count()).group_by(Video.status)).all()}


def hours_indexed(s: Session) -> float:
    """Total duration of the indexed videos, in hours."""
    total = s.scalar(select(func.coalesce(func.sum(Video.duration), 0.0)).where(Video.status == VideoStatus.INDEXED))
    return float(total or 0.0) / 3600.0
