"""Reading stored vectors: a whole space in chunks, by id, the windows of videos, whole videos.

Writing them is part of adding segments (:func:`vidsearch.store.segments.add_segments`), so a
segment never exists without its vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from vidsearch.store.chunks import bound_list, chunked
from vidsearch.store.codec import from_blob, from_blobs
from vidsearch.store.schema import Embedding, Segment, Video

__all__ = ["vectors_after", "vectors_by_id", "window_vectors", "video_vectors"]


def _ids_and_vectors(rows: Sequence[tuple[int, bytes]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, from_blobs([r[1] for r in rows], dim)


def vectors_after(s: Session, space_id: int, after: int, limit: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, xb)`` of up to ``limit`` vectors of a space with ids above ``after``, by id."""
    rows = s.execute(
        select(Embedding.segment_id, Embedding.vector)
        .join(Segment, Segment.id == Embedding.segment_id)
        .where(Segment.space_id == space_id, Embedding.segment_id > after)
        .order_by(Embedding.segment_id)
        .limit(limit)
    ).all()
    return _ids_and_vectors(rows, dim)


def vectors_by_id(s: Session, space_id: int, ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, xb)`` of the given segments of a space (unknown ids are left out)."""
    rows: list[tuple[int, bytes]] = []
    for part in chunked(int(i) for i in ids):
        rows.extend(
            s.execute(
                select(Embedding.segment_id, Embedding.vector)
                .join(Segment, Segment.id == Embedding.segment_id)
                .where(Segment.space_id == space_id, Embedding.segment_id.in_(part))
            ).all()
        )
    return _ids_and_vectors(rows, dim)


_WINDOW_VECTORS = (
    select(Segment.video_id, Segment.start, Segment.end, Embedding.vector)
    .join(Embedding, Embedding.segment_id == Segment.id)
    .where(Segment.space_id == bindparam("space"), Segment.kind == "window", Segment.video_id.in_(bound_list("ids")))
    .order_by(Segment.video_id, Segment.start)
)


def window_vectors(
    s: Session, space_id: int, video_ids: Sequence[int]
) -> dict[int, tuple[list[tuple[float, float]], np.ndarray]]:
    """Video id -> (``[(start, end), ...]`` in time order, ``xb``) of its stored windows in a space."""
    out: dict[int, tuple[list[tuple[float, float]], list[bytes]]] = {}
    for part in chunked(int(v) for v in video_ids):
        rows = s.execute(_WINDOW_VECTORS, {"space": space_id, "ids": part}).all()
        for vid, start, end, vec in rows:
            spans, blobs = out.setdefault(vid, ([], []))
            spans.append((start, end))
            blobs.append(vec)
    return {vid: (spans, from_blobs(blobs, 0)) for vid, (spans, blobs) in out.items()}


def video_vectors(s: Session, space_id: int, paths: Sequence[str]) -> dict[str, np.ndarray]:
    """Absolute path -> whole-video vector in a space, for the paths that have one."""
    out: dict[str, np.ndarray] = {}
    for part in chunked(paths):
        rows = s.execute(
            select(Video.path, Embedding.vector)
            .join(Segment, Segment.video_id == Video.id)
            .join(Embedding, Embedding.segment_id == Segment.id)
            .where(Segment.space_id == space_id, Segment.kind == "video", Video.path.in_(part))
        ).all()
        for path, vec in rows:
            out[path] = from_blob(vec)
    return out
