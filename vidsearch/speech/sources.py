"""Where a video's words come from, best first: sidecar subtitles, embedded subtitles, speech recognition.

Subtitles written by people beat any recognizer, so they are always used when present and a
recognizer only runs for a video without them. :func:`sidecar_stamp` is what an incremental run
compares to notice a subtitle file added, changed or removed since the last run.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vidsearch.speech.audio import load_audio
from vidsearch.speech.backends import Transcriber
from vidsearch.speech.subtitles import find_sidecars, read_embedded, read_sidecar
from vidsearch.speech.transcript import Transcript

__all__ = ["sidecar_stamp", "existing_subtitles", "transcribe_video", "transcript_or_reason"]

LOG = logging.getLogger(__name__)


def sidecar_stamp(video: Path, siblings: list[Path] | None = None) -> str:
    """The sidecar files of ``video`` as ``name:size:mtime_ns`` entries ("" when there are none).

    ``siblings``: the folder's listing, when the caller lists each folder once.
    """
    parts = []
    for path in find_sidecars(video, siblings):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def existing_subtitles(video: Path) -> Transcript | None:
    """The best subtitles ``video`` already has (sidecar first, then embedded), or None.

    A subtitle source that yields no line (a broken file) is passed over for the next, and its
    notes are carried into what is returned, so the reason is never lost.
    """
    notes: list[str] = []
    for sidecar in find_sidecars(video):
        found = read_sidecar(video, sidecar)
        notes.extend(found.notes)
        if found.lines:
            return Transcript(found.lines, found.source, found.backend, found.language, tuple(notes))
    embedded = read_embedded(video)
    if embedded is not None:
        notes.extend(embedded.notes)
        if embedded.lines:
            return Transcript(embedded.lines, embedded.source, embedded.backend, embedded.language, tuple(notes))
    if notes:
        return Transcript((), "none", "", None, tuple(notes))
    return None


def transcribe_video(video: Path, transcriber: Transcriber | None) -> Transcript:
    """The transcript of ``video``: its subtitles, else (with a ``transcriber``) what it recognizes.

    Never raises for the file's content: a video with no subtitles and no transcriber, no audio
    track, silent or undecodable audio comes back with no lines and the reason in ``notes``.
    """
    found = existing_subtitles(video)
    if found is not None and found.lines:
        return found
    notes = list(found.notes) if found is not None else []
    if transcriber is None:
        notes.append("no subtitles (add --transcribe to recognize speech)")
        return Transcript((), "none", "", None, tuple(notes))
    audio = load_audio(video)
    notes.extend(audio.notes)
    if audio.samples is None:
        notes.append(audio.reason or "no audio")
        return Transcript((), "speech", transcriber.name, None, tuple(notes))
    lines, language = transcriber.transcribe(audio.samples)
    if not lines:
        notes.append("no speech recognized")
    return Transcript(lines, "speech", transcriber.name, language, tuple(notes))


def transcript_or_reason(video: Path, transcriber: Transcriber | None) -> Transcript | str:
    """:func:`transcribe_video`, or one line saying why it failed (a recognizer that raised).

    The file's content never makes it fail; a recognizer can (a library bug, memory). That
    video is then left without a recorded transcript, so the next run tries it again, and the
    rest of the pass goes on: its vectors are stored already.
    """
    try:
        return transcribe_video(video, transcriber)
    except Exception as e:  # noqa: BLE001 -- any recognizer failure is this video's, not the run's
        LOG.warning("transcribing %s failed", video, exc_info=True)
        name = getattr(transcriber, "name", "the recognizer")
        return f"{name} failed on this video ({type(e).__name__}: {str(e).strip()[:200] or 'no message'})"
