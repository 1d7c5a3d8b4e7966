"""Temporal localization of a text in one video: spans ``(start, end, score)`` from fine windows.

The video's fine windows are embedded (or loaded from the cache) by
:func:`vidsearch.enrich.windows.embed_windows`, scored against the text, and turned into spans
by :func:`vidsearch.spans.localize_windows` (the algorithm is described there). Spans of query
results come from the windows the library already stores
(:func:`vidsearch.search.best_spans_for_hits`); the Charades-STA metrics are
:func:`vidsearch.metrics.localization_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.enrich.window_cache import WindowCache, WindowEmbeddings
from vidsearch.enrich.windows import embed_windows
from vidsearch.errors import InputError
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec
from vidsearch.spans import Span, localize_windows

__all__ = [
    "LocalizeConfig",
    "spans_for_query",
    "localize_video",
    "localize_in_library",
    "localize_file",
    "user_window_cache",
]


# Longer than any video: a window or stride past it is a typo, and overflows the frame arithmetic.
MAX_SECONDS = 1e7


@dataclass(frozen=True)
class LocalizeConfig:
    """Window geometry and span extraction settings (None = automatic, see module docstring)."""

    window: float | None = None  # window length (s); None: duration / 8 clamped to [1, 8] s
    stride: float | None = None  # seconds between window starts; None: window / 4
    smooth: float | None = None  # Gaussian sigma (s) over the curve; None: one stride; 0: off
    nms_iou: float = 0.5  # drop candidates overlapping a better one above this IoU
    top: int = 3  # spans returned

    def __post_init__(self) -> None:
        for name in ("window", "stride"):
            value = getattr(self, name)
            if value is not None and not (0 < value <= MAX_SECONDS):
                raise InputError(
                    f"must be a positive number of seconds, at most {MAX_SECONDS:g} (got {value})", argument=name
                )
        if self.smooth is not None and not (0 <= self.smooth <= MAX_SECONDS):
            raise InputError(f"must be >= 0 seconds (got {self.smooth})", argument="smooth")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise InputError(f"must be in [0, 1] (got {self.nms_iou})", argument="nms_iou")
        if self.top < 1:
            raise InputError(f"must be at least 1 (got {self.top})", argument="top")


def spans_for_query(
    emb: WindowEmbeddings, xq: np.ndarray, config: LocalizeConfig, top: int | None = None
) -> list[Span]:
    """The best spans of query vector ``xq`` over a video's fine windows.

    Args:
        emb: the video's window embeddings.
        xq: the query embedding ``[D]``.
        config: span extraction settings (smoothing defaults to one stride).
        top: spans returned (None: ``config.top``).
    """
    smooth = config.smooth if config.smooth is not None else emb.stride
    return localize_windows(emb.windows(xq), smooth=smooth, nms_iou=config.nms_iou, top=top or config.top)


def localize_video(
    path: Path | str,
    text: str,
    encoder: Any,
    config: LocalizeConfig | None = None,
    cache: WindowCache | None = None,
    xq: np.ndarray | None = None,
) -> tuple[list[Span], WindowEmbeddings]:
    """The ``config.top`` best spans of ``text`` in a video, from fine windows (cached).

    Args:
        path: the video file.
        text: what to find.
        encoder: the encoder (its text and video towers).
        config: window geometry and span extraction.
        cache: window embedding cache (None: none).
        xq: the text's embedding, when the caller already has it.

    Raises:
        InputError: empty text or no such file.
        MediaError: the file cannot be decoded.
    """
    config = config or LocalizeConfig()
    if xq is None:
        if not text or not text.strip():
            raise InputError('the text is empty; say what to find, e.g. vidsearch localize clip.mp4 "a dog jumps"')
        xq = encoder.encode_text([text.strip()])[0]
    emb = embed_windows(path, encoder, config.window, config.stride, cache)
    return spans_for_query(emb, xq, config), emb


def localize_in_library(
    library: Any,
    path: Path | str,
    text: str,
    config: LocalizeConfig | None = None,
    *,
    space_key: str | None = None,
    use_cache: bool = True,
    device: str = "auto",
) -> tuple[list[Span], WindowEmbeddings]:
    """:func:`localize_video` with a library's model, caching windows under ``<library>/cache/windows``.

    Args:
        library: an open library (its space gives the model; the video need not be in it).
        path: the video file.
        text: what to find.
        config: window geometry and span extraction.
        space_key: the embedding space whose model to use (None: the most recent one).
        use_cache: read and write the library's window embedding cache.
        device: where the model runs.

    Raises:
        InputError: empty text or no such file.
        LibraryError: no such space.
        MediaError: the file cannot be decoded.
    """

    space = library.space(space_key)
    cache = WindowCache(Path(library.root) / "cache" / "windows") if use_cache else None
    encoder = open_encoder(EncoderSpec.for_space(space, device=device))
    return localize_video(path, text, encoder, config, cache)


def user_window_cache() -> WindowCache:
    """The window cache of videos localized without a library: ``<vidsearch cache dir>/windows``."""
    from vidsearch.models.checkpoint_io import cache_dir

    return WindowCache(cache_dir() / "windows")


def localize_file(
    path: Path | str,
    text: str,
    config: LocalizeConfig | None = None,
    *,
    model: str = "viclip-b16",
    checkpoint: str | None = None,
    model_config: str | None = None,
    use_cache: bool = True,
    device: str = "auto",
    precision: str = "auto",
) -> tuple[list[Span], WindowEmbeddings, str]:
    """:func:`localize_video` of one file with no library: ``model`` as ``index --model`` takes it.

    Returns:
        ``(spans, window embeddings, key)``: ``key`` names the encoder that ran (its weights and
        precision), as a library's space key would.

    The windows are cached in the user cache directory (:func:`user_window_cache`), keyed by the
    video's content and the model's key, which carries the precision (``auto``, ``fp32``,
    ``int8``, ``bf16``, ``fp16``; see :mod:`vidsearch.precision`), as a library's cache is.

    Raises:
        InputError: empty text or no such file.
        ModelError, CheckpointError, WeightsNotFoundError: the model cannot be loaded.
        MediaError: the file cannot be decoded.
    """

    if not Path(path).expanduser().is_file():
        raise InputError(f"{path}: no such video file")
    encoder = open_encoder(
        EncoderSpec(model, checkpoint=checkpoint, config=model_config, device=device, precision=precision)
    )
    spans, emb = localize_video(path, text, encoder, config, user_window_cache() if use_cache else None)
    return spans, emb, str(encoder.key)
