"""The commit stage: a batch's rows and vectors in one SQLite transaction, then the FAISS index.

Order matters for crash safety: the vectors enter the in-memory FAISS index only after SQLite
committed them, so the index never holds a vector SQLite does not; the FAISS file is saved when
the run ends, and after a hard crash it is synced from SQLite when the library is next opened.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vidsearch.indexer.scan import Plan
from vidsearch.media.fingerprint import fingerprint
from vidsearch.store import segments as stored_segments
from vidsearch.store import spaces as stored_spaces
from vidsearch.store import videos as stored_videos
from vidsearch.store.library import Library, SpaceInfo

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo, DecodeFailure
    from vidsearch.store.vectors import VectorIndex

__all__ = ["LibraryCommitter", "record_failure"]

LOG = logging.getLogger(__name__)


def _fingerprint_or_empty(path: str, size: int) -> str:
    # The file may vanish between decoding and the commit; its decoded frames are still good.
    try:
        return fingerprint(path, size)
    except OSError:
        return ""


def record_failure(library: Library, path: str, reason: str, fp: str | None = None) -> list[tuple[int, int]]:
    """Mark ``path`` failed with a one-line reason; its old segments (if any) are stale: drop them.

    Returns:
        The dropped segments as ``(space id, segment id)``.
    """
    try:
        st = os.stat(path)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime_ns = -1, 0
    if fp is None and size >= 0:
        fp = _fingerprint_or_empty(path, size)
    reason = " ".join(reason.split())[:500]
    with library.session() as s:
        return stored_videos.mark_failed(s, path, size=size, mtime_ns=mtime_ns, fingerprint=fp or "", reason=reason)


class _BackgroundRebuild:
    """Builds a fresh index from the stored vectors in a thread while the run goes on.

    The new index may miss vectors committed while it was built; it is synced by id difference
    before it replaces the live one, so the swap never loses or duplicates a vector.
    """

    def __init__(self, library: Library, space: SpaceInfo) -> None:
        self._library, self._space = library, space
        self._result: VectorIndex | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="vidsearch-rebuild", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        from vidsearch.store.vectors import VectorIndex

        try:
            ids, xb = self._library.load_vectors(self._space.id)
            self._result = VectorIndex.build(ids, xb) if len(ids) else VectorIndex.empty(self._space.dim)
        except BaseException as exc:  # reported to the main thread, which keeps the old index
            self._error = exc

    def done(self) -> bool:
        """Whether the build has finished."""
        return not self._thread.is_alive()

    def take(self) -> VectorIndex | None:
        """Wait for the build; the new index synced with SQLite (None if the build failed)."""
        self._thread.join()
        if self._error is not None or self._result is None:
            LOG.warning("background index rebuild failed, keeping the current index: %s", self._error)
            return None
        self._library.sync_index(self._space, self._result)
        return self._result


class LibraryCommitter:
    """The default commit stage: writes decoded, encoded videos into the library.

    Args:
        library: the open library (the caller holds its writer lock).
        space: the space the vectors belong to.
        plan: the run's plan (file stats and fingerprints of what is being encoded).
        crash_after_commits: tests only: SIGKILL this process after that many commits (0: never).
    """

    def __init__(self, library: Library, space: SpaceInfo, plan: Plan, crash_after_commits: int = 0) -> None:
        self.library, self.space, self.plan = library, space, plan
        self.index = library.vector_index(space)
        self.generation = library.generation(space.id)  # the generation `index` reflects
        self.entries = {e.path: e for e in plan.encode}
        self.commits = 0
        self.crash_after = crash_after_commits
        self.rebuild: _BackgroundRebuild | None = None

    def commit(self, batch: Sequence[DecodedVideo], vectors: Sequence[np.ndarray]) -> None:
        """Commit rows + vectors of ``batch`` (``vectors[i]`` are the segments of ``batch[i]``)."""
        space = self.space
        stale: list[int] = []
        new_ids: list[int] = []
        with self.library.session() as s:
            for video, xb in zip(batch, vectors, strict=False):
                entry = self.entries[video.path]
                vid, dropped = stored_videos.mark_indexed(
                    s,
                    video.path,
                    size=entry.size,
                    mtime_ns=entry.mtime_ns,
                    fingerprint=self.plan.fingerprints.get(video.path),
                    compute_fingerprint=lambda path=video.path, size=entry.size: _fingerprint_or_empty(path, size),
                    reader=video.reader,
                    info=video.info,
                )
                stale.extend(sid for sp, sid in dropped if sp == space.id)
                spans = [stored_segments.SpanRow(sp.kind, float(sp.start), float(sp.end)) for sp in video.segments]
                new_ids.extend(stored_segments.add_segments(s, vid, space.id, spans, xb))
            stored_spaces.bump_generation(s, [space.id])
            generation = stored_spaces.generation(s, space.id)
        # Only after the commit: the FAISS index never holds a vector SQLite does not.
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
        if new_ids:
            self.index.add(np.asarray(new_ids, dtype=np.int64), np.concatenate(list(vectors)).astype(np.float32))
        self.generation = generation
        self.commits += 1
        if self.crash_after and self.commits >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self._maybe_rebuild()

    def fail(self, failure: DecodeFailure) -> None:
        """Record a file that could not be decoded (its stale vectors leave the index)."""
        dropped = record_failure(
            self.library, failure.path, failure.reason, fp=self.plan.fingerprints.get(failure.path)
        )
        stale = [sid for sp, sid in dropped if sp == self.space.id]
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))

    def finish(self) -> None:
        """The run completed: wait for a background rebuild and swap it in."""
        if self.rebuild is not None:
            self._swap_rebuilt(self.rebuild)

    def close(self) -> None:
        """Always, also after an error: save the index as reflecting what was committed."""
        self.library.save_index(self.space, self.index, self.generation)

    def _swap_rebuilt(self, rebuild: _BackgroundRebuild) -> None:
        new = rebuild.take()
        self.rebuild = None
        if new is not None:
            self.index = new
            self.generation = self.library.generation(self.space.id)
            LOG.info("swapped in rebuilt index %s (%d vectors)", new.spec, new.ntotal)

    def _maybe_rebuild(self) -> None:
        if self.rebuild is None:
            if self.index.needs_rebuild():
                LOG.info("index policy asks for a rebuild; building in the background")
                self.rebuild = _BackgroundRebuild(self.library, self.space)
        elif self.rebuild.done():
            self._swap_rebuilt(self.rebuild)
            # Save right away so that queries in other processes get the new index.
            self.library.save_index(self.space, self.index, self.generation)
