"""A video's sound as speech recognizers want it: the default audio track, 16 kHz mono float32.

PyAV decodes and FFmpeg's resampler converts any rate, layout and sample format, so files at
odd rates (11025 Hz, 44.1 kHz 5.1) need no special case here. What is special is reported, not
raised: no audio track, a track that cannot be decoded, and silence all come back as
:class:`Audio` with ``samples`` None and a ``reason`` a user can read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE", "SILENCE_RMS", "Audio", "load_audio"]

LOG = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper and PocketSphinx's en-US model are trained on
# RMS below this (-60 dBFS) is silence: nothing a recognizer could hear, so it is not run.
SILENCE_RMS = 1e-3


@dataclass(frozen=True)
class Audio:
    """Decoded speech audio, or the reason there is none.

    ``samples`` is float32 in [-1, 1] at :data:`SAMPLE_RATE` (None with ``reason`` set);
    ``notes`` records what was chosen or lost (another of several tracks, a damaged tail).
    """

    samples: np.ndarray | None
    reason: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        """Duration of the decoded audio."""
        return 0.0 if self.samples is None else len(self.samples) / SAMPLE_RATE


def load_audio(path: Path | str, max_seconds: float | None = None) -> Audio:
    """Decode the default audio track of ``path`` (or its first ``max_seconds``).

    The default track is the one the container marks as default, else FFmpeg's best audio
    stream (what a player would pick). Decoding stops at the first damaged packet and keeps
    what came before it, with a note.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        return Audio(None, f"cannot be opened ({e})")
    notes: list[str] = []
    with container:
        tracks = list(container.streams.audio)
        if not tracks:
            return Audio(None, "no audio track")
        stream = next((s for s in tracks if s.disposition & av.stream.Disposition.default), None)
        if stream is None:
            stream = tracks[0]
        if len(tracks) > 1:
            notes.append(f"{len(tracks)} audio tracks; transcribed track {stream.index}")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        got = 0
        limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    got += len(chunk)
                if limit is not None and got >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as e:
            if not chunks:
                return Audio(None, f"the audio track cannot be decoded ({e})")
            notes.append(f"audio decoding stopped at {got / SAMPLE_RATE:.1f} s ({e})")
    if not chunks:
        return Audio(None, "the audio track is empty")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if limit is not None:
        samples = samples[:limit]
    if samples.size == 0 or float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS:
        return Audio(None, "the audio is silent", tuple(notes))
    return Audio(samples, None, tuple(notes))
