"""A :class:`ProgressSink` that keeps the library's progress file up to date while an index run goes.

Other processes (the web server's library view) read it to show "indexing N of M". It passes
every call on to the run's own sink (the CLI's progress bar), and never fails the run: a progress
file that cannot be written (full disk, read-only folder) is logged once and left alone.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import TracebackType

from vidsearch.indexer.options import ProgressSink
from vidsearch.store.progress import IndexProgress, clear_progress, write_progress

__all__ = ["FileProgress"]

LOG = logging.getLogger(__name__)


class FileProgress:
    """Writes ``<library>/progress.json`` on start and after every file; removes it on exit."""

    def __init__(self, root: Path, inner: ProgressSink | None = None) -> None:
        self._root = root
        self._inner = inner
        self._progress: IndexProgress | None = None
        self._broken = False

    def __enter__(self) -> FileProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None and not self._broken:
            try:
                clear_progress(self._root)
            except OSError as err:  # a reader ignores it anyway once the writer lock is free
                LOG.warning("could not remove the progress file: %s", err)

    def start(self, total: int) -> None:
        """``total`` files are going to be decoded and encoded."""
        self._progress = IndexProgress(total=total, pid=os.getpid(), started_at=time.time())
        self._write()
        if self._inner is not None:
            self._inner.start(total)

    def advance(self, path: str, ok: bool) -> None:
        """One file is done (committed or failed)."""
        if self._progress is not None:
            p = self._progress
            self._progress = IndexProgress(
                total=p.total,
                done=p.done + 1,
                failed=p.failed + (not ok),
                last=os.path.basename(path) or path,  # the name only: readers may be web clients
                pid=p.pid,
                started_at=p.started_at,
            )
            self._write()
        if self._inner is not None:
            self._inner.advance(path, ok)

    def _write(self) -> None:
        if self._broken or self._progress is None:
            return
        try:
            write_progress(self._root, self._progress)
        except OSError as err:
            self._broken = True
            LOG.warning("progress file not written (indexing goes on): %s", err)
