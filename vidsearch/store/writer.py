"""The writer of one embedding space: rows, vectors and the FAISS index, always in that order.

Every change an index run makes to a space goes through :class:`SpaceWriter`, which owns the
order that makes a crash at any moment survivable:

1. one SQLite transaction per batch: video rows, segments, their vectors, and the space's
   *generation* bumped once (:func:`vidsearch.store.spaces.bump_generation`);
2. only after the commit, the in-memory vector index: so it never holds a vector SQLite does not;
3. a background rebuild when the index policy asks for one, swapped in synced by id difference;
4. on :meth:`SpaceWriter.close` the index file is saved as reflecting the last committed
   generation. After a hard crash (no save) the library syncs the file from SQLite when it next
   opens the space (:meth:`vidsearch.store.library.Library.vector_index`).

Callers describe what to store with :class:`VideoRows` and :class:`FailedVideo`: a source's
identity (``uri``, a path for files) and the version of its content the rows were made from;
nothing here looks at the file system.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.errors import DiskFullError, VidsearchError
from vidsearch.store import segments as stored_segments
from vidsearch.store import spaces as stored_spaces
from vidsearch.store import videos as stored_videos
from vidsearch.store.segments import SpanRow
from vidsearch.store.spaces import SpaceInfo

if TYPE_CHECKING:
    from vidsearch.store.library import Library
    from vidsearch.store.vectors.protocol import SpaceIndex

__all__ = ["FailedVideo", "SpaceWriter", "VideoRows", "record_failure"]

LOG = logging.getLogger(__name__)

_REASON_LIMIT = 500


@dataclass
class VideoRows:
    """One decoded and encoded source, as the library stores it.

    Attributes:
        uri: the source's identity (a canonical path for a file).
        size, mtime_ns: the version of the file the rows were made from (-1, 0: unknown).
        fingerprint: its content fingerprint; None keeps the row's, else ``compute_fingerprint``.
        reader: the decoder that read it (``"decord"``, ``"pyav"``).
        info: what probing found (duration, fps, frame count, size, codec).
        spans: the segments, in the order of ``xb``'s rows.
        xb: float32 ``[len(spans), dim]``, L2-normalized.
        compute_fingerprint: called inside the transaction when neither side knows the fingerprint.
        append: add ``spans`` to the source's stored segments instead of replacing them (a live
            stream, whose windows arrive a few at a time).
    """

    uri: str
    size: int
    mtime_ns: int
    fingerprint: str | None
    reader: str | None
    info: Any
    spans: list[SpanRow]
    xb: np.ndarray
    compute_fingerprint: Callable[[], str] | None = None
    append: bool = False


@dataclass
class FailedVideo:
    """A source that could not be indexed.

    Attributes:
        uri: the source's identity.
        reason: one line for users (cut to 500 characters).
        size, mtime_ns, fingerprint: the version that failed (-1, 0, "": unknown), so an
            unchanged file is not retried.
        options: the options it failed under (JSON), or None when they played no part (a file
            that vanished or could not be read); the next run retries it when they differ.
    """

    uri: str
    reason: str
    size: int = -1
    mtime_ns: int = 0
    fingerprint: str = ""
    options: dict[str, Any] | None = field(default=None)


def record_failure(library: Library, failed: FailedVideo) -> list[tuple[int, int]]:
    """Mark a source failed in its own transaction; its old segments (every space) are dropped.

    The dropped segments bump their spaces' generations, so any index file holding them is
    synced when it is next opened. Returns them as ``(space id, segment id)``.
    """
    reason = " ".join(failed.reason.split())[:_REASON_LIMIT]
    with library.session() as s:
        return stored_videos.mark_failed(
            s,
            failed.uri,
            size=failed.size,
            mtime_ns=failed.mtime_ns,
            fingerprint=failed.fingerprint,
            reason=reason,
            options=failed.options,
        )


class _BackgroundRebuild:
    """Builds a fresh index from the stored vectors in a thread while the writer goes on.

    The new index may miss vectors committed while it was built; it is synced by id difference
    before it replaces the live one, so the swap never loses or duplicates a vector.
    """

    def __init__(self, library: Library, space: SpaceInfo) -> None:
        self._library, self._space = library, space
        self._result: SpaceIndex | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="vidsearch-rebuild", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        from vidsearch.store.vectors import VectorIndex

        try:
            ids, xb = self._library.load_vectors(self._space.id)
            self._result = VectorIndex.build(ids, xb) if len(ids) else VectorIndex.empty(self._space.dim)
        except BaseException as exc:  # reported to the writer's thread, which keeps the old index
            self._error = exc

    def done(self) -> bool:
        """Whether the build has finished."""
        return not self._thread.is_alive()

    def take(self) -> SpaceIndex | None:
        """Wait for the build; the new index synced with SQLite (None if the build failed)."""
        self._thread.join()
        if self._error is not None or self._result is None:
            LOG.warning("background index rebuild failed, keeping the current index: %s", self._error)
            return None
        self._library.sync_index(self._space, self._result)
        return self._result


class SpaceWriter:
    """Adds videos to one space and records failures, keeping SQLite and FAISS consistent.

    Use as a context manager (or call :meth:`close`): leaving the block normally waits for a
    background rebuild and saves the index; leaving it with an error still saves what was
    committed, without letting a failed save hide the error.

    Args:
        library: the open library (the caller holds its writer lock).
        space: the space the vectors belong to.
    """

    def __init__(self, library: Library, space: SpaceInfo) -> None:
        self.library, self.space = library, space
        self.index: SpaceIndex = library.vector_index(space)
        self.generation = library.generation(space.id)  # the generation `index` reflects
        self.commits = 0
        self._rebuild: _BackgroundRebuild | None = None
        self._closed = False
        self._updating = False  # inside add/fail: SQLite and the index may disagree until it returns

    def __enter__(self) -> SpaceWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(completed=exc_type is None)

    def add(self, videos: Sequence[VideoRows]) -> list[int]:
        """Store ``videos`` in one transaction, then put their vectors in the index.

        Returns:
            The new segment ids (also the vectors' ids), in order.
        """
        space = self.space
        stale: list[int] = []
        new_ids: list[int] = []
        self._updating = True
        with self.library.session() as s:
            for video in videos:
                vid, dropped = stored_videos.mark_indexed(
                    s,
                    video.uri,
                    size=video.size,
                    mtime_ns=video.mtime_ns,
                    fingerprint=video.fingerprint,
                    compute_fingerprint=video.compute_fingerprint,
                    reader=video.reader,
                    info=video.info,
                    append=video.append,
                )
                stale.extend(sid for sp, sid in dropped if sp == space.id)
                new_ids.extend(stored_segments.add_segments(s, vid, space.id, video.spans, video.xb))
            stored_spaces.bump_generation(s, [space.id])
            generation = stored_spaces.generation(s, space.id)
        # Only after the commit: the index never holds a vector SQLite does not.
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
        if new_ids:
            xb = np.concatenate([v.xb for v in videos]).astype(np.float32, copy=False)
            self.index.add(np.asarray(new_ids, dtype=np.int64), xb)
        self.generation = generation
        self._updating = False
        self.commits += 1
        self._maybe_rebuild()
        return new_ids

    def fail(self, failed: FailedVideo) -> None:
        """Record a source that could not be indexed; its stale vectors leave the index."""
        self._updating = True
        dropped = record_failure(self.library, failed)
        stale = [sid for sp, sid in dropped if sp == self.space.id]
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
            self.generation = self.library.generation(self.space.id)
        self._updating = False

    def forget_before(self, uri: str, before: float) -> int:
        """Delete the segments of ``uri`` that ended before ``before`` (a stream's retention); how many."""
        with self.library.session() as s:
            video = stored_videos.find_video(s, uri)
            dropped = [] if video is None else stored_segments.drop_segments_before(s, video.id, before)
        stale = [sid for sp, sid in dropped if sp == self.space.id]
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
            self.generation = self.library.generation(self.space.id)
        return len(dropped)

    def close(self, completed: bool = True) -> None:
        """Save the index as reflecting what was committed (idempotent).

        Args:
            completed: the run finished: wait for a background rebuild and swap it in first.
                False (an error, Ctrl-C, a full disk is already on its way up): save without
                waiting for a rebuild (an index an interruption may have torn is first replaced by
                the saved file synced with SQLite); only log a failed save, since the index file
                is synced from SQLite on the next open anyway.
        """
        if self._closed:
            return
        self._closed = True
        if not completed:
            try:
                if self._updating:
                    # Interrupted between a commit and its index update: the index in memory may
                    # be torn (rows added, ids not yet mapped). The last saved file, synced with
                    # SQLite by id difference, is whole.
                    self.index = self.library.vector_index(self.space, refresh=True)
                    self.generation = self.library.generation(self.space.id)
                self._save()
            except DiskFullError as exc:  # the run's own error already says the disk is full: one line is enough
                LOG.debug("could not save the vector index: %s", exc)
            except VidsearchError as exc:
                LOG.warning("could not save the vector index: %s", exc)
            return
        if self._rebuild is not None:
            self._swap_rebuilt(self._rebuild)
        self._save()

    def _save(self) -> None:
        self.library.save_index(self.space, self.index, self.generation)

    def _swap_rebuilt(self, rebuild: _BackgroundRebuild) -> None:
        new = rebuild.take()
        self._rebuild = None
        if new is not None:
            self.index = new
            self.generation = self.library.generation(self.space.id)
            LOG.info("swapped in rebuilt index %s (%d vectors)", new.spec, new.ntotal)

    def _maybe_rebuild(self) -> None:
        if self._rebuild is None:
            if self.index.needs_rebuild():
                LOG.info("index policy asks for a rebuild; building in the background")
                self._rebuild = _BackgroundRebuild(self.library, self.space)
        elif self._rebuild.done():
            self._swap_rebuilt(self._rebuild)
            # Save right away so that queries in other processes get the new index.
            self._save()
