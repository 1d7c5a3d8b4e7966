"""Which stored videos a user means by a source: a stream's name, a URL or a path prefix; and
which of them are live streams (their segment times are wall-clock UTC seconds).

A stream's video row is keyed by its URL and has no size (``size`` -1: nothing to compare on
the next run); the names streams are shown under are those their alerts were recorded with.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vidsearch.store.schema import AlertRecord, Video, VideoStatus

__all__ = ["video_ids_from_source", "stream_video_ids", "stream_names"]


def video_ids_from_source(session: Session, source: str) -> set[int]:
    """Ids of the indexed videos ``source`` names: a stream's name, or a path or URL prefix of theirs."""
    uris = select(AlertRecord.uri).where(AlertRecord.stream == source).distinct()
    # a LIKE pattern would treat % and _ in paths as wildcards; compare the prefix itself
    prefix = func.substr(Video.path, 1, len(source)) == source
    query = select(Video.id).where(Video.status == VideoStatus.INDEXED, or_(prefix, Video.path.in_(uris)))
    return {int(v) for v in session.scalars(query)}


def stream_video_ids(session: Session, among: Sequence[int] | None = None) -> set[int]:
    """Ids of the videos (of ``among``; None: of all) that are live streams (wall-clock segment times)."""
    query = select(Video.id).where(Video.size < 0)
    if among is not None:
        query = query.where(Video.id.in_(list(among)))
    return {int(v) for v in session.scalars(query)}


def stream_names(session: Session, uris: Sequence[str]) -> dict[str, str]:
    """URL -> the name its latest alert was recorded under, for the streams among ``uris`` that have one."""
    if not uris:
        return {}
    rows = session.execute(
        select(AlertRecord.uri, AlertRecord.stream).where(AlertRecord.uri.in_(list(uris))).order_by(AlertRecord.start)
    )
    return {uri: name for uri, name in rows}
