"""Long ``IN (...)`` lists in pieces SQLite accepts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from sqlalchemy import bindparam

__all__ = ["MAX_PARAMS", "chunked", "bound_list"]

T = TypeVar("T")

# Under SQLite's default bound-parameter limit (999 before 3.32), with room for the query's own.
MAX_PARAMS = 900


def chunked(values: Iterable[T], size: int = MAX_PARAMS) -> Iterator[list[T]]:
    """``values`` as consecutive lists of at most ``size`` items."""
    items = list(values)
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def bound_list(name: str) -> Any:
    """A list parameter for ``column.in_(...)``, its values given at execution (``{name: [...]}``).

    A literal list makes SQLAlchemy check every value and compile the statement again for each
    length; a statement built once with this is compiled once. Queries a search runs for every
    hit (segments, windows, videos) use it.
    """
    return bindparam(name, expanding=True)
