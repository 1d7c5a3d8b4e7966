"""What a front end shows about the library as a whole: counts, spaces, failures, a running index.

The web page's library view asks here; it never reads the store's tables or the progress file
itself. Everything returned is free of server paths except ``VideoRow.path``, which the front
end turns into a shown name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vidsearch.precision import split_key
from vidsearch.store import catalog
from vidsearch.store.library import Library
from vidsearch.store.progress import read_progress
from vidsearch.store.schema import VideoStatus
from vidsearch.store.transcripts import transcript_counts

__all__ = ["STATUSES", "VideoRow", "library_pulse", "library_spaces", "library_videos"]

# The statuses a video row can have, as the API names them.
STATUSES = (VideoStatus.INDEXED, VideoStatus.FAILED)


@dataclass(frozen=True)
class VideoRow:
    """One video of the library view: where it is, its status and (when it failed) why."""

    id: int
    path: str
    status: str
    reason: str | None
    duration: float | None
    updated_at: str | None


def library_pulse(library: Library) -> dict[str, Any]:
    """The counts that change while an index run goes, and the run's progress (cheap: polled each second).

    Returns:
        ``videos``, ``failed``, ``segments``, ``hours``, ``transcripts`` (videos with lines),
        ``indexing`` (the writer lock is held) and ``progress`` (None, or ``total``, ``done``,
        ``failed``, ``last`` file name, ``started_at``, ``updated_at`` of the running index).
    """
    stats = library.stats()
    with library.session() as s:
        said = transcript_counts(s)
    progress = read_progress(library.root)
    shown = None
    if progress is not None:
        shown = {k: v for k, v in progress.to_dict().items() if k != "pid"}
    return {
        "videos": stats["videos_indexed"],
        "failed": stats["videos_failed"],
        "segments": sum(int(sp["segments"]) for sp in stats["spaces"]),
        "hours": round(float(stats["hours_indexed"]), 3),
        "transcripts": said["videos"],
        "transcript_lines": said["lines"],
        "indexing": catalog.writer_active(library),
        "progress": shown,
    }


def library_spaces(library: Library) -> list[dict[str, Any]]:
    """Each embedding space: its key, model (a checkpoint's file name, never its folder) and precision."""
    out = []
    for entry in library.stats()["spaces"]:
        spec = entry.get("model") or {}
        model = str(spec.get("model") or entry["key"])
        if os.sep in model:  # a checkpoint path: its name says which one it is
            model = os.path.basename(model)
        out.append(
            {
                "key": entry["key"],
                "model": model,
                "precision": str(spec.get("precision") or split_key(entry["key"])[1]),
                "dim": entry["dim"],
                "videos": entry["videos"],
                "segments": entry["segments"],
                "window": (entry.get("sampling") or {}).get("window"),
                "stride": (entry.get("sampling") or {}).get("stride"),
                "index_up_to_date": entry.get("index_up_to_date"),
            }
        )
    return out


def library_videos(library: Library, status: str | None = None, after: int = 0, limit: int = 50) -> list[VideoRow]:
    """Up to ``limit`` videos of any status (or of ``status``) with ids above ``after``, by id."""
    rows = catalog.list_videos(library, after=after, limit=limit, status=status)
    return [
        VideoRow(
            id=r.id,
            path=r.path,
            status=r.status,
            reason=r.error if r.status == VideoStatus.FAILED else None,
            duration=r.duration,
            updated_at=r.updated_at.isoformat() if r.updated_at else None,
        )
        for r in rows
    ]
