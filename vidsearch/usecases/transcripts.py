"""Transcript use cases: one video's transcript (``vidsearch transcript``, the web player, the API).

Front ends name a video by id or by path; :func:`video_transcript` returns its lines with where
they came from. Making transcripts is the indexer's (:mod:`vidsearch.indexer.transcribe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.paths import canonical_path
from vidsearch.speech.transcript import Line, to_json
from vidsearch.store.library import Library
from vidsearch.store.transcripts import TranscriptState, transcript_counts, transcript_lines, transcript_state
from vidsearch.store.videos import find_video
from vidsearch.usecases.videos import NotFound, indexed_video

__all__ = ["VideoTranscript", "find_indexed_video", "video_transcript", "transcript_summary"]


@dataclass(frozen=True)
class VideoTranscript:
    """A video's lines and the recorded state (None: the video was never transcribed)."""

    video_id: int
    path: str
    lines: list[Line]
    state: TranscriptState | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: where the words came from, and the lines with word times."""
        st = self.state
        return {
            "video_id": self.video_id,
            "path": self.path,
            "source": st.source if st else None,
            "backend": st.backend if st else None,
            "language": st.language if st else None,
            "notes": st.notes if st else [],
            "lines": to_json(self.lines),
        }


def find_indexed_video(library: Library, video: str) -> int:
    """The id of the indexed video ``video`` names: a number (its id) or a file path.

    Raises:
        NotFound: no indexed video by that id or path.
    """
    if not video.strip():
        raise NotFound("give the video's path or its id, e.g. vidsearch transcript ./videos/talk.mp4")
    if video.isdigit():
        return indexed_video(library, int(video)).id
    with library.session() as s:
        ref = find_video(s, canonical_path(Path(video).expanduser()))
    if ref is None:
        raise NotFound(f"{video} is not in the library; index its folder first (vidsearch index DIR)")
    return indexed_video(library, ref.id).id


def video_transcript(library: Library, video_id: int) -> VideoTranscript:
    """The transcript of an indexed video (no lines when it has none).

    Raises:
        NotFound: no such indexed video.
    """
    record = indexed_video(library, video_id)
    with library.session() as s:
        return VideoTranscript(record.id, record.path, transcript_lines(s, video_id), transcript_state(s, video_id))


def transcript_summary(library: Library) -> dict[str, int]:
    """Videos with transcript lines, videos checked without any, lines stored (for ``info``)."""
    with library.session() as s:
        return transcript_counts(s)
