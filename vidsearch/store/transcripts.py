"""Transcripts on disk: where each video's words came from, its timed lines, and full-text search.

Search is SQLite FTS5's: ``transcript_fts`` (migration 0008) ranks lines by BM25, tokenizes with
``unicode61`` and folds diacritics, and marks the matched words (``highlight``); nothing of that
is done here by hand. The index follows ``transcript_segments`` through triggers, so this module
only writes the segments.

A video's transcript is replaced in one transaction (:func:`save_transcript`): a run killed at
any moment leaves either the old lines and state or the new ones, never half of each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from vidsearch.speech.transcript import Line, Transcript, words_from_json, words_json
from vidsearch.store.chunks import chunked
from vidsearch.store.schema import TranscriptSegment, Video, VideoStatus, VideoTranscript, utcnow

__all__ = [
    "TranscriptState",
    "VideoToTranscribe",
    "TextHit",
    "MARK_OPEN",
    "MARK_CLOSE",
    "videos_to_transcribe",
    "save_transcript",
    "transcript_state",
    "transcript_lines",
    "search_lines",
    "transcript_counts",
    "has_transcripts",
]

# highlight() wraps each matched token in these; control characters never occur in subtitles.
MARK_OPEN = "\x02"
MARK_CLOSE = "\x03"


@dataclass(frozen=True)
class TranscriptState:
    """What the library recorded about a video's transcript (see :class:`~vidsearch.store.schema.VideoTranscript`)."""

    fingerprint: str
    sidecars: str
    source: str
    backend: str
    language: str | None
    lines: int
    notes: list[str]


@dataclass(frozen=True)
class VideoToTranscribe:
    """An indexed video and its recorded transcript state (None: never transcribed)."""

    video_id: int
    path: str
    fingerprint: str
    state: TranscriptState | None


@dataclass(frozen=True)
class TextHit:
    """A transcript line that matched a full-text query.

    ``marked`` is the line's text with every matched token between :data:`MARK_OPEN` and
    :data:`MARK_CLOSE`; ``score`` is FTS5's BM25 negated, so higher is better.
    """

    segment_id: int
    video_id: int
    path: str
    start: float
    end: float
    text: str
    marked: str
    words: str | None
    score: float
    duration: float | None  # the video's


def _state(row: VideoTranscript) -> TranscriptState:
    return TranscriptState(
        fingerprint=row.fingerprint,
        sidecars=row.sidecars,
        source=row.source,
        backend=row.backend,
        language=row.language,
        lines=row.lines,
        notes=list(json.loads(row.notes)),
    )


def videos_to_transcribe(s: Session, video_ids: Sequence[int] | None = None) -> list[VideoToTranscribe]:
    """The library's indexed videos (or those of ``video_ids``) with their transcript state, by path."""
    query = (
        select(Video.id, Video.path, Video.fingerprint, VideoTranscript)
        .outerjoin(VideoTranscript, VideoTranscript.video_id == Video.id)
        .where(Video.status == VideoStatus.INDEXED)
        .order_by(Video.path)
    )
    if video_ids is None:
        rows = list(s.execute(query))
    else:
        rows = [r for part in chunked(list(video_ids)) for r in s.execute(query.where(Video.id.in_(part)))]
    return [
        VideoToTranscribe(vid, path, fingerprint, None if row is None else _state(row))
        for vid, path, fingerprint, row in rows
    ]


def save_transcript(s: Session, video_id: int, fingerprint: str, sidecars: str, transcript: Transcript) -> int:
    """Replace ``video_id``'s transcript and state with ``transcript``; returns the lines stored.

    Call inside one transaction (``Library.write_session``) so the swap is all or nothing.
    """
    s.execute(delete(TranscriptSegment).where(TranscriptSegment.video_id == video_id))
    s.execute(delete(VideoTranscript).where(VideoTranscript.video_id == video_id))
    if transcript.lines:
        s.execute(
            insert(TranscriptSegment),
            [
                {
                    "video_id": video_id,
                    "start": line.start,
                    "end": line.end,
                    "text": line.text,
                    "language": transcript.language,
                    "backend": transcript.backend,
                    "words": words_json(line.words),
                }
                for line in transcript.lines
            ],
        )
    s.add(
        VideoTranscript(
            video_id=video_id,
            fingerprint=fingerprint,
            sidecars=sidecars,
            source=transcript.source,
            backend=transcript.backend,
            language=transcript.language,
            lines=len(transcript.lines),
            notes=json.dumps(list(transcript.notes), ensure_ascii=False),
            created_at=utcnow(),
        )
    )
    return len(transcript.lines)


def transcript_state(s: Session, video_id: int) -> TranscriptState | None:
    """The recorded state of one video's transcript (None: never transcribed)."""
    row = s.scalar(select(VideoTranscript).where(VideoTranscript.video_id == video_id))
    return None if row is None else _state(row)


def transcript_lines(s: Session, video_id: int) -> list[Line]:
    """A video's lines in time order, with word times where known."""
    rows = s.execute(
        select(TranscriptSegment.start, TranscriptSegment.end, TranscriptSegment.text, TranscriptSegment.words)
        .where(TranscriptSegment.video_id == video_id)
        .order_by(TranscriptSegment.start, TranscriptSegment.id)
    )
    return [Line(start, end, line_text, words_from_json(words)) for start, end, line_text, words in rows]


def search_lines(s: Session, match: str, limit: int) -> list[TextHit]:
    """The ``limit`` best lines for an FTS5 query ``match`` (FTS5 syntax: quoted phrases, OR, NEAR).

    Ranked by BM25; only lines of indexed videos.
    """
    rows = s.execute(
        text(
            "SELECT t.id, t.video_id, v.path, t.start, t.end, t.text, "
            "highlight(transcript_fts, 0, :mo, :mc), t.words, bm25(transcript_fts) AS rank, v.duration "
            "FROM transcript_fts JOIN transcript_segments t ON t.id = transcript_fts.rowid "
            "JOIN videos v ON v.id = t.video_id "
            "WHERE transcript_fts MATCH :q AND v.status = :ok ORDER BY rank LIMIT :n"
        ),
        {"q": match, "n": limit, "mo": MARK_OPEN, "mc": MARK_CLOSE, "ok": VideoStatus.INDEXED},
    )
    return [TextHit(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], -float(r[8]), r[9]) for r in rows]


def transcript_counts(s: Session) -> dict[str, int]:
    """Videos with lines, videos checked without any, and lines stored."""
    with_lines = s.scalar(select(func.count()).select_from(VideoTranscript).where(VideoTranscript.lines > 0)) or 0
    without = s.scalar(select(func.count()).select_from(VideoTranscript).where(VideoTranscript.lines == 0)) or 0
    lines = s.scalar(select(func.count()).select_from(TranscriptSegment)) or 0
    return {"videos": int(with_lines), "videos_without_words": int(without), "lines": int(lines)}


def has_transcripts(s: Session) -> bool:
    """Whether any video has a transcript line (decides the default ``--mode`` of a query)."""
    return s.scalar(select(TranscriptSegment.id).limit(1)) is not None
