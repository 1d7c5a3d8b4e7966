"""Subtitles that already exist: sidecar files beside a video and text streams inside its container.

Sidecars are ``clip.srt``, ``clip.vtt``, ``clip.ass``/``.ssa`` and their tagged forms
(``clip.en.srt``, ``clip.pt-BR.forced.vtt``); the first tag that looks like a language code is
the language. Parsing is pysubs2's (SubRip, ASS/SSA) and webvtt-py's (WebVTT: it knows NOTE and
STYLE blocks, which pysubs2 reads as text). This module only picks the file, decodes its bytes and
keeps what parses: cues whose times cannot be read, or that end before they start, are skipped
and counted in the transcript's notes, never a failure.

Embedded streams are read with PyAV, which turns every text subtitle codec (MP4 ``mov_text``,
MKV SubRip/ASS/WebVTT) into ASS dialogue lines; pysubs2 strips their style tags.
"""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

import pysubs2

from vidsearch.speech.transcript import Line, Transcript

__all__ = ["SIDECAR_EXTENSIONS", "find_sidecars", "sidecar_language", "read_sidecar", "read_embedded", "decode_text"]

LOG = logging.getLogger(__name__)

SIDECAR_EXTENSIONS = (".srt", ".vtt", ".ass", ".ssa")
# Text subtitle codecs as FFmpeg names them; bitmap ones (PGS, DVD) would need OCR.
TEXT_CODECS = frozenset({"mov_text", "subrip", "srt", "ass", "ssa", "webvtt", "text"})
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}([-_][A-Za-z]{2,4})?$")
# Tags that mark a variant rather than a language; such files rank after a plain one.
_VARIANT_TAGS = frozenset({"forced", "sdh", "cc", "hi", "default"})
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _tags(video: Path, sidecar: Path) -> list[str] | None:
    """The dot-separated tags between the video's stem and the extension, or None if not its sidecar."""
    name, stem = sidecar.name, video.stem
    if not name.startswith(stem + ".") or sidecar.suffix.lower() not in SIDECAR_EXTENSIONS:
        return None
    middle = name[len(stem) + 1 : -len(sidecar.suffix)]
    return [t for t in middle.split(".") if t] if middle else []


def sidecar_language(video: Path, sidecar: Path) -> str | None:
    """The language a sidecar's name gives (``clip.en.srt`` -> ``en``), or None."""
    for tag in _tags(video, sidecar) or []:
        if tag.lower() not in _VARIANT_TAGS and _LANGUAGE_TAG.match(tag):
            return tag.replace("_", "-")
    return None


def find_sidecars(video: Path, siblings: list[Path] | None = None) -> list[Path]:
    """The subtitle files beside ``video``, best first.

    Best: an untagged file (``clip.srt``), then one with an English tag, then the others by name;
    variants (``forced``, ``sdh``) last, since a forced track subtitles only foreign speech.
    ``siblings`` is the folder's listing when the caller already has it (one listing per folder,
    not per video).
    """
    entries = siblings
    if entries is None:
        try:
            entries = list(video.parent.iterdir())
        except OSError:
            return []
    found: list[tuple[tuple[int, int, str], Path]] = []
    for entry in entries:
        tags = _tags(video, entry)
        if tags is None or not entry.is_file():
            continue
        variant = any(t.lower() in _VARIANT_TAGS for t in tags)
        language = (sidecar_language(video, entry) or "").lower()
        order = 0 if not tags else 1 if language.startswith("en") else 2
        found.append(((int(variant), order, entry.name), entry))
    return [p for _, p in sorted(found)]


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a subtitle file's bytes; returns ``(text, encoding)``.

    A byte-order mark decides (UTF-8, UTF-16, UTF-32); otherwise UTF-8 when the bytes are valid
    UTF-8, UTF-16 when every other byte of the start is NUL (files saved without a BOM), and
    cp1252 (what Windows editors save Western subtitles as) for anything else: it maps nearly
    every byte, so a file is never refused for its encoding.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    head = data[:200]
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return data.decode("utf-16-le", errors="replace"), "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return data.decode("utf-16-be", errors="replace"), "utf-16-be"
    return data.decode("cp1252", errors="replace"), "cp1252"


def _cues_vtt(text: str) -> list[tuple[float, float, str]]:
    import webvtt
    from webvtt.errors import MalformedFileError

    try:
        captions = webvtt.from_string(text)
    except MalformedFileError as e:
        raise ValueError(f"not a WebVTT file ({e})") from e
    return [
        (c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text) for c in captions.captions
    ]


def _cues_subs(text: str, fmt: str) -> list[tuple[float, float, str]]:
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=fmt)
    except (pysubs2.exceptions.Pysubs2Error, ValueError, KeyError) as e:
        raise ValueError(f"not a {fmt.upper()} file ({e})") from e
    return [(e.start / 1000, e.end / 1000, e.plaintext) for e in subs if not e.is_comment]


def _lines(cues: list[tuple[float, float, str]]) -> tuple[list[Line], int]:
    """Cues as lines (blank ones dropped); also the number skipped for impossible times."""
    lines: list[Line] = []
    bad = 0
    for start, end, raw in cues:
        text = " ".join(raw.split())
        if not text:
            continue
        if start < 0 or end < start:
            bad += 1
            continue
        lines.append(Line(start, end, text))
    lines.sort(key=lambda line: (line.start, line.end))
    return lines, bad


def read_sidecar(video: Path, sidecar: Path) -> Transcript:
    """Read one sidecar subtitle file of ``video`` (never raises for its content).

    Returns a transcript whose notes say what was skipped or guessed: cues with unreadable or
    reversed times, a non-UTF encoding, or why nothing could be read.
    """
    backend = sidecar.name
    language = sidecar_language(video, sidecar)
    try:
        data = sidecar.read_bytes()
    except OSError as e:
        return Transcript((), "sidecar", backend, language, (f"{sidecar.name}: cannot be read ({e.strerror or e})",))
    text, encoding = decode_text(data)
    notes: list[str] = []
    if encoding not in ("utf-8", "utf-8-sig"):
        notes.append(f"{sidecar.name}: read as {encoding}")
    ext = sidecar.suffix.lower()
    try:
        cues = _cues_vtt(text) if ext == ".vtt" else _cues_subs(text, ext[1:])
    except ValueError as e:
        notes.append(f"{sidecar.name}: {e}")
        return Transcript((), "sidecar", backend, language, tuple(notes))
    lines, reversed_times = _lines(cues)
    # Both parsers drop a cue whose timing line they cannot read; the arrows they left say how many.
    unreadable = max(0, text.count("-->") - len(cues)) if ext in (".srt", ".vtt") else 0
    if unreadable:
        notes.append(f"{sidecar.name}: {unreadable} cue(s) with unreadable times skipped")
    if reversed_times:
        notes.append(f"{sidecar.name}: {reversed_times} cue(s) ending before they start skipped")
    if not lines:
        notes.append(f"{sidecar.name}: no subtitle lines could be read")
    return Transcript(tuple(lines), "sidecar", backend, language, tuple(notes))


def read_embedded(video: Path) -> Transcript | None:
    """The best text subtitle stream inside ``video``, or None when it has none.

    Best: the stream marked default, else the first text one. Image-based subtitle streams (PGS,
    DVD) are passed over with a note, since reading them would need OCR.
    """
    import av

    try:
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as e:
        LOG.debug("no subtitle streams read from %s: %s", video, e)
        return None
    with container:
        streams = list(container.streams.subtitles)
        text_streams = [s for s in streams if s.codec_context.name in TEXT_CODECS]
        if not text_streams:
            if not streams:
                return None
            names = ", ".join(sorted({s.codec_context.name for s in streams}))
            return Transcript((), "embedded", "image subtitles", None, (f"only image subtitle streams ({names})",))
        stream = next((s for s in text_streams if s.disposition & av.stream.Disposition.default), text_streams[0])
        language = stream.metadata.get("language")
        language = None if language in (None, "", "und") else language
        backend = f"stream {stream.index} ({stream.codec_context.name})"
        cues: list[tuple[float, float, str]] = []
        notes: list[str] = []
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                start = float(packet.pts * packet.time_base)
                end = start + float((packet.duration or 0) * packet.time_base)
                for sub in packet.decode():
                    dialogue = getattr(sub, "dialogue", b"")
                    text = dialogue.decode("utf-8", errors="replace") if isinstance(dialogue, bytes) else ""
                    cues.append((start, end, pysubs2.SSAEvent(text=text).plaintext))
        except av.error.FFmpegError as e:
            notes.append(f"{backend}: stopped reading at a damaged packet ({e})")
    lines, reversed_times = _lines(cues)
    if reversed_times:
        notes.append(f"{backend}: {reversed_times} cue(s) with impossible times skipped")
    if not lines:
        notes.append(f"{backend}: no subtitle lines could be read")
    return Transcript(tuple(lines), "embedded", backend, language, tuple(notes))
