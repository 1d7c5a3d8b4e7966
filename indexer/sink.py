"""Sinks: where an index run's results go. The library's space writer, or Parquet shards.

A sink takes batches of :class:`~vidsearch.indexer.producer.Encoded` sources and single
:class:`~vidsearch.indexer.producer.Failed` ones, and is closed once (``completed`` says whether
the run finished). :class:`LibrarySink` stores them through the store's
:class:`~vidsearch.store.writer.SpaceWriter`, which owns the order that keeps SQLite and FAISS
consistent; ``vidsearch.cluster.staging.ParquetSink`` writes shards for ``vidsearch ingest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from vidsearch.indexer.options import IndexOptions, failure_options, with_options
from vidsearch.indexer.producer import Encoded, Failed
from vidsearch.indexer.sources import Source
from vidsearch.store.library import Library, SpaceInfo
from vidsearch.store.segments import SpanRow
from vidsearch.store.writer import FailedVideo, SpaceWriter, VideoRows, record_failure

__all__ = ["LibrarySink", "Sink", "failed_video", "record_problem"]


class Sink(Protocol):
    """Receives results durably."""

    def add(self, batch: Sequence[Encoded]) -> None:
        """Store a batch of encoded sources (one transaction for the library)."""
        ...

    def fail(self, failed: Failed) -> str:
        """Record a source that could not be produced; returns the reason as recorded."""
        ...

    def close(self, completed: bool) -> None:
        """Called once at the end; ``completed`` is False after an error or Ctrl-C."""
        ...


def _fingerprint_or_empty(source: Source) -> str:
    # The file may vanish between decoding and the commit; its decoded frames are still good.
    try:
        return str(source.fingerprint())
    except OSError:
        return ""


def failed_video(source: Source | str, reason: str, fingerprint: str | None = None) -> FailedVideo:
    """The store's record of a source (or a bare path the scan could not stat) that failed before decoding."""
    if isinstance(source, str):
        return FailedVideo(source, reason)
    fp = fingerprint if fingerprint is not None else _fingerprint_or_empty(source)
    return FailedVideo(source.uri, reason, source.size, source.mtime_ns, fp)


def record_problem(library: Library, source: Source | str, reason: str) -> None:
    """Record a source the run could not even look at (a scan or fingerprint problem)."""
    record_failure(library, failed_video(source, reason))


class LibrarySink:
    """The library's own sink: one space writer transaction per batch.

    Args:
        library: the open library (the caller holds its writer lock).
        space: the space the vectors belong to.
        fingerprints: content fingerprints the plan already computed, by uri.
        options: the run's options (stored with decode failures, so other options retry them).
    """

    def __init__(self, library: Library, space: SpaceInfo, fingerprints: dict[str, str], options: IndexOptions):
        self.writer = SpaceWriter(library, space)
        self.fingerprints, self.options = fingerprints, options

    def add(self, batch: Sequence[Encoded]) -> None:
        """Store a batch of encoded sources in one transaction."""
        self.writer.add([self._rows(item) for item in batch])

    def _rows(self, item: Encoded) -> VideoRows:
        source = item.source
        return VideoRows(
            uri=source.uri,
            size=source.size,
            mtime_ns=source.mtime_ns,
            fingerprint=self.fingerprints.get(source.uri),
            compute_fingerprint=lambda: _fingerprint_or_empty(source),
            reader=item.video.reader,
            info=item.video.info,
            spans=[SpanRow(sp.kind, float(sp.start), float(sp.end)) for sp in item.segments],
            xb=item.vectors,
            append=source.clock == "wall",  # a stream's windows add up; a file's replace its old ones
        )

    def fail(self, failed: Failed) -> str:
        """Record a failure (a decode failure with the options it happened under); returns its reason."""
        record = failed_video(failed.source, failed.reason, self.fingerprints.get(failed.source.uri))
        if failed.decoding:
            record.reason = with_options(failed.reason, self.options)
            record.options = failure_options(self.options)
        self.writer.fail(record)
        return record.reason

    def close(self, completed: bool) -> None:
        """Save the space's index (see :meth:`vidsearch.store.writer.SpaceWriter.close`)."""
        self.writer.close(completed)
