"""Alerts on disk: the rows ``vidsearch watch`` writes as events start and end on its streams.

A row is written as soon as an event is detected and completed once it ends and its clip is cut,
so a watch that dies mid-event leaves the start on record (``end`` None). Reads are for the CLI,
the web page's streams view, and retention (which deletes a stream's old rows with its recordings).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from vidsearch.store.schema import AlertRecord

__all__ = [
    "StoredAlert",
    "alert_by_key",
    "record_alert_start",
    "record_alert_end",
    "recent_alerts",
    "forget_alerts_before",
    "stream_names",
    "forget_unfinished_alerts_before",
]


@dataclass(frozen=True)
class StoredAlert:
    """One alert as stored (times UTC seconds; ``clip`` relative to the library root)."""

    key: str
    stream: str
    uri: str
    query: str
    kind: str
    threshold: float
    start: float
    score: float
    peak: float
    peak_time: float
    end: float | None = None
    clip: str | None = None


def _stored(row: AlertRecord) -> StoredAlert:
    return StoredAlert(
        row.key,
        row.stream,
        row.uri,
        row.query,
        row.kind,
        row.threshold,
        row.start,
        row.score,
        row.peak,
        row.peak_time,
        row.end,
        row.clip,
    )


def record_alert_start(session: Session, alert: StoredAlert) -> None:
    """Store an alert that has just started (a key already stored is left as it is)."""
    if session.scalar(select(AlertRecord.id).where(AlertRecord.key == alert.key)) is not None:
        return
    session.add(
        AlertRecord(
            key=alert.key,
            stream=alert.stream,
            uri=alert.uri,
            query=alert.query,
            kind=alert.kind,
            threshold=alert.threshold,
            start=alert.start,
            end=alert.end,
            score=alert.score,
            peak=alert.peak,
            peak_time=alert.peak_time,
            clip=alert.clip,
        )
    )


def record_alert_end(session: Session, key: str, end: float, peak: float, peak_time: float, clip: str | None) -> bool:
    """Complete a stored alert with its end, peak and clip; False when no alert has that key."""
    result = session.execute(
        update(AlertRecord).where(AlertRecord.key == key).values(end=end, peak=peak, peak_time=peak_time, clip=clip)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def recent_alerts(
    session: Session, stream: str | None = None, since: float | None = None, limit: int = 100
) -> list[StoredAlert]:
    """The newest alerts first, of one stream or all, started at or after ``since`` (UTC seconds)."""
    query = select(AlertRecord)
    if stream is not None:
        query = query.where(AlertRecord.stream == stream)
    if since is not None:
        query = query.where(AlertRecord.start >= since)
    rows = session.scalars(query.order_by(AlertRecord.start.desc(), AlertRecord.id.desc()).limit(limit))
    return [_stored(row) for row in rows]


def forget_alerts_before(session: Session, uris: Sequence[str], cutoff: float) -> list[str]:
    """Delete the alerts of these streams that ended before ``cutoff``; the clips they named."""
    if not uris:
        return []
    old = (AlertRecord.uri.in_(list(uris))) & (AlertRecord.end.is_not(None)) & (AlertRecord.end < cutoff)
    clips = [clip for clip in session.scalars(select(AlertRecord.clip).where(old)) if clip]
    session.execute(delete(AlertRecord).where(old))
    return clips


def stream_names(session: Session, uri: str) -> list[str]:
    """The names a stream's alerts were recorded under (a watch may name a stream other than its URL)."""
    return list(session.scalars(select(AlertRecord.stream).where(AlertRecord.uri == uri).distinct()))


def alert_by_key(session: Session, key: str) -> StoredAlert | None:
    """The alert with ``key`` (the id in the watch's JSON lines), or None."""
    row = session.scalar(select(AlertRecord).where(AlertRecord.key == key))
    return None if row is None else _stored(row)


def forget_unfinished_alerts_before(
    session: Session, uris: Sequence[str], cutoff: float, keep: Collection[str] = ()
) -> list[str]:
    """Delete the alerts of these streams that started before ``cutoff`` and never ended (their
    watch died mid-event), except those keyed in ``keep`` (still open); the clips they named."""
    if not uris:
        return []
    old = (AlertRecord.uri.in_(list(uris))) & (AlertRecord.end.is_(None)) & (AlertRecord.start < cutoff)
    if keep:
        old = old & AlertRecord.key.not_in(list(keep))
    clips = [clip for clip in session.scalars(select(AlertRecord.clip).where(old)) if clip]
    session.execute(delete(AlertRecord).where(old))
    return clips
