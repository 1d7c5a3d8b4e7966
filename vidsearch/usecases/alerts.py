"""What front ends ask about the alerts of watched streams: the recent ones, one by its id.

The rows are written by ``vidsearch watch`` (:mod:`vidsearch.store.alerts`); the web page's
streams view reads them here, so it never opens a session of its own.
"""

from __future__ import annotations

from vidsearch.store import alerts
from vidsearch.store.alerts import StoredAlert
from vidsearch.store.library import Library

__all__ = ["StoredAlert", "find_alert", "recent_alerts"]


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
