"""SQLAlchemy models of the library database (the source of truth).

A segment belongs to exactly one embedding space (its time span depends on the model's frame
count) and has exactly one vector, kept in its own table keyed by the segment id (migration 0003):
the segment rows that every search hit looks up stay small enough for the page cache at millions
of segments, while the vectors (3 KB each at 768-d) are read only to rebuild or sync an index.
The segment id is also the FAISS id.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from vidsearch.paths import has_surrogates

__all__ = [
    "Base",
    "Space",
    "Video",
    "Segment",
    "VideoStatus",
    "LabelSet",
    "SegmentRecognition",
    "SegmentLabel",
    "Embedding",
    "ActorScan",
    "ActorTube",
    "ActorBox",
    "VideoTranscript",
    "TranscriptSegment",
    "StreamRecord",
    "utcnow",
]

# Stable constraint names make Alembic's batch migrations on SQLite reproducible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware current time, used for row timestamps."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class VideoStatus:
    """Values of :attr:`Video.status`."""

    INDEXED = "indexed"
    FAILED = "failed"


class Space(Base):
    """One embedding space: a model (name + checkpoint hash) and how it samples frames."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # e.g. "viclip-b16@1a2b3c4d5e6f"
    dim: Mapped[int] = mapped_column(Integer)
    model_spec: Mapped[str] = mapped_column(Text)  # JSON fields of the EncoderSpec that reopens it
    sampling: Mapped[str] = mapped_column(Text)  # JSON of the SamplingConfig used
    # Bumped in every transaction that changes this space's vectors; a FAISS file records the
    # generation it reflects, so a stale file is detected without comparing id sets.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class FsPath(TypeDecorator):
    """A file path, kept losslessly: a name with undecodable bytes (surrogate escapes, which
    SQLite's UTF-8 text cannot hold) is stored as its raw bytes (a BLOB in the same TEXT column)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str) and has_surrogates(value):
            return os.fsencode(value)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return os.fsdecode(value) if isinstance(value, bytes) else value


class Video(Base):
    """A file that was scanned: its identity on disk, what decoding found, and its status."""

    __tablename__ = "videos"
    # AUTOINCREMENT (migration 0006): a removed video's id is never given to another file, so a
    # shared link or moment id names one video forever (or nothing).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The options a failed video failed under, as JSON (migration 0007): the index run retries
    # it when its own differ. NULL for failures no option played a part in (unreadable files).
    failed_options: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reader: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # FFmpeg codec name of the video stream (migration 0004): tells front ends whether a browser
    # can play the file. NULL for videos indexed before it was recorded.
    codec: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    segments: Mapped[list[Segment]] = relationship(
        back_populates="video", cascade="all, delete-orphan", passive_deletes=True
    )


class Segment(Base):
    """A span of a video encoded in one space: the whole video or a fixed-length window."""

    __tablename__ = "segments"
    # AUTOINCREMENT: ids are never reused after a delete, so a stale FAISS file can never
    # map an old vector onto a new segment.
    __table_args__ = (Index("ix_segments_space_video", "space_id", "video_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # also the FAISS id
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "video" or "window"
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)

    video: Mapped[Video] = relationship(back_populates="segments")


class Embedding(Base):
    """The vector of one segment (migration 0003 moved it out of the segment row)."""

    __tablename__ = "embeddings"

    # CASCADE: deleting a segment (or its video) deletes its vector in the same statement.
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalized, little-endian (store.codec)


# --------------------------------------------------------------------------------------------
# Enrichment: zero-shot labels (migration 0002).


class LabelSet(Base):
    """A label set applied to one embedding space: its classes, their text embeddings, its open-set rule.

    The prompt-ensembled class embeddings are stored with the set, so re-running recognition
    on newly indexed videos (and re-deciding after a calibration) needs no model at all.
    """

    __tablename__ = "label_sets"
    __table_args__ = (UniqueConstraint("space_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # no separate index: the unique (space_id, name) constraint's index serves space lookups
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)  # shipped set name ("ucf101") or absolute path of a label file
    labels_hash: Mapped[str] = mapped_column(String(64))  # sha256 of labels + templates; a change relabels all
    labels: Mapped[str] = mapped_column(Text)  # JSON list of class names, in class-index order
    templates: Mapped[str] = mapped_column(Text)  # JSON list of prompt templates
    embeddings: Mapped[bytes] = mapped_column(LargeBinary)  # float32 [num labels, dim], rows L2-normalized
    top: Mapped[int] = mapped_column(Integer)  # classes kept per segment (segment_labels ranks 1..top)
    score_kind: Mapped[str] = mapped_column(String(16))  # open-set score: "msp", "energy" or "maxcos"
    temperature: Mapped[float] = mapped_column(Float)  # softmax temperature over cosine similarities
    threshold: Mapped[float] = mapped_column(Float)  # known-score below this -> "unknown"
    calibration: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: how T/threshold were chosen
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class SegmentRecognition(Base):
    """The open-set decision for one segment under one label set; its existence marks the segment done."""

    __tablename__ = "segment_recognitions"

    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"), primary_key=True)
    # CASCADE: a re-encoded or removed video's segments take their labels with them, so the next
    # recognition run sees the new segments as unlabelled.
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True, index=True)
    known_score: Mapped[float] = mapped_column(Float)  # higher = more like one of the set's classes
    unknown: Mapped[bool] = mapped_column(Boolean)  # known_score < the set's threshold


class SegmentLabel(Base):
    """One of the top-k classes of a segment (whole video or window) under a label set."""

    __tablename__ = "segment_labels"
    __table_args__ = (
        UniqueConstraint("label_set_id", "segment_id", "rank"),
        Index("ix_segment_labels_set_label", "label_set_id", "label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)  # 1 = best
    label: Mapped[str] = mapped_column(Text)  # class name as spelled in the label set
    score: Mapped[float] = mapped_column(Float)  # cosine similarity of segment and class embedding
    prob: Mapped[float] = mapped_column(Float)  # softmax probability at the set's temperature


# --------------------------------------------------------------------------------------------
# Enrichment: actor tubes (migration 0005).


class ActorScan(Base):
    """One ``enrich actors`` pass over one video under one label set; its existence marks the video done.

    It hangs off the video's whole-video segment of the space whose model encoded the tubes, so
    a re-encoded or removed video takes its tubes with it (CASCADE), as its labels do.
    """

    __tablename__ = "actor_scans"
    __table_args__ = (
        UniqueConstraint("segment_id", "label_set"),
        Index("ix_actor_scans_space_set", "space_id", "label_set"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    space_id: Mapped[int] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"))
    label_set: Mapped[str] = mapped_column(Text)  # shipped set name or absolute path of a label file
    detector: Mapped[str] = mapped_column(String(200))  # e.g. "torchvision:fasterrcnn_resnet50_fpn_v2@0.5"
    keyframes: Mapped[int] = mapped_column(Integer)  # keyframes searched for people
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ActorTube(Base):
    """One person followed over consecutive keyframes of a scanned video, with its best classes."""

    __tablename__ = "actor_tubes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("actor_scans.id", ondelete="CASCADE"), index=True)
    track: Mapped[int] = mapped_column(Integer)  # 0, 1, ... in order of first appearance
    start: Mapped[float] = mapped_column(Float)  # first keyframe (s)
    end: Mapped[float] = mapped_column(Float)  # last keyframe (s)
    label: Mapped[str] = mapped_column(Text)  # best class over the tube
    score: Mapped[float] = mapped_column(Float)  # its mean softmax probability over the keyframes
    labels: Mapped[str] = mapped_column(Text)  # JSON [[label, score], ...] best first (top k)


class ActorBox(Base):
    """A tube's box at one keyframe, normalized to the frame (AVA's convention), with its top class."""

    __tablename__ = "actor_boxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tube_id: Mapped[int] = mapped_column(ForeignKey("actor_tubes.id", ondelete="CASCADE"), index=True)
    t: Mapped[float] = mapped_column(Float)  # keyframe time (s)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    det_score: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: bridged gap (interpolated)
    label: Mapped[str] = mapped_column(Text)  # best class at this keyframe
    score: Mapped[float] = mapped_column(Float)  # its softmax probability


class VideoTranscript(Base):
    """Where a video's words came from, once per video (migration 0008).

    A row means "done for this file": ``fingerprint`` and ``sidecars`` (the subtitle files beside
    it, name:size:mtime) say which state of the video it describes, so an incremental run redoes
    only videos that changed or gained, lost or edited a subtitle file. A row without lines is a
    recorded outcome too (``notes`` say why: no audio track, silent, a broken subtitle file).
    """

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    sidecars: Mapped[str] = mapped_column(Text)  # "" when the video had no subtitle file
    source: Mapped[str] = mapped_column(String(16))  # sidecar, embedded, speech or none
    backend: Mapped[str] = mapped_column(String(200))  # file name, stream, pocketsphinx, whisper:SIZE
    language: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lines: Mapped[int] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(Text)  # JSON list of reasons worth showing a user
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TranscriptSegment(Base):
    """One timed line of what is said in a video; ``transcript_fts`` (FTS5) indexes its text.

    The full-text index is an external-content FTS5 table over this one, kept in step by
    triggers (migration 0008), so every insert or delete here, cascades included, updates it.
    """

    __tablename__ = "transcript_segments"
    __table_args__ = (Index("ix_transcript_segments_video_start", "video_id", "start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # also the FTS5 rowid
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(32), nullable=True)
    backend: Mapped[str] = mapped_column(String(200))
    words: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [[start, end, word], ...]; None: line-timed


class AlertRecord(Base):
    """One alert of a watched stream: a standing query that matched an event (migration 0009).

    Written when the event is detected (``end`` and ``clip`` still None) and completed when it
    ends and its clip is cut. Times are UTC seconds, like a stream's segments. Rows are kept by
    stream name and URI, not by video id: the first alert of a stream can come before the stream's
    first window is stored.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_stream_start", "stream", "start"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # the id in the watch's JSON lines
    stream: Mapped[str] = mapped_column(Text)  # the stream's name, shown everywhere
    uri: Mapped[str] = mapped_column(Text)  # the stream's URL (its video row's path)
    query: Mapped[str] = mapped_column(Text)  # the standing query's text, or "label:NAME"
    kind: Mapped[str] = mapped_column(String(16))  # "text" or "label"
    threshold: Mapped[float] = mapped_column(Float)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: still going (or the watch died)
    score: Mapped[float] = mapped_column(Float)  # at the start
    peak: Mapped[float] = mapped_column(Float)
    peak_time: Mapped[float] = mapped_column(Float)
    clip: Mapped[str | None] = mapped_column(Text, nullable=True)  # path relative to the library root
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StreamRecord(Base):
    """A watched stream: the name it is shown under, and its URL (migration 0010).

    A stream's windows are stored under its URL (its video row's path); its name is what users
    give ``--name`` and see everywhere (``query --source NAME``, alerts, the streams view). Written
    when a watch starts; a name given to another URL later follows it there.
    """

    __tablename__ = "streams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    uri: Mapped[str] = mapped_column(Text, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
