"""Long ``IN (...)`` lists in pieces SQLite accepts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["MAX_PARAMS", "chunked"]

T = TypeVar("T")

# Under SQLite's default bound-parameter limit (999 before 3.32), with room for the query's own.
MAX_PARAMS = 900


def chunked(values: Iterable[T], size: int = MAX_PARAMS) -> Iterator[list[T]]:
    """``values`` as consecutive lists of at most ``size`` items."""
    items = list(values)
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]
