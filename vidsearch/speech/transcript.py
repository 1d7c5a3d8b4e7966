"""What was said in a video: timed lines, each with optional word times, and their export formats.

Every source of words (a sidecar subtitle file, a subtitle stream in the container, a speech
recognizer) produces the same :class:`Transcript`, so storage, search and export need not know
where the words came from. Subtitles time whole lines; recognizers also time each word.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pysubs2

__all__ = ["Word", "Line", "Transcript", "words_json", "words_from_json", "to_srt", "to_vtt", "to_json"]


@dataclass(frozen=True)
class Word:
    """One recognized word and when it is spoken (seconds from the start of the video)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Line:
    """A timed line: a subtitle cue or a recognizer's segment.

    ``words`` is empty when only the line is timed (subtitles); otherwise ``text`` is the words
    joined by single spaces, so a character offset in ``text`` names a word.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """A video's lines, where they came from, and what was skipped on the way.

    ``source`` says where the words came from (``sidecar``, ``embedded`` or ``speech``);
    ``backend`` names it exactly (the subtitle file's name, ``stream 2 (mov_text)``,
    ``pocketsphinx``, ``whisper:small``). ``notes`` are reasons worth showing a user (cues with
    unreadable times skipped, a guessed encoding); an empty ``lines`` always comes with a note.
    """

    lines: tuple[Line, ...]
    source: str
    backend: str
    language: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def words_json(words: tuple[Word, ...]) -> str | None:
    """Word times as compact JSON ``[[start, end, text], ...]`` (None for a line without them)."""
    if not words:
        return None
    return json.dumps([[round(w.start, 3), round(w.end, 3), w.text] for w in words], ensure_ascii=False)


def words_from_json(text: str | None) -> tuple[Word, ...]:
    """The inverse of :func:`words_json`."""
    if not text:
        return ()
    return tuple(Word(float(s), float(e), str(t)) for s, e, t in json.loads(text))


def _as_subs(lines: list[Line]) -> pysubs2.SSAFile:
    import pysubs2

    subs = pysubs2.SSAFile()
    for line in lines:
        # pysubs2 stores milliseconds; "\N" is its (ASS) line break
        text = line.text.replace("\n", "\\N")
        subs.append(pysubs2.SSAEvent(start=round(line.start * 1000), end=round(line.end * 1000), text=text))
    return subs


def to_srt(lines: list[Line]) -> str:
    """The lines as a SubRip file."""
    return str(_as_subs(lines).to_string("srt"))


def to_vtt(lines: list[Line]) -> str:
    """The lines as a WebVTT file (what a browser's ``<track>`` plays)."""
    return str(_as_subs(lines).to_string("vtt"))


def to_json(lines: list[Line]) -> list[dict[str, Any]]:
    """The lines as JSON-friendly dicts, word times included where known."""
    return [
        {
            "start": round(line.start, 3),
            "end": round(line.end, 3),
            "text": line.text,
            "words": [{"start": round(w.start, 3), "end": round(w.end, 3), "text": w.text} for w in line.words],
        }
        for line in lines
    ]
