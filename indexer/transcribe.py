"""The transcript pass: give each indexed video its words once (``index`` and ``vidsearch transcribe``).

For every indexed video it decides whether the recorded transcript still describes the file
(:func:`needs_transcript`), reads subtitles or runs the recognizer for those that need one, and
commits each video in its own transaction, so a run killed at any point loses at most the video
in hand and a re-run resumes with the next. Subtitles are picked up on every run without a flag;
speech recognition only runs when a backend is given.

Where the transcripts are made is a seam (:class:`TranscriptMaker`): this process by default
(:class:`LocalTranscripts`), the actors of a Ray cluster for ``index --ray``
(:class:`vidsearch.cluster.transcripts.RayTranscripts`); the pass itself (what needs a
transcript, one commit per video) is the same for both, so a cluster run stores what a local
run stores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vidsearch.speech.backends import Transcriber, backend_name, open_transcriber
from vidsearch.speech.sources import sidecar_stamp, transcript_or_reason
from vidsearch.speech.transcript import Transcript
from vidsearch.store.library import Library
from vidsearch.store.transcripts import TranscriptState, VideoToTranscribe, save_transcript, videos_to_transcribe

__all__ = ["LocalTranscripts", "TranscribeReport", "TranscriptMaker", "needs_transcript", "transcribe_library"]

LOG = logging.getLogger(__name__)

# Sources written by people: a recognizer never replaces them.
SUBTITLE_SOURCES = ("sidecar", "embedded")


@dataclass
class TranscribeReport:
    """What a transcript pass did."""

    transcribed: int = 0  # videos given a (new) transcript with lines
    lines: int = 0  # lines stored by this run
    unchanged: int = 0  # videos whose recorded transcript still holds
    without_words: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of videos left without lines
    failed: int = 0  # of those, videos whose transcription failed (nothing recorded: the next run tries again)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (path, note): skipped cues, guessed encodings
    backend: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "transcribed": self.transcribed,
            "lines": self.lines,
            "unchanged": self.unchanged,
            "without_words": [{"path": p, "reason": r} for p, r in self.without_words],
            "failed": self.failed,
            "notes": [{"path": p, "note": n} for p, n in self.notes],
            "backend": self.backend,
            "seconds": round(self.seconds, 3),
        }


def needs_transcript(state: TranscriptState | None, fingerprint: str, sidecars: str, backend: str | None) -> bool:
    """Whether a video's recorded transcript must be made again.

    Yes when there is none, the file changed (fingerprint), a subtitle file beside it was added,
    edited or removed, or a recognizer is asked for and the video has neither subtitles nor a
    result of that same backend (a new backend is a reason to try again; the same one is not).
    """
    if state is None or state.fingerprint != fingerprint or state.sidecars != sidecars:
        return True
    if state.source in SUBTITLE_SOURCES or backend is None:
        return False
    return state.backend != backend_name(backend)


class TranscriptMaker(Protocol):
    """Makes the transcripts of videos: in this process, or on a cluster's actors."""

    def __call__(self, paths: Sequence[str]) -> Iterator[tuple[int, Transcript | str]]:
        """Each video of ``paths`` once, in any order: its index in ``paths`` and its transcript,
        or one line saying why none could be made (nothing is recorded for it then)."""
        ...


class LocalTranscripts:
    """Transcripts made here, one video after the other; the recognizer opened on first need.

    Args:
        backend: a speech backend spec; None: subtitles only.
        device: where Whisper runs.
        transcriber: an already opened recognizer for ``backend``.
    """

    def __init__(self, backend: str | None, device: str = "auto", transcriber: Transcriber | None = None) -> None:
        self.backend, self.device, self.recognizer = backend, device, transcriber

    def __call__(self, paths: Sequence[str]) -> Iterator[tuple[int, Transcript | str]]:
        """See :class:`TranscriptMaker`."""
        for i, path in enumerate(paths):
            if self.recognizer is None and self.backend is not None:
                self.recognizer = open_transcriber(self.backend, device=self.device)
            yield i, transcript_or_reason(Path(path), self.recognizer if self.backend is not None else None)


def _listing(cache: dict[Path, list[Path]], folder: Path) -> list[Path]:
    if folder not in cache:
        try:
            cache[folder] = list(folder.iterdir())
        except OSError:
            cache[folder] = []
    return cache[folder]


def transcribe_library(
    library: Library,
    backend: str | None = None,
    *,
    video_ids: Sequence[int] | None = None,
    transcriber: Transcriber | None = None,
    device: str = "auto",
    progress: Callable[[int, int, str], None] | None = None,
    after_commit: Callable[[int], None] | None = None,
    maker: TranscriptMaker | None = None,
) -> TranscribeReport:
    """Give every indexed video (or those of ``video_ids``) its transcript, where it needs one.

    Args:
        library: an open, writable library.
        backend: a speech backend spec (``whisper[:SIZE]``, ``pocketsphinx``); None: subtitles only.
        video_ids: restrict the pass to these videos.
        transcriber: an already opened recognizer for ``backend`` (else opened on first need).
        device: where Whisper runs.
        progress: called ``(done, total, path)`` after each video.
        after_commit: called with the number of videos committed so far (tests kill the process here).
        maker: where the transcripts are made (default: here, :class:`LocalTranscripts`); this
            function only decides what needs one and stores each as it arrives.

    Raises:
        InputError: an unknown backend. ModelError: its package or weights are missing.
    """
    t0 = time.perf_counter()
    report = TranscribeReport(backend=backend_name(backend) if backend else None)
    with library.session() as s:
        videos = videos_to_transcribe(s, video_ids)
    todo: list[tuple[VideoToTranscribe, str]] = []
    listings: dict[Path, list[Path]] = {}  # one listing per folder, however many videos it holds
    for video in videos:
        path = Path(video.path)
        stamp = sidecar_stamp(path, _listing(listings, path.parent))
        if needs_transcript(video.state, video.fingerprint, stamp, backend):
            todo.append((video, stamp))
        else:
            report.unchanged += 1
    made = (maker or LocalTranscripts(backend, device, transcriber))([video.path for video, _ in todo]) if todo else []
    for done, (i, transcript) in enumerate(made, 1):
        video, stamp = todo[i]
        if isinstance(transcript, str):  # failed: nothing recorded, so the next run tries again
            report.failed += 1
            report.without_words.append((video.path, transcript))
        else:
            with library.write_session() as s:
                stored = save_transcript(s, video.video_id, video.fingerprint, stamp, transcript)
            if after_commit is not None:
                after_commit(done)
            report.lines += stored
            if stored:
                report.transcribed += 1
                report.notes.extend((video.path, n) for n in transcript.notes)
            else:
                report.without_words.append((video.path, "; ".join(transcript.notes) or "no words"))
        if progress is not None:
            progress(done, len(todo), video.path)
    report.seconds = time.perf_counter() - t0
    return report
