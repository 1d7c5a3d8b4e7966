"""The index run's progress file: ``<library>/progress.json``, how far a running ``index`` is.

The run that holds the writer lock writes it (atomically: a reader sees the old file or the new
one) as files finish, and removes it at the end. Readers (the web server's library view) trust it
only while the writer lock is held: a file left by a killed run is ignored, and the next run
overwrites it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidsearch.fileio import atomic_write_text
from vidsearch.store.locks import WRITE_LOCK, lock_held

__all__ = ["PROGRESS_FILE", "IndexProgress", "clear_progress", "read_progress", "write_progress"]

PROGRESS_FILE = "progress.json"


@dataclass(frozen=True)
class IndexProgress:
    """Where an index run is: ``done`` of ``total`` files (``failed`` of them failed), the last one."""

    total: int
    done: int = 0
    failed: int = 0
    last: str | None = None  # the file finished most recently (its name, not its folder)
    pid: int = 0
    started_at: float = 0.0  # Unix time
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what the file holds and the API sends)."""
        return asdict(self)


def write_progress(root: Path, progress: IndexProgress) -> None:
    """Replace the library's progress file with ``progress`` (stamped now)."""
    stamped = {**progress.to_dict(), "updated_at": time.time()}
    atomic_write_text(root / PROGRESS_FILE, json.dumps(stamped))


def clear_progress(root: Path) -> None:
    """Remove the progress file (the run is over); a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(root / PROGRESS_FILE)


def read_progress(root: Path) -> IndexProgress | None:
    """The running index's progress, or None: no run, or a file a run that is gone left behind."""
    if not lock_held(root / WRITE_LOCK):
        return None
    try:
        data = json.loads((root / PROGRESS_FILE).read_text(encoding="utf-8"))
        return IndexProgress(
            total=int(data["total"]),
            done=int(data.get("done", 0)),
            failed=int(data.get("failed", 0)),
            last=None if data.get("last") is None else str(data["last"]),
            pid=int(data.get("pid", 0)),
            started_at=float(data.get("started_at", 0.0)),
            updated_at=float(data.get("updated_at", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):  # not written yet, or not ours
        return None
