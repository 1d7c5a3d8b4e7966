"""Advisory file locks that say who holds the library instead of blocking."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from vidsearch.errors import LibraryError

__all__ = ["file_lock"]


@contextlib.contextmanager
def file_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block; fail at once when it is taken.

    Args:
        path: the lock file (created when missing; its content is never used).
        busy: the one-line message of the :class:`LibraryError` raised when another process holds it.

    Raises:
        LibraryError: another process holds the lock.
    """
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LibraryError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
