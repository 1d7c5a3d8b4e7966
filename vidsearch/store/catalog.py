"""Read-only lookups of videos for front ends (the web server): by id, paged, filtered.

Search returns video ids; a front end also needs what a video *is* (its file, size, fingerprint,
codec) to serve it safely, and listings and filters that search does not do itself. Everything
here only reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, func, or_, select

from vidsearch.errors import InputError
from vidsearch.store.chunks import bound_list
from vidsearch.store.library import Library
from vidsearch.store.locks import WRITE_LOCK, lock_held
from vidsearch.store.schema import Segment, Video, VideoStatus
from vidsearch.store.videos import KNOWN_COLUMNS, KnownVideo

__all__ = [
    "VideoRecord",
    "get_video",
    "get_videos",
    "list_videos",
    "video_ids",
    "video_ids_modified",
    "folder_parts",
    "common_root",
    "writer_active",
    "segment_count",
]


@dataclass(frozen=True)
class VideoRecord(KnownVideo):
    """A detached view of a whole :class:`~vidsearch.store.schema.Video` row (the scan's view and more)."""

    # Defaults because KnownVideo's last field (error) has one; rows always set every field.
    duration: float | None = None
    fps: float | None = None
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the time as ISO 8601)."""
        d = dict(self.__dict__)
        d["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return d


_COLUMNS = (
    *KNOWN_COLUMNS,
    Video.duration,
    Video.fps,
    Video.num_frames,
    Video.width,
    Video.height,
    Video.codec,
    Video.updated_at,
)


def _record(row: Any) -> VideoRecord:
    rec = VideoRecord(*row)
    if rec.updated_at is not None and rec.updated_at.tzinfo is None:  # SQLite drops the zone
        rec = VideoRecord(*row[:-1], rec.updated_at.replace(tzinfo=timezone.utc))
    return rec


def get_video(library: Library, video_id: int) -> VideoRecord | None:
    """The video with ``video_id`` (any status), or None when there is none."""
    with library.session() as s:
        row = s.execute(select(*_COLUMNS).where(Video.id == int(video_id))).first()
    return _record(row) if row is not None else None


_VIDEOS_BY_ID = select(*_COLUMNS).where(Video.id.in_(bound_list("ids")))


def get_videos(library: Library, video_ids: Sequence[int]) -> dict[int, VideoRecord]:
    """Video id -> record for the given ids (unknown ids are left out)."""
    out: dict[int, VideoRecord] = {}
    ids = [int(v) for v in video_ids]
    for lo in range(0, len(ids), 900):  # stay under SQLite's bound-parameter limit
        with library.session() as s:
            rows = s.execute(_VIDEOS_BY_ID, {"ids": ids[lo : lo + 900]}).all()
        out.update((r[0], _record(r)) for r in rows)
    return out


def list_videos(
    library: Library, after: int = 0, limit: int = 50, status: str | None = VideoStatus.INDEXED
) -> list[VideoRecord]:
    """Up to ``limit`` videos with ids above ``after``, by id (keyset paging: stable under inserts).

    Args:
        library: an open library.
        after: the last id of the previous page (0 for the first page).
        limit: page size.
        status: only videos with this status (None: all).
    """
    q = select(*_COLUMNS).where(Video.id > int(after)).order_by(Video.id).limit(int(limit))
    if status is not None:
        q = q.where(Video.status == status)
    with library.session() as s:
        return [_record(r) for r in s.execute(q).all()]


def folder_parts(path_prefix: str) -> tuple[str, ...]:
    """The folder names of a library-relative folder filter (``sub/clips/`` -> ``("sub", "clips")``).

    Raises:
        InputError: an absolute path or a ``..`` part: a filter names a folder inside the library,
            never a place on the server (whose layout it would otherwise let a client probe).
    """
    text = path_prefix.replace("\\", "/") if os.sep == "\\" else path_prefix
    if os.path.isabs(text) or text.startswith("/") or os.path.splitdrive(text)[0]:
        raise InputError(
            f"path_prefix {path_prefix[:60]!r} is absolute; give a folder relative to the library, like sub/clips"
        )
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InputError(
            f"path_prefix {path_prefix[:60]!r} leaves the library; give a folder inside it, like sub/clips"
        )
    return parts


def video_ids(
    library: Library, path_prefix: str | None = None, indexed_after: datetime | None = None, root: str | None = None
) -> set[int]:
    """Ids of the indexed videos inside a folder that were indexed after a time.

    Args:
        library: an open library.
        path_prefix: a folder relative to ``root`` (see :func:`folder_parts`); it matches whole
            folder names: ``sub`` holds ``sub/a.mp4``, not ``sub0/a.mp4``.
        indexed_after: only videos (re)indexed at or after this time (naive times are UTC).
        root: the folder relative prefixes start from (see :func:`common_root`).

    Raises:
        InputError: ``path_prefix`` is absolute or leaves ``root``.
    """
    q = select(Video.id).where(Video.status == VideoStatus.INDEXED)
    parts = folder_parts(path_prefix) if path_prefix else ()
    if parts:
        if root is None:  # nothing indexed: no folder holds anything
            return set()
        folder = os.path.join(root, *parts) + os.sep
        # a LIKE pattern would treat % and _ in file names as wildcards; compare the prefix itself
        q = q.where(func.substr(Video.path, 1, len(folder)) == folder)
    if indexed_after is not None:
        when = indexed_after if indexed_after.tzinfo else indexed_after.replace(tzinfo=timezone.utc)
        q = q.where(Video.updated_at >= when.astimezone(timezone.utc).replace(tzinfo=None))
    with library.session() as s:
        return {int(v) for v in s.scalars(q).all()}


def video_ids_modified(library: Library, since: float | None = None, until: float | None = None) -> set[int]:
    """Ids of the indexed videos whose file was modified in ``[since, until]`` (UTC seconds; None: open).

    Every stream is in the set: a stream has no file time, and its moments carry their own
    wall-clock times (the caller filters them by moment).
    """
    q = select(Video.id).where(Video.status == VideoStatus.INDEXED)
    dated = []
    if since is not None:
        dated.append(Video.mtime_ns >= int(since * 1e9))
    if until is not None:
        dated.append(Video.mtime_ns <= int(until * 1e9))
    if dated:
        q = q.where(or_(Video.size < 0, Video.path.contains("://"), and_(*dated)))
    with library.session() as s:
        return {int(v) for v in s.scalars(q).all()}


def common_root(library: Library) -> str | None:
    """The deepest folder that holds every indexed video file (None for a library without files).

    Streams are left out: a stream's URL (``rtsp://...``) lies in no folder.
    """
    files = (Video.status == VideoStatus.INDEXED, Video.size >= 0, ~Video.path.contains("://"))
    with library.session() as s:
        lo, hi = s.execute(select(func.min(Video.path), func.max(Video.path)).where(*files)).one()
    if lo is None:
        return None
    # every path lies between the smallest and the largest, so it shares their common folder
    return os.path.commonpath([lo, hi]) if lo != hi else os.path.dirname(lo)


def segment_count(library: Library) -> int:
    """Segments stored across every space."""
    with library.session() as s:
        return int(s.scalar(select(func.count()).select_from(Segment)) or 0)


def writer_active(library: Library) -> bool:
    """Whether an index (or remove, reindex) run is writing to the library right now.

    Probes the writer lock without taking it (see :func:`vidsearch.store.locks.lock_held`); a
    writer starting in that instant sees the lock busy, so callers should poll rarely (seconds apart).
    """
    return lock_held(library.root / WRITE_LOCK)
