"""Speech recognizers behind one :class:`Transcriber` protocol, opened by name with :func:`open_transcriber`.

``whisper[:SIZE]`` (faster-whisper, the ``speech`` extra) is the recommended backend;
``pocketsphinx`` ships its en-US model in its wheel and needs no download, but it is weak: on
espeak-ng speech it gets most words wrong while timing them well (benchmarks/speech_proof.py).
"""

from __future__ import annotations

import importlib.util
import io
import re
from typing import Protocol, runtime_checkable

import numpy as np

from vidsearch.errors import InputError, ModelError
from vidsearch.speech.audio import SAMPLE_RATE
from vidsearch.speech.transcript import Line, Word

__all__ = [
    "BACKENDS",
    "BACKEND_NOTES",
    "Transcriber",
    "open_transcriber",
    "prepare_backend",
    "backend_status",
    "PocketSphinxTranscriber",
]

BACKENDS = ("whisper", "pocketsphinx")
# Shown by `info` and the CLI's help, so nobody picks the fallback expecting Whisper's quality.
BACKEND_NOTES = {
    "whisper": "faster-whisper (vidsearch[speech]); weights from the Hugging Face hub, cached; recommended",
    "pocketsphinx": "bundled en-US model, no download; weak: most words wrong on synthetic speech, times right",
}


@runtime_checkable
class Transcriber(Protocol):
    """Turns 16 kHz mono float32 audio into timed lines with word times.

    ``name`` is the backend as stored with each segment (``pocketsphinx``, ``whisper:small``).
    """

    name: str

    def transcribe(self, samples: np.ndarray) -> tuple[tuple[Line, ...], str | None]:
        """Lines with word times (seconds from the start of ``samples``) and the language, if known."""
        ...


DEFAULT_WHISPER = "small"  # what a bare `whisper` means


def backend_name(spec: str) -> str:
    """The name a backend spec is recorded under (``whisper`` is ``whisper:small``)."""
    name, _, size = spec.strip().partition(":")
    name = name.lower()
    return f"whisper:{size or DEFAULT_WHISPER}" if name == "whisper" else name


def backend_status() -> dict[str, dict[str, str | bool]]:
    """Each backend: whether its package is installed (no import, no model load) and what it is."""
    packages = {"whisper": "faster_whisper", "pocketsphinx": "pocketsphinx"}
    return {
        name: {"installed": importlib.util.find_spec(package) is not None, "note": BACKEND_NOTES[name]}
        for name, package in packages.items()
    }


def open_transcriber(spec: str, device: str = "auto") -> Transcriber:
    """The recognizer a ``--transcribe`` value names: ``pocketsphinx``, ``whisper`` or ``whisper:SIZE``.

    Raises:
        InputError: an unknown backend (the message lists the valid ones).
        ModelError: the backend's package is not installed, or (Whisper) its weights cannot be found.
    """
    name, _, size = spec.strip().partition(":")
    name = name.lower()
    if name == "pocketsphinx" and not size:
        return PocketSphinxTranscriber()
    if name == "whisper":
        from vidsearch.speech.whisper import WhisperTranscriber

        return WhisperTranscriber(size or DEFAULT_WHISPER, device=device)
    raise InputError(
        f"unknown speech backend {spec!r}; use one of: whisper, whisper:SIZE (tiny, base, small, medium, "
        "large-v3, or a Hugging Face repo of a CTranslate2 model), pocketsphinx"
    )


def prepare_backend(spec: str) -> None:
    """Check that a backend can run here, without loading its model (fail before a long run).

    For Whisper this finds the weights (in the cache, or downloads them once); for PocketSphinx
    it imports the package.

    Raises:
        InputError: an unknown backend. ModelError: its package or weights are missing.
    """
    name, _, size = spec.strip().partition(":")
    name = name.lower()
    if name == "whisper":
        from vidsearch.speech.whisper import whisper_weights

        whisper_weights(size or DEFAULT_WHISPER)
    elif name == "pocketsphinx" and not size:
        try:
            import pocketsphinx  # noqa: F401
        except ImportError as e:
            raise ModelError(
                "the pocketsphinx backend needs its package: pip install 'vidsearch[speech]' (or pocketsphinx)"
            ) from e
    else:
        open_transcriber(spec)  # raises the InputError naming the valid backends


# PocketSphinx marks alternative pronunciations "word(2)" and fills pauses with these tokens.
_ALTERNATIVE = re.compile(r"\(\d+\)$")
_NOT_WORDS = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")


class PocketSphinxTranscriber:
    """PocketSphinx 5 with its bundled US English model, one utterance per stretch of speech.

    Its own voice activity detector (:class:`pocketsphinx.Segmenter`) cuts the audio at pauses;
    each stretch is decoded alone and becomes one line, its words timed to 10 ms frames.
    """

    name = "pocketsphinx"
    FRAME_SECONDS = 0.01  # the acoustic model's frame rate

    def __init__(self) -> None:
        try:
            import pocketsphinx
        except ImportError as e:
            raise ModelError(
                "the pocketsphinx backend needs its package: pip install 'vidsearch[speech]' (or pocketsphinx)"
            ) from e
        pocketsphinx.set_loglevel("FATAL")
        self._pocketsphinx = pocketsphinx
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def transcribe(self, samples: np.ndarray) -> tuple[tuple[Line, ...], str | None]:
        """See :class:`Transcriber`."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        segmenter = self._pocketsphinx.Segmenter(sample_rate=SAMPLE_RATE)
        lines: list[Line] = []
        for speech in segmenter.segment(io.BytesIO(pcm)):
            d = self._decoder
            d.start_utt()
            d.process_raw(speech.pcm, full_utt=True)
            d.end_utt()
            words = [
                Word(
                    speech.start_time + seg.start_frame * self.FRAME_SECONDS,
                    speech.start_time + (seg.end_frame + 1) * self.FRAME_SECONDS,
                    _ALTERNATIVE.sub("", seg.word),
                )
                for seg in d.seg()
                if not _NOT_WORDS.match(seg.word)
            ]
            if words:
                text = " ".join(w.text for w in words)
                lines.append(Line(words[0].start, words[-1].end, text, tuple(words)))
        return tuple(lines), "en"
