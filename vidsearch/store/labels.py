"""Zero-shot labels on disk: label sets, open-set decisions per segment, top-k classes per segment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session

from vidsearch.store.codec import from_blob, from_blobs, to_blob
from vidsearch.store.schema import Embedding, LabelSet, Segment, SegmentLabel, SegmentRecognition, Space, Video

__all__ = [
    "StoredLabelSet",
    "SegmentVerdict",
    "get_label_set",
    "list_label_sets",
    "save_label_set",
    "clear_labels",
    "count_recognitions",
    "unlabelled_segments",
    "insert_labels",
    "videos_with_label",
    "video_verdicts",
    "top_video_labels",
]


@dataclass(frozen=True)
class StoredLabelSet:
    """A label set as stored for one space (see :class:`~vidsearch.store.schema.LabelSet`)."""

    id: int
    space_id: int
    space_key: str
    name: str
    labels_hash: str
    labels: list[str]
    templates: list[str]
    embeddings: np.ndarray  # float32 [len(labels), dim]
    top: int
    score_kind: str
    temperature: float
    threshold: float
    calibration: dict[str, Any] | None


@dataclass(frozen=True)
class SegmentVerdict:
    """One segment of a video with its open-set decision and ranked classes under a label set."""

    segment_id: int
    kind: str
    start: float
    end: float
    known_score: float
    unknown: bool
    labels: list[tuple[int, str, float, float]]  # (rank, label, score, prob), best first


def _stored(row: LabelSet, space_key: str) -> StoredLabelSet:
    labels = json.loads(row.labels)
    return StoredLabelSet(
        id=row.id,
        space_id=row.space_id,
        space_key=space_key,
        name=row.name,
        labels_hash=row.labels_hash,
        labels=labels,
        templates=json.loads(row.templates),
        embeddings=from_blob(row.embeddings).reshape(len(labels), -1),
        top=row.top,
        score_kind=row.score_kind,
        temperature=row.temperature,
        threshold=row.threshold,
        calibration=json.loads(row.calibration) if row.calibration else None,
    )


def get_label_set(s: Session, space_id: int, name: str) -> StoredLabelSet | None:
    """The label set ``name`` of a space, if it was ever applied there."""
    found = s.execute(
        select(LabelSet, Space.key)
        .join(Space, Space.id == LabelSet.space_id)
        .where(LabelSet.space_id == space_id, LabelSet.name == name)
    ).first()
    return _stored(*found) if found else None


def list_label_sets(s: Session, space_id: int | None = None) -> list[StoredLabelSet]:
    """Every label set (of one space when ``space_id`` is given), oldest first."""
    q = select(LabelSet, Space.key).join(Space, Space.id == LabelSet.space_id).order_by(LabelSet.id)
    if space_id is not None:
        q = q.where(LabelSet.space_id == space_id)
    return [_stored(row, key) for row, key in s.execute(q).all()]


def save_label_set(
    s: Session,
    space_id: int,
    name: str,
    *,
    labels_hash: str,
    labels: Sequence[str],
    templates: Sequence[str],
    embeddings: np.ndarray,
    top: int,
    score_kind: str,
    temperature: float,
    threshold: float,
    calibration: dict[str, Any] | None,
) -> int:
    """Create or overwrite the label set ``name`` of a space; returns its id."""
    row = s.scalar(select(LabelSet).where(LabelSet.space_id == space_id, LabelSet.name == name))
    if row is None:
        row = LabelSet(space_id=space_id, name=name)
        s.add(row)
    row.labels_hash, row.labels, row.templates = labels_hash, json.dumps(list(labels)), json.dumps(list(templates))
    row.embeddings = to_blob(embeddings)
    row.top, row.score_kind, row.temperature, row.threshold = top, score_kind, temperature, threshold
    row.calibration = json.dumps(calibration) if calibration is not None else None
    s.flush()
    return row.id


def clear_labels(s: Session, set_id: int) -> None:
    """Forget every decision and label of a set (its segments become unlabelled)."""
    s.execute(delete(SegmentRecognition).where(SegmentRecognition.label_set_id == set_id))
    s.execute(delete(SegmentLabel).where(SegmentLabel.label_set_id == set_id))


def count_recognitions(s: Session, set_id: int) -> int:
    """How many segments the set has labelled."""
    return int(
        s.scalar(select(func.count()).select_from(SegmentRecognition).where(SegmentRecognition.label_set_id == set_id))
        or 0
    )


def unlabelled_segments(
    s: Session, space_id: int, set_id: int, after: int, limit: int, dim: int
) -> tuple[list[int], list[str], np.ndarray]:
    """Up to ``limit`` segments of a space with ids above ``after`` that the set has not labelled.

    Returns:
        ``(ids, kinds, xb)`` in id order.
    """
    done = exists().where(SegmentRecognition.label_set_id == set_id, SegmentRecognition.segment_id == Segment.id)
    rows = s.execute(
        select(Segment.id, Segment.kind, Embedding.vector)
        .join(Embedding, Embedding.segment_id == Segment.id)
        .where(Segment.space_id == space_id, Segment.id > after, ~done)
        .order_by(Segment.id)
        .limit(limit)
    ).all()
    return [int(r[0]) for r in rows], [r[1] for r in rows], from_blobs([r[2] for r in rows], dim)


def insert_labels(s: Session, recognitions: Sequence[dict[str, Any]], labels: Sequence[dict[str, Any]]) -> None:
    """Insert decisions (``label_set_id, segment_id, known_score, unknown``) and their ranked labels
    (``label_set_id, segment_id, rank, label, score, prob``)."""
    if recognitions:
        s.execute(insert(SegmentRecognition), list(recognitions))
    if labels:
        s.execute(insert(SegmentLabel), list(labels))


def videos_with_label(s: Session, set_id: int, label: str, max_rank: int, include_unknown: bool) -> set[int]:
    """Ids of videos with a segment whose ``max_rank`` best classes of the set include ``label``."""
    q = (
        select(Segment.video_id)
        .join(SegmentLabel, SegmentLabel.segment_id == Segment.id)
        .join(
            SegmentRecognition,
            (SegmentRecognition.segment_id == SegmentLabel.segment_id)
            & (SegmentRecognition.label_set_id == SegmentLabel.label_set_id),
        )
        .where(SegmentLabel.label_set_id == set_id, SegmentLabel.label == label, SegmentLabel.rank <= max_rank)
        .distinct()
    )
    if not include_unknown:
        q = q.where(SegmentRecognition.unknown.is_(False))
    return {int(v) for v in s.scalars(q).all()}


def video_verdicts(s: Session, video_id: int, set_id: int) -> list[SegmentVerdict]:
    """The labelled segments of a video under a set, in time order, each with its ranked classes."""
    segs = s.execute(
        select(
            Segment.id,
            Segment.kind,
            Segment.start,
            Segment.end,
            SegmentRecognition.known_score,
            SegmentRecognition.unknown,
        )
        .join(SegmentRecognition, SegmentRecognition.segment_id == Segment.id)
        .where(Segment.video_id == video_id, SegmentRecognition.label_set_id == set_id)
        .order_by(Segment.start, Segment.id)
    ).all()
    if not segs:
        return []
    labs = s.execute(
        select(SegmentLabel.segment_id, SegmentLabel.rank, SegmentLabel.label, SegmentLabel.score, SegmentLabel.prob)
        .where(SegmentLabel.label_set_id == set_id, SegmentLabel.segment_id.in_([g.id for g in segs]))
        .order_by(SegmentLabel.segment_id, SegmentLabel.rank)
    ).all()
    by_seg: dict[int, list[tuple[int, str, float, float]]] = {}
    for sid, rank, label, score, prob in labs:
        by_seg.setdefault(sid, []).append((rank, label, score, prob))
    return [
        SegmentVerdict(g.id, g.kind, g.start, g.end, g.known_score, bool(g.unknown), by_seg.get(g.id, [])) for g in segs
    ]


def top_video_labels(s: Session, set_name: str) -> dict[str, tuple[str, float, bool]]:
    """Path -> (best class, known score, unknown) of every whole-video segment a set has labelled."""
    rows = s.execute(
        select(Video.path, SegmentLabel.label, SegmentRecognition.known_score, SegmentRecognition.unknown)
        .join(Segment, Segment.video_id == Video.id)
        .join(SegmentLabel, SegmentLabel.segment_id == Segment.id)
        .join(
            SegmentRecognition,
            (SegmentRecognition.segment_id == Segment.id)
            & (SegmentRecognition.label_set_id == SegmentLabel.label_set_id),
        )
        .join(LabelSet, LabelSet.id == SegmentLabel.label_set_id)
        .where(Segment.kind == "video", SegmentLabel.rank == 1, LabelSet.name == set_name)
    ).all()
    return {p: (lab, float(ks), bool(unk)) for p, lab, ks, unk in rows}
