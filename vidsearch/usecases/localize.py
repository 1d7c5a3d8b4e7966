"""Finding where in one video a text happens (``vidsearch localize``), with or without a library."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.errors import InputError
from vidsearch.models.registry import precision_before_load
from vidsearch.store.library import Library
from vidsearch.store.location import library_exists
from vidsearch.usecases.encoders import space_encoder
from vidsearch.usecases.spaces import resolve_space

__all__ = ["Localized", "localize", "localize_people"]


@dataclass(frozen=True)
class Localized:
    """Spans of a text in a video, the windows they were found over, and the encoder's key."""

    spans: list[Any]  # vidsearch.spans.Span, best first
    windows: Any  # vidsearch.enrich.windows.WindowEmbeddings
    key: str  # the space (or, without a library, the encoder) that ran: weights and precision


def localize(
    library_path: Path | None,
    video: Path,
    text: str,
    config: Any,
    *,
    model: str | None = None,
    precision: str = "auto",
    checkpoint: str | None = None,
    model_config: str | None = None,
    use_cache: bool = True,
    device: str = "auto",
) -> Localized:
    """Spans of ``text`` in ``video`` (``config``: a :class:`~vidsearch.enrich.localize.LocalizeConfig`).

    With a library (at ``library_path`` or the default place), the space ``model`` and
    ``precision`` resolve to gives the model and the window cache; without one, ``model`` (default
    ``viclip-b16``) is loaded as ``index --model`` loads it, at ``precision``, and windows are
    cached in the user cache directory.

    Raises:
        InputError: no such video file; ``checkpoint``/``model_config`` with a library.
        ModelError: ``precision`` does not fit this machine (before the model loads).
        LibraryError: no such space.
        MediaError: the file cannot be decoded.
    """
    from vidsearch.enrich.localize import localize_file, localize_in_library

    if not video.is_file():
        raise InputError(f"{video}: {'is a directory, not a video file' if video.is_dir() else 'no such video file'}")
    if not library_exists(library_path):
        resolved = precision_before_load(precision, device)  # a precision that does not fit fails before loading
        spans, windows, key = localize_file(
            video, text, config, model=model or "viclip-b16", checkpoint=checkpoint, model_config=model_config,
            use_cache=use_cache, device=device, precision=resolved,
        )  # fmt: skip
        return Localized(spans, windows, key)
    if checkpoint is not None or model_config is not None:
        raise InputError(
            "apply only without a library (the library's space says which weights)", argument="checkpoint/model_config"
        )
    with Library.open(library_path, create=False) as lib:
        key = resolve_space(lib, model, precision).key
        spans, windows = localize_in_library(
            lib, video, text, config, space_key=key, use_cache=use_cache, device=device
        )
    return Localized(spans, windows, key)


def localize_people(
    library_path: Path | None,
    video: Path,
    text: str,
    config: Any,
    detector: Callable[[], Any],
    *,
    model: str | None = None,
    precision: str = "auto",
    device: str = "auto",
    top: int = 3,
) -> list[Any]:
    """The person tubes of ``video`` that best match ``text``, scored by a library space's model.

    ``config`` is an :class:`~vidsearch.enrich.actors.ActorConfig`; ``detector()`` loads the person
    detector, after the space's model (a wrong ``--model`` fails before the detector loads). Returns :class:`~vidsearch.enrich.actors.ActorHit` s, best first.

    Raises:
        LibraryError: no library, or no such space.
    """
    from vidsearch.enrich.actors import localize_actors

    with Library.open(library_path, create=False) as lib:
        encoder = space_encoder(resolve_space(lib, model, precision), device)
    return localize_actors(video, text, encoder, detector(), config, top=top)
