"""Spoken and subtitled test videos: espeak-ng sentences at known times, sidecar and embedded subtitles.

Plain functions (no pytest fixtures) shared by the tests and benchmarks/speech_proof.py.

- :func:`speak` synthesizes a sentence with Debian's ``espeak-ng`` (installed by ``.ci/run``);
- :func:`write_spoken_video` writes a :mod:`videogen` video whose AAC track says each sentence
  at its given time, and returns when each is actually spoken (start, end);
- :func:`write_srt` / :func:`write_vtt` write sidecar files in any encoding;
- :func:`embed_subtitles` muxes an SRT file into a copy of a video as a text stream (MP4
  ``mov_text``, MKV SubRip/ASS/WebVTT) with FFmpeg (imageio-ffmpeg's binary: PyAV cannot
  encode subtitle streams).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import videogen

__all__ = [
    "ESPEAK",
    "speak",
    "speak_words",
    "write_spoken_video",
    "write_srt",
    "write_vtt",
    "embed_subtitles",
    "ffmpeg_exe",
]

ESPEAK = shutil.which("espeak-ng")


def speak(text: str, voice: str = "en-us", wpm: int = 150) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng: float32 samples in [-1, 1] and their rate (22050 Hz)."""
    if ESPEAK is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng; see README, contributing)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run([ESPEAK, "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True, capture_output=True)
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / 32768.0), rate


def speak_words(
    text: str, voice: str = "en-us", gap: float = 0.06
) -> tuple[np.ndarray, int, list[tuple[float, float, str]]]:
    """``text`` spoken one word at a time, so each word's time is known exactly.

    Returns the samples, their rate and ``(start, end, word)`` per word (seconds from the start
    of the clip, where the word is audible). Slower and choppier than :func:`speak`, but the
    ground truth for word times and phrase spans.
    """
    pieces: list[np.ndarray] = []
    words: list[tuple[float, float, str]] = []
    at = 0
    rate = 22050
    for word in text.split():
        clip, rate = speak(word, voice)
        a, b = _voiced(clip, rate)
        clip = clip[int(a * rate) : int(b * rate)]
        words.append((at / rate, (at + len(clip)) / rate, word))
        pieces += [clip, np.zeros(int(gap * rate), dtype=np.float32)]
        at += len(clip) + int(gap * rate)
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), rate, words


def _voiced(samples: np.ndarray, rate: int, floor: float = 0.01) -> tuple[float, float]:
    """When a synthesized clip's sound starts and ends (espeak pads with silence)."""
    loud = np.flatnonzero(np.abs(samples) > floor)
    if loud.size == 0:
        return 0.0, 0.0
    return loud[0] / rate, (loud[-1] + 1) / rate


def write_spoken_video(
    path: str | Path,
    sentences: list[tuple[float, str]],
    *,
    seconds: float,
    rate: int = 22050,
    voice: str = "en-us",
    fps: int = 5,
    size: tuple[int, int] = (64, 48),
    pattern: str = "gradient",
    color: tuple[int, int, int] | None = None,
    word_times: list[list[tuple[float, float, str]]] | None = None,
) -> list[tuple[float, float, str]]:
    """Write a video whose audio says each ``(time, sentence)``; returns ``(start, end, text)`` as spoken.

    ``rate`` is the audio track's sample rate (any rate AAC takes, e.g. 22050 or 44100; the
    reader resamples). Sentences must not overlap; the truth times are where the speech is
    audible, not where its padded clip was placed. With ``word_times`` (a list to fill) each
    sentence is spoken word by word (:func:`speak_words`) and its words' times are appended.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_audio = int(seconds * rate)
    track = np.zeros(n_audio, dtype=np.float32)
    truth: list[tuple[float, float, str]] = []
    for at, text in sentences:
        if word_times is not None:
            clip, clip_rate, words = speak_words(text, voice)
            word_times.append([(at + a, at + b, w) for a, b, w in words])
        else:
            clip, clip_rate = speak(text, voice)
        if clip_rate != rate:  # resample the synthesized clip to the track's rate (linear is plenty here)
            x = np.arange(int(len(clip) * rate / clip_rate)) * clip_rate / rate
            clip = np.interp(x, np.arange(len(clip)), clip).astype(np.float32)
        i = int(at * rate)
        clip = clip[: max(0, n_audio - i)]
        track[i : i + len(clip)] += clip
        a, b = _voiced(clip, rate)
        truth.append((at + a, at + b, text))
    n_frames = max(1, int(round(seconds * fps)))
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        astream = container.add_stream("aac", rate=rate)
        astream.layout = "mono"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(
                videogen.make_frame(i, size, pattern=pattern, color=color), format="rgb24"
            )
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        for start in range(0, n_audio, 1024):
            chunk = track[start : start + 1024][None, :]
            aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts, aframe.time_base = rate, start, Fraction(1, rate)
            for packet in astream.encode(aframe):
                container.mux(packet)
        for packet in astream.encode(None):
            container.mux(packet)
    return truth


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def write_srt(path: str | Path, cues: list[tuple[float, float, str]], encoding: str = "utf-8") -> Path:
    """A SubRip file of ``(start, end, text)`` cues in ``encoding`` (``utf-8-sig``, ``utf-16``, ``cp1252``...)."""
    body = "".join(
        f"{i}\r\n{_stamp(a, ',')} --> {_stamp(b, ',')}\r\n{text}\r\n\r\n" for i, (a, b, text) in enumerate(cues, 1)
    )
    path = Path(path)
    path.write_bytes(body.encode(encoding))
    return path


def write_vtt(path: str | Path, cues: list[tuple[float, float, str]]) -> Path:
    """A WebVTT file of ``(start, end, text)`` cues (with a NOTE block, which is not text)."""
    body = "WEBVTT\n\nNOTE written by the tests\n\n" + "".join(
        f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{text}\n\n" for a, b, text in cues
    )
    path = Path(path)
    path.write_text(body, encoding="utf-8")
    return path


def ffmpeg_exe() -> str:
    """imageio-ffmpeg's FFmpeg binary (a dev dependency)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def embed_subtitles(
    video: str | Path, srt: str | Path, out: str | Path, codec: str, language: str | None = None
) -> Path:
    """Copy ``video`` to ``out`` with ``srt`` as a subtitle stream of ``codec`` (mov_text, srt, ass, webvtt)."""
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-i", str(srt), "-map", "0", "-map", "1"]
    cmd += ["-c", "copy", "-c:s", codec]
    if language:
        cmd += ["-metadata:s:s:0", f"language={language}"]
    subprocess.run([*cmd, str(out)], check=True, capture_output=True)
    return Path(out)
