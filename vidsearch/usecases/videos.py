"""What front ends ask about the library's videos: one by id, a page of them, names, counts.

Front ends (the web server) never read the store's tables or its catalog module themselves; they
ask here. A video that is not indexed (failed, removed) does not exist for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from vidsearch.errors import VidsearchError
from vidsearch.store import catalog
from vidsearch.store.catalog import VideoRecord
from vidsearch.store.library import Library
from vidsearch.store.schema import VideoStatus

__all__ = [
    "NotFound",
    "VideoRecord",
    "indexed_video",
    "indexed_videos",
    "videos_page",
    "videos_where",
    "library_root",
    "library_status",
]


class NotFound(VidsearchError):
    """An id that names nothing in the library (the web server answers it with 404)."""


def indexed_video(library: Library, video_id: int) -> VideoRecord:
    """The indexed video with ``video_id``.

    Raises:
        NotFound: no such video, or it is not indexed (failed, removed).
    """
    record = catalog.get_video(library, video_id)
    if record is None or record.status != VideoStatus.INDEXED:
        raise NotFound(f"no video {video_id} in the library")
    return record


def indexed_videos(library: Library, video_ids: Sequence[int]) -> dict[int, VideoRecord]:
    """Video id -> record of those of ``video_ids`` that the library still has (one query)."""
    return catalog.get_videos(library, video_ids)


def videos_page(library: Library, after: int = 0, limit: int = 50) -> list[VideoRecord]:
    """Up to ``limit`` indexed videos with ids above ``after``, by id (stable under inserts)."""
    return catalog.list_videos(library, after=after, limit=limit)


def videos_where(library: Library, folder: str | None = None, indexed_after: datetime | None = None) -> set[int]:
    """Ids of the indexed videos under ``folder`` (relative to :func:`library_root`) indexed since a time."""
    return catalog.video_ids(library, folder, indexed_after, root=library_root(library) if folder else None)


def library_root(library: Library) -> str | None:
    """The deepest folder holding every indexed video (names are shown relative to it); None when empty."""
    return catalog.common_root(library)


def library_status(library: Library) -> dict[str, Any]:
    """Counts of the library and whether an index run is writing to it now."""
    stats = library.stats()
    return {
        "indexing": catalog.writer_active(library),
        "videos": stats["videos_indexed"],
        "failed": stats["videos_failed"],
        "segments": catalog.segment_count(library),
        "hours": stats["hours_indexed"],
    }
