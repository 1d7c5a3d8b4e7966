"""Sources: what an index run reads. A file today; a live stream is another implementation.

A source is an identity (:attr:`Source.uri`, the library's key for it), the version of its
content the library compares on the next run (:attr:`Source.size`, :attr:`Source.mtime_ns`,
:meth:`Source.fingerprint`), and a :attr:`Source.clock` saying what the times of its segments
mean: ``"media"`` (seconds into a file) or ``"wall"`` (seconds since the epoch, for a stream
whose windows arrive as it is recorded). Producers (:mod:`vidsearch.indexer.producer`) open a
reader for a source; sinks (:mod:`vidsearch.indexer.sink`) store what came of it under its
identity. Below the scanner nothing calls ``os.stat``: a file's stat is taken once, here.

A live stream (``vidsearch watch rtsp://...``) is a new class with ``clock = "wall"`` and its own
producer (a PyAV reader that cuts windows as frames arrive); the runner and the sinks take it as
they take a :class:`FileSource`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

from vidsearch.paths import canonical_path

__all__ = ["Clock", "FileSource", "NOT_REGULAR", "Source", "file_source"]

Clock = Literal["media", "wall"]

# A FIFO, socket or device named like a video would block (or never end) the first read.
NOT_REGULAR = "not a regular file"


@runtime_checkable
class Source(Protocol):
    """Something to index, as producers and sinks see it."""

    @property
    def uri(self) -> str:
        """Its identity in the library (a canonical path for a file, a URL for a stream)."""
        ...

    @property
    def clock(self) -> Clock:
        """``"media"``: segment times are seconds into the content; ``"wall"``: seconds since the epoch."""
        ...

    @property
    def size(self) -> int:
        """Bytes of content when the run saw it (-1: unknown, as for a stream)."""
        ...

    @property
    def mtime_ns(self) -> int:
        """Its last change when the run saw it (0: unknown)."""
        ...

    def fingerprint(self) -> str:
        """A content fingerprint that survives renames ("" when it has none).

        Raises:
            OSError: the content cannot be read.
        """
        ...


@dataclass(frozen=True)
class FileSource:
    """A video file as the scan found it (``path`` canonical: symlinked folders resolved)."""

    path: str
    size: int
    mtime_ns: int
    clock: ClassVar[Clock] = "media"

    @property
    def uri(self) -> str:
        """The file's canonical path."""
        return self.path

    def fingerprint(self) -> str:
        """Size plus head, middle and tail bytes (:func:`vidsearch.media.fingerprint`)."""
        # Here, not at the top: the media package (numpy, decord) is most of a bare scan's cost.
        from vidsearch.media.fingerprint import fingerprint

        return fingerprint(self.path, self.size)


def file_source(path: str) -> FileSource | tuple[str, str]:
    """The :class:`FileSource` of ``path`` (made canonical), or ``(path, reason)`` when it cannot be one.

    Only regular files are sources: anything else is refused here, before anything opens it.
    """
    path = canonical_path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return path, "file not found (it vanished, or is a broken symlink)"
    except OSError as exc:
        return path, f"cannot stat: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return path, NOT_REGULAR
    return FileSource(path, st.st_size, st.st_mtime_ns)
