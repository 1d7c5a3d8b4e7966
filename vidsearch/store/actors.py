"""Actor tubes on disk: one scan per video and label set, its tubes and their keyframe boxes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vidsearch.store.schema import ActorBox, ActorScan, ActorTube, Segment, Space, Video, VideoStatus

__all__ = [
    "BoxRow",
    "TubeRow",
    "ScanInfo",
    "unscanned_videos",
    "save_scan",
    "clear_scans",
    "count_scans",
    "video_scans",
]


@dataclass(frozen=True)
class BoxRow:
    """A tube's box at one keyframe: normalized ``x1, y1, x2, y2``, its top class and probability."""

    t: float
    x1: float
    y1: float
    x2: float
    y2: float
    det_score: float | None  # None where a gap was bridged
    label: str
    score: float


@dataclass(frozen=True)
class TubeRow:
    """A tube to store or as stored: its span, best classes and boxes."""

    track: int
    start: float
    end: float
    labels: list[tuple[str, float]]  # best first
    boxes: list[BoxRow] = field(default_factory=list)


@dataclass(frozen=True)
class ScanInfo:
    """A stored scan of one video under one label set."""

    label_set: str
    space_key: str
    detector: str
    keyframes: int
    tubes: list[TubeRow]


def unscanned_videos(s: Session, space_id: int, label_set: str, limit: int | None = None) -> list[tuple[int, int, str]]:
    """``(video id, whole-video segment id, path)`` of indexed videos of a space not yet scanned under ``label_set``."""
    done = select(ActorScan.segment_id).where(ActorScan.label_set == label_set)
    q = (
        select(Video.id, Segment.id, Video.path)
        .join(Segment, Segment.video_id == Video.id)
        .where(
            Segment.space_id == space_id,
            Segment.kind == "video",
            Video.status == VideoStatus.INDEXED,
            Segment.id.not_in(done),
        )
        .order_by(Video.id)
    )
    if limit is not None:
        q = q.limit(limit)
    return [(int(v), int(g), p) for v, g, p in s.execute(q).all()]


def save_scan(
    s: Session, segment_id: int, space_id: int, label_set: str, detector: str, keyframes: int, tubes: Sequence[TubeRow]
) -> int:
    """Store one video's scan (replacing an earlier one under the same label set); returns its id."""
    s.execute(delete(ActorScan).where(ActorScan.segment_id == segment_id, ActorScan.label_set == label_set))
    scan = ActorScan(
        segment_id=segment_id, space_id=space_id, label_set=label_set, detector=detector, keyframes=keyframes
    )
    s.add(scan)
    s.flush()
    for tube in tubes:
        best, score = tube.labels[0] if tube.labels else ("", 0.0)
        row = ActorTube(
            scan_id=scan.id,
            track=tube.track,
            start=tube.start,
            end=tube.end,
            label=best,
            score=float(score),
            labels=json.dumps([[lab, round(float(p), 6)] for lab, p in tube.labels]),
        )
        s.add(row)
        s.flush()
        s.add_all(
            ActorBox(
                tube_id=row.id,
                t=b.t,
                x1=b.x1,
                y1=b.y1,
                x2=b.x2,
                y2=b.y2,
                det_score=b.det_score,
                label=b.label,
                score=b.score,
            )
            for b in tube.boxes
        )
    return int(scan.id)


def clear_scans(s: Session, space_id: int, label_set: str) -> int:
    """Forget every scan of a space under ``label_set`` (their tubes and boxes go too); returns how many."""
    return int(
        s.execute(delete(ActorScan).where(ActorScan.space_id == space_id, ActorScan.label_set == label_set)).rowcount
        or 0
    )


def count_scans(s: Session, space_id: int, label_set: str) -> int:
    """Videos of a space already scanned under ``label_set``."""
    return int(
        s.scalar(
            select(func.count())
            .select_from(ActorScan)
            .where(ActorScan.space_id == space_id, ActorScan.label_set == label_set)
        )
        or 0
    )


def video_scans(s: Session, path: str, label_set: str | None = None) -> list[ScanInfo] | None:
    """The stored scans of a video (optionally of one label set), tubes in track order.

    Args:
        s: a session.
        path: the video's absolute path.
        label_set: only this label set's scan (its stored name).

    Returns:
        The scans (possibly none), or None when the video is not in the library.
    """
    video_id = s.scalar(select(Video.id).where(Video.path == path))
    if video_id is None:
        return None
    space_keys = dict(s.execute(select(Space.id, Space.key)).all())
    q = select(ActorScan).join(Segment, Segment.id == ActorScan.segment_id).where(Segment.video_id == video_id)
    if label_set is not None:
        q = q.where(ActorScan.label_set == label_set)
    out = []
    for scan in s.scalars(q.order_by(ActorScan.id)).all():
        # one query for every box of the scan, as plain rows: a film's thousand tubes stay fast to read
        boxes: dict[int, list[BoxRow]] = {}
        rows = s.execute(
            select(
                ActorBox.tube_id,
                ActorBox.t,
                ActorBox.x1,
                ActorBox.y1,
                ActorBox.x2,
                ActorBox.y2,
                ActorBox.det_score,
                ActorBox.label,
                ActorBox.score,
            )
            .join(ActorTube, ActorTube.id == ActorBox.tube_id)
            .where(ActorTube.scan_id == scan.id)
            .order_by(ActorBox.tube_id, ActorBox.t)
        )
        for tube_id, *box in rows:
            boxes.setdefault(tube_id, []).append(BoxRow(*box))
        tubes = [
            TubeRow(track, start, end, [(lab, float(p)) for lab, p in json.loads(labels)], boxes.get(tube_id, []))
            for tube_id, track, start, end, labels in s.execute(
                select(ActorTube.id, ActorTube.track, ActorTube.start, ActorTube.end, ActorTube.labels)
                .where(ActorTube.scan_id == scan.id)
                .order_by(ActorTube.track)
            )
        ]
        out.append(
            ScanInfo(
                scan.label_set, space_keys.get(scan.space_id, str(scan.space_id)), scan.detector, scan.keyframes, tubes
            )
        )
    return out
