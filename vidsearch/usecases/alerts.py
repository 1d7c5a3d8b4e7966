"""Alerts of watched streams in the library: recorded as they start and end, listed, forgotten.

``vidsearch watch`` records a row the moment an alert starts (before its line is printed, so
whoever reads the line finds the row) and completes it when the alert ends and its clip is cut.
``vidsearch alerts`` and the web page's streams view read them here (never opening a session of
their own); the watch's retention forgets old ones together with their clip files. A clip is
stored relative to the library root, so a library moved elsewhere still finds its clips.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from pathlib import Path

from vidsearch.store import alerts
from vidsearch.store.alerts import StoredAlert
from vidsearch.store.library import Library

__all__ = [
    "StoredAlert",
    "find_alert",
    "recent_alerts",
    "record_start",
    "record_end",
    "forget_alerts",
    "clip_path",
]

LOG = logging.getLogger(__name__)


def recent_alerts(
    library: Library, stream: str | None = None, since: float | None = None, limit: int = 100
) -> list[StoredAlert]:
    """The newest alerts first, of one stream (by name) or all, started at or after ``since`` (UTC s)."""
    with library.session() as s:
        return alerts.recent_alerts(s, stream=stream, since=since, limit=limit)


def find_alert(library: Library, key: str) -> StoredAlert | None:
    """The alert whose id is ``key``, or None when there is none (or retention forgot it)."""
    with library.session() as s:
        return alerts.alert_by_key(s, key)


def record_start(library: Library, alert: StoredAlert) -> None:
    """Store an alert that has just started (``end`` and ``clip`` None); a key already stored stays."""
    with library.session() as s:
        alerts.record_alert_start(s, alert)


def record_end(library: Library, key: str, end: float, peak: float, peak_time: float, clip: Path | None) -> bool:
    """Complete the alert ``key`` with its end, peak and clip file (None: no clip could be cut).

    Returns:
        False when no alert has that key (it was forgotten meanwhile).
    """
    with library.session() as s:
        return alerts.record_alert_end(s, key, end, peak, peak_time, None if clip is None else _relative(library, clip))


def forget_alerts(library: Library, uris: Sequence[str], cutoff: float, open_keys: Collection[str] = ()) -> int:
    """Delete the alerts of these streams older than ``cutoff`` (UTC s), and their clip files.

    An alert is old when it ended before ``cutoff``, or started before it and never ended (its
    watch died mid-event) unless its key is in ``open_keys`` (an event still going on).

    Returns:
        How many clip files were deleted.
    """
    with library.session() as s:
        clips = alerts.forget_alerts_before(s, uris, cutoff)
        clips += alerts.forget_unfinished_alerts_before(s, uris, cutoff, keep=open_keys)
    deleted = 0
    for clip in clips:
        path = clip_path(library, clip)
        if path is None:
            continue
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except OSError as exc:  # a clip that cannot be deleted must not stop the retention
            LOG.warning("could not delete the clip %s: %s", path, exc.strerror)
    return deleted


def clip_path(library: Library, clip: str) -> Path | None:
    """A stored clip's file (None: its path leads outside the library, which it never writes)."""
    root = library.root.resolve()
    path = (root / clip).resolve()
    return path if path.is_relative_to(root) else None


def _relative(library: Library, clip: Path) -> str:
    path, root = clip.resolve(), library.root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
