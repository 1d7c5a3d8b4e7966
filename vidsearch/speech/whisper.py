"""Whisper through faster-whisper (CTranslate2): voice activity detection, language and word times.

Weights come from the Hugging Face hub by name (``small`` is ``Systran/faster-whisper-small``) and
are cached there like ViCLIP's. The cache is tried first, so a machine that has them needs no
network; a machine that has neither gets one line saying what to download, not a traceback.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from vidsearch.errors import ModelError, WeightsNotFoundError
from vidsearch.speech.transcript import Line, Word

__all__ = ["WhisperTranscriber", "whisper_repo", "whisper_weights"]

LOG = logging.getLogger(__name__)


def whisper_repo(size: str) -> str:
    """The hub repository of a Whisper size (a ``owner/name`` is itself)."""
    if "/" in size:
        return size
    import faster_whisper
    import faster_whisper.utils

    if size not in faster_whisper.available_models():
        raise ModelError(
            f"unknown Whisper size {size!r}; use one of: {', '.join(faster_whisper.available_models())} "
            "or a Hugging Face repo id of a CTranslate2 model"
        )
    # faster-whisper's own size -> repository table (not public API; the name is only for messages)
    table: dict[str, str] = getattr(faster_whisper.utils, "_MODELS", {})
    return table.get(size, size)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def whisper_weights(size: str) -> str:
    """A local folder with the CTranslate2 model: as given, from the cache, or downloaded.

    Raises:
        ModelError: faster-whisper is not installed, or an unknown size.
        WeightsNotFoundError: not cached and not downloadable (offline).
    """
    try:
        import faster_whisper  # noqa: F401
    except ImportError as e:
        raise ModelError("the whisper backend needs faster-whisper: pip install 'vidsearch[speech]'") from e
    if os.path.isdir(size):
        return size
    from faster_whisper.utils import download_model

    repo = whisper_repo(size)
    try:
        return str(download_model(size, local_files_only=True))
    except Exception:  # noqa: BLE001 - huggingface_hub raises several kinds for "not cached"
        LOG.debug("whisper %s is not in the Hugging Face cache", repo)
    if not _offline():
        try:
            return str(download_model(size))
        except Exception as e:  # noqa: BLE001 - network, auth and disk errors all end the same way
            why = f"cannot be downloaded ({type(e).__name__})"
    else:
        why = "cannot be downloaded (HF_HUB_OFFLINE is set)"
    raise WeightsNotFoundError(
        f"the Whisper model {size!r} ({repo}) is not in the Hugging Face cache and {why}; "
        f"run `hf download {repo}` on a machine with internet (same HF_HOME), or transcribe with pocketsphinx"
    )


class WhisperTranscriber:
    """faster-whisper with VAD filtering and word timestamps; int8 on CPU, float16 on CUDA."""

    def __init__(self, size: str, device: str = "auto") -> None:
        try:
            import faster_whisper
        except ImportError as e:
            raise ModelError("the whisper backend needs faster-whisper: pip install 'vidsearch[speech]'") from e
        self.name = f"whisper:{size}"
        path = whisper_weights(size)
        import ctranslate2

        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = "float16" if device == "cuda" else "int8"
        self._model = faster_whisper.WhisperModel(path, device=device, compute_type=compute)

    def transcribe(self, samples: np.ndarray) -> tuple[tuple[Line, ...], str | None]:
        """See :class:`vidsearch.speech.backends.Transcriber`."""
        segments, info = self._model.transcribe(samples, vad_filter=True, word_timestamps=True)
        lines: list[Line] = []
        for seg in segments:
            words = tuple(
                Word(float(w.start), float(w.end), w.word.strip()) for w in (seg.words or []) if w.word.strip()
            )
            if words:
                lines.append(Line(words[0].start, words[-1].end, " ".join(w.text for w in words), words))
            elif seg.text.strip():
                lines.append(Line(float(seg.start), float(seg.end), seg.text.strip()))
        return tuple(lines), info.language
