"""What the library knows about one video's actions (``vidsearch labels``): labels, timeline, people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidsearch.errors import InputError
from vidsearch.store.library import Library
from vidsearch.usecases.spaces import resolve_space

__all__ = ["video_annotations"]


def video_annotations(
    library: Library, path: Path | str, label_set: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """A video's label sets (labels, open-set verdict, timeline over windows) and its person tubes.

    Args:
        library: an open library.
        path: the video's file.
        label_set: only this label set (None: every applied one).
        model: only labels of the space this ``--model`` means (None: of any space).

    Returns:
        ``{"path", "label_sets": [...], "actors": [scans]}`` (see
        :func:`vidsearch.enrich.recognize.video_labels` and
        :func:`vidsearch.enrich.actors_library.video_actors`).

    Raises:
        InputError: the video has neither labels nor person tubes yet.
        LibraryError: no such space.
    """
    from vidsearch.enrich.actors_library import video_actors
    from vidsearch.enrich.recognize import video_labels

    space = resolve_space(library, model) if model is not None else None
    actors = video_actors(library, path, label_set=label_set)
    try:
        info = video_labels(library, path, label_set=label_set, space=space)
    except InputError:
        if not actors["scans"]:
            raise InputError(
                f"{actors['path']} has no labels yet; run `vidsearch enrich recognize` or `vidsearch enrich actors`"
            ) from None
        info = {"path": actors["path"], "label_sets": []}
    return {**info, "actors": actors["scans"]}
