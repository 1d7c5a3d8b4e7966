"""Which stored videos a user means by a source: a stream's name, a URL or a path prefix; and
which of them are live streams (their segment times are wall-clock UTC seconds).

A stream's video row is keyed by its URL and has no size (``size`` -1: nothing to compare on
the next run); the name it is shown under is in ``streams`` (written as a watch starts; a
library from before that table knows the names its alerts were recorded with).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vidsearch.store.chunks import bound_list
from vidsearch.store.schema import AlertRecord, StreamRecord, Video, VideoStatus

__all__ = ["name_stream", "video_ids_from_source", "stream_video_ids", "names_by_uri"]


def name_stream(session: Session, name: str, uri: str) -> None:
    """Record that the stream at ``uri`` is shown as ``name`` (a name given to another URL before moves)."""
    row = session.scalar(select(StreamRecord).where(StreamRecord.name == name))
    if row is None:
        session.add(StreamRecord(name=name, uri=uri))
    elif row.uri != uri:
        row.uri = uri


def video_ids_from_source(session: Session, source: str) -> set[int]:
    """Ids of the indexed videos ``source`` names: a stream's name, or a path or URL prefix of theirs."""
    named = select(StreamRecord.uri).where(StreamRecord.name == source)
    uris = select(AlertRecord.uri).where(AlertRecord.stream == source).union(named)
    # a LIKE pattern would treat % and _ in paths as wildcards; compare the prefix itself
    prefix = func.substr(Video.path, 1, len(source)) == source
    query = select(Video.id).where(Video.status == VideoStatus.INDEXED, or_(prefix, Video.path.in_(uris)))
    return {int(v) for v in session.scalars(query)}


_STREAMS_AMONG = select(Video.id).where(Video.size < 0, Video.id.in_(bound_list("ids")))


def stream_video_ids(session: Session, among: Sequence[int] | None = None) -> set[int]:
    """Ids of the videos (of ``among``; None: of all) that are live streams (wall-clock segment times)."""
    if among is None:
        return {int(v) for v in session.scalars(select(Video.id).where(Video.size < 0))}
    return {int(v) for v in session.scalars(_STREAMS_AMONG, {"ids": [int(i) for i in among]})}


def names_by_uri(session: Session, uris: Sequence[str]) -> dict[str, str]:
    """URL -> the name it is shown under (its latest, or its latest alert's), for those among ``uris`` that have one."""
    if not uris:
        return {}
    wanted = list(uris)
    alerted = select(AlertRecord.uri, AlertRecord.stream).where(AlertRecord.uri.in_(wanted))
    names = {uri: name for uri, name in session.execute(alerted.order_by(AlertRecord.start))}
    named = select(StreamRecord.uri, StreamRecord.name).where(StreamRecord.uri.in_(wanted))
    names.update({uri: name for uri, name in session.execute(named.order_by(StreamRecord.updated_at))})
    return names
