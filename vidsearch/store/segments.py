"""Segments: the spans of a video encoded in one space (their vectors live in store.embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from vidsearch.store.chunks import bound_list, chunked
from vidsearch.store.codec import to_blob
from vidsearch.store.schema import Embedding, Segment, Video
from vidsearch.store.spaces import bump_generation

__all__ = [
    "SegmentInfo",
    "SpanRow",
    "add_segments",
    "drop_segments",
    "segment_ids",
    "existing_segment_ids",
    "segment_infos",
    "segment_counts",
    "bulk_load",
]


@dataclass(frozen=True)
class SegmentInfo:
    """What search needs to know about a segment hit."""

    segment_id: int
    video_id: int
    path: str
    kind: str
    start: float
    end: float
    duration: float | None


@dataclass(frozen=True)
class SpanRow:
    """A segment to store: ``kind`` is ``"video"`` (the whole video) or ``"window"``."""

    kind: str
    start: float
    end: float


def add_segments(s: Session, video_id: int, space_id: int, spans: Sequence[SpanRow], xb: np.ndarray) -> list[int]:
    """Insert the segments of a video and their vectors (``xb[i]`` belongs to ``spans[i]``).

    The caller bumps the space's generation once per transaction (:func:`bump_generation`).

    Returns:
        The new segment ids, in the order of ``spans`` (they are also the FAISS ids).
    """
    if len(spans) != len(xb):
        raise ValueError(f"{len(spans)} segments but {len(xb)} vectors")
    rows = [
        Segment(video_id=video_id, space_id=space_id, kind=sp.kind, start=float(sp.start), end=float(sp.end))
        for sp in spans
    ]
    s.add_all(rows)
    s.flush()
    ids = [r.id for r in rows]
    if ids:
        s.execute(insert(Embedding), [{"segment_id": i, "vector": to_blob(v)} for i, v in zip(ids, xb, strict=False)])
    return ids


def drop_segments(s: Session, video_id: int) -> list[tuple[int, int]]:
    """Delete a video's segments (and vectors) in every space and bump those spaces.

    Returns:
        The deleted segments as ``(space id, segment id)``.
    """
    old = [
        (int(sp), int(sid))
        for sp, sid in s.execute(select(Segment.space_id, Segment.id).where(Segment.video_id == video_id)).all()
    ]
    if old:
        s.execute(delete(Segment).where(Segment.video_id == video_id))
        bump_generation(s, {sp for sp, _ in old})
    return old


def drop_segments_before(s: Session, video_id: int, before: float) -> list[tuple[int, int]]:
    """Delete a video's segments that ended before ``before`` (a live stream's retention); bump their spaces.

    Returns:
        The deleted segments as ``(space id, segment id)``.
    """
    where = (Segment.video_id == video_id) & (Segment.end < before)
    old = [(int(sp), int(sid)) for sp, sid in s.execute(select(Segment.space_id, Segment.id).where(where)).all()]
    if old:
        s.execute(delete(Segment).where(where))
        bump_generation(s, {sp for sp, _ in old})
    return old


def segment_ids(s: Session, space_id: int) -> np.ndarray:
    """Sorted ids of every segment of a space."""
    ids = s.scalars(select(Segment.id).where(Segment.space_id == space_id).order_by(Segment.id)).all()
    return np.asarray(ids, dtype=np.int64)


def existing_segment_ids(s: Session, ids: Sequence[int]) -> set[int]:
    """Those of ``ids`` that are still in the library (a concurrent run may have deleted some)."""
    out: set[int] = set()
    for part in chunked(int(i) for i in ids):
        out.update(int(i) for i in s.scalars(select(Segment.id).where(Segment.id.in_(part))).all())
    return out


_SEGMENT_INFOS = (
    select(Segment.id, Segment.video_id, Video.path, Segment.kind, Segment.start, Segment.end, Video.duration)
    .join(Video, Video.id == Segment.video_id)
    .where(Segment.id.in_(bound_list("ids")))
)


def segment_infos(s: Session, ids: Sequence[int]) -> dict[int, SegmentInfo]:
    """Segment id -> :class:`SegmentInfo` for the given ids (unknown ids are left out)."""
    out: dict[int, SegmentInfo] = {}
    for part in chunked(int(i) for i in ids):
        rows = s.execute(_SEGMENT_INFOS, {"ids": part}).all()
        for r in rows:
            out[r[0]] = SegmentInfo(*r)
    return out


def segment_counts(s: Session) -> tuple[dict[int, int], dict[int, int]]:
    """``(segments per space id, videos per space id)``."""
    segs = dict(s.execute(select(Segment.space_id, func.count()).group_by(Segment.space_id)).all())
    vids = dict(
        s.execute(
            select(Segment.space_id, func.count(func.distinct(Segment.video_id))).group_by(Segment.space_id)
        ).all()
    )
    return {int(k): int(v) for k, v in segs.items()}, {int(k): int(v) for k, v in vids.items()}


def bulk_load(
    s: Session, space_id: int, videos: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]], xb: np.ndarray
) -> None:
    """Insert ready-made rows in bulk (synthetic libraries for benchmarks, imports).

    Args:
        videos: ``videos`` column values per row (``id``, ``path``, ``size``, ...).
        segments: ``segments`` column values per row, ids included; ``space_id`` is set here.
        xb: ``[len(segments), dim]`` vectors, ``xb[i]`` for ``segments[i]``.
    """
    if len(segments) != len(xb):
        raise ValueError(f"{len(segments)} segments but {len(xb)} vectors")
    if videos:
        s.execute(insert(Video), list(videos))
    if segments:
        s.execute(insert(Segment), [{**row, "space_id": space_id} for row in segments])
        s.execute(
            insert(Embedding),
            [{"segment_id": row["id"], "vector": to_blob(x)} for row, x in zip(segments, xb, strict=False)],
        )
    bump_generation(s, [space_id])
