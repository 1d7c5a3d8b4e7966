"""Watched streams' names: recorded as a watch starts, so a stream is found and shown by its name."""

from __future__ import annotations

from collections.abc import Sequence

from vidsearch.store import sources as stored_sources
from vidsearch.store.library import Library

__all__ = ["name_streams"]


def name_streams(library: Library, streams: Sequence[tuple[str, str]]) -> None:
    """Record each ``(name, url)`` of a watch: ``query --source NAME`` then finds the stream by name."""
    with library.session() as s:
        for name, uri in streams:
            stored_sources.name_stream(s, name, uri)
