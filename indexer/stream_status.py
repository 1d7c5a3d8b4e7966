"""Each watched stream's status, on disk for other processes (the web page's streams view).

While ``vidsearch watch`` runs, :class:`StatusBoard` keeps two files per stream in the stream's
folder under the recordings root (:func:`~vidsearch.indexer.live.recordings_folder`, so a
``--no-record`` watch has one too): ``status.json`` (name, URI without its password, state,
counts, ``updated_at``) and ``frame.jpg`` (the newest window's last frame). Both are replaced
atomically (temp + rename), so a reader never sees half a file. ``status.json`` is rewritten at
least every :data:`WRITE_EVERY` seconds while the watch runs, which is how a reader tells a live
watch from one that died (:func:`is_stale`); the frame at most every :data:`FRAME_EVERY` seconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vidsearch.fileio import atomic_write, atomic_write_text
from vidsearch.media.jpeg import encode_jpeg
from vidsearch.media.live import ReaderState, Window
from vidsearch.media.recorder import recordings_folder
from vidsearch.media.uri import redact_uri

__all__ = [
    "FRAME_EVERY",
    "FRAME_FILE",
    "STALE_AFTER",
    "STATUS_FILE",
    "WRITE_EVERY",
    "StatusBoard",
    "StreamStatus",
    "is_stale",
    "read_statuses",
    "stream_state",
]

LOG = logging.getLogger(__name__)

State = Literal["connecting", "connected", "reconnecting", "stopped", "failed"]
STATUS_FILE = "status.json"
FRAME_FILE = "frame.jpg"
WRITE_EVERY = 1.0  # seconds between status rewrites while nothing changes (the heartbeat)
FRAME_EVERY = 2.0  # seconds between latest-frame rewrites: a preview, not a video
# A status not rewritten for this long belongs to a watch that is no longer running (killed,
# crashed, machine off): several heartbeats, so a watch busy encoding is not called dead.
STALE_AFTER = 10.0


@dataclass(frozen=True)
class StreamStatus:
    """One stream's status as written to ``status.json`` (times UTC seconds).

    Attributes:
        name: the stream's name, as in its alerts and results.
        uri: its URL without credentials.
        state: connecting, connected, reconnecting (a gap is open), stopped or failed (never read).
        last_window: the end of the newest encoded window; None before the first.
        windows: windows cut from the stream so far.
        drops: windows dropped because the encoder fell behind.
        gaps: times the stream gave no frames.
        updated_at: when this status was written.
        error: why the stream could not be read, if it could not.
        frame_at: when ``frame.jpg`` was written; None while there is none.
    """

    name: str
    uri: str
    state: State
    last_window: float | None
    windows: int
    drops: int
    gaps: int
    updated_at: float
    error: str | None = None
    frame_at: float | None = None


def stream_state(reader: ReaderState, finished: bool) -> State:
    """The state a reader's counters mean (``finished``: the watch is done with the stream)."""
    if finished or reader.ended:
        return "failed" if reader.error is not None and not reader.connected else "stopped"
    if not reader.connected:
        return "connecting"
    return "reconnecting" if reader.gaps and reader.gaps[-1].end is None else "connected"


def is_stale(status: StreamStatus, now: float | None = None) -> bool:
    """Whether no watch has rewritten ``status`` lately (the watch is not running)."""
    return (time.time() if now is None else now) - status.updated_at > STALE_AFTER


@dataclass
class _Written:
    status: StreamStatus | None = None
    frame_at: float | None = None


class StatusBoard:
    """Writes the status files of a watch's streams under ``root`` (one folder per stream).

    Args:
        root: the recordings root; stream ``name``'s files go in ``recordings_folder(root, name)``.
        clock: the time source (UTC seconds).
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root, self.clock = root, clock
        self._written: dict[str, _Written] = {}

    def report(
        self,
        name: str,
        uri: str,
        reader: ReaderState,
        drops: int,
        window: Window | None = None,
        finished: bool = False,
    ) -> None:
        """Note a stream's state; written when it changed, on the heartbeat, or ``finished``.

        Never raises: a full disk or a removed folder costs the preview, never the watch.
        """
        seen = self._written.setdefault(name, _Written())
        now = self.clock()
        folder = recordings_folder(self.root, name)
        try:
            if window is not None and (seen.frame_at is None or now - seen.frame_at >= FRAME_EVERY):
                frame = np.asarray(window.frames[-1], dtype=np.uint8)
                atomic_write(folder / FRAME_FILE, lambda fh: fh.write(encode_jpeg(frame)))
                seen.frame_at = now
            previous = seen.status
            last_window = window.end if window is not None else (previous.last_window if previous else None)
            status = StreamStatus(
                name=name,
                uri=redact_uri(uri),
                state=stream_state(reader, finished),
                last_window=last_window,
                windows=reader.windows,
                drops=drops,
                gaps=len(reader.gaps),
                updated_at=now,
                error=reader.error,
                frame_at=seen.frame_at,
            )
            due = previous is None or now - previous.updated_at >= WRITE_EVERY
            changed = previous is None or _counts(previous) != _counts(status)
            if due or changed or finished:
                atomic_write_text(folder / STATUS_FILE, json.dumps(asdict(status)))
                seen.status = status
        except OSError as exc:
            LOG.warning("could not write the status of stream %s: %s", name, exc)


def _counts(status: StreamStatus) -> tuple[Any, ...]:
    return (status.state, status.windows, status.drops, status.gaps, status.error, status.frame_at)


def read_statuses(root: Path) -> list[tuple[StreamStatus, Path]]:
    """Every stream status under ``root`` with its folder, by name; unreadable files are skipped."""
    found = []
    for path in sorted(root.glob(f"*/{STATUS_FILE}")) if root.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found.append((StreamStatus(**data), path.parent))
        except (OSError, ValueError, TypeError) as exc:  # a foreign or older file: not a stream of ours
            LOG.debug("skipping %s: %s", path, exc)
    return sorted(found, key=lambda item: item[0].name)
