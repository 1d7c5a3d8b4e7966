"""The stages of an index run and their default implementations (clip-retrieval's shape).

The runner (:func:`vidsearch.indexer.pipeline.run_stages`) takes each stage as a factory, so a
test or another front end can swap one (a fake decoder, a remote encoder, a different store)
and every stage gets timed the same way:

- decode: ``DecodeFactory(options) -> DecodeStage``; a decode stage is a context manager
  that turns jobs into :class:`DecodedVideo` or :class:`DecodeFailure` results, in any order.
- encode: ``EncodeFactory(encoder, options) -> EncodeStage``; maps one decoded video to its
  segment vectors ``[S, D]`` (float32, L2-normalized).
- commit: ``CommitFactory(library, space, plan, options) -> CommitStage``; durable writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vidsearch.indexer.commit import LibraryCommitter
from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.scan import Plan
from vidsearch.store.library import Library, SpaceInfo

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo, DecodeFailure, DecodeJob

__all__ = [
    "DecodeStage",
    "EncodeStage",
    "CommitStage",
    "DecodeFactory",
    "EncodeFactory",
    "CommitFactory",
    "pool_decoder",
    "clip_encoder",
    "library_committer",
]


class DecodeStage(Protocol):
    """Turns decode jobs into results; a context manager that owns its workers."""

    def __enter__(self) -> DecodeStage: ...

    def __exit__(self, *exc: object) -> object: ...

    def run(self, jobs: Iterable[DecodeJob]) -> Iterator[DecodedVideo | DecodeFailure]:
        """Results as they complete, one per job."""
        ...


EncodeStage = Callable[["DecodedVideo"], np.ndarray]


class CommitStage(Protocol):
    """Writes results durably (see :class:`~vidsearch.indexer.commit.LibraryCommitter`)."""

    def commit(self, batch: Sequence[DecodedVideo], vectors: Sequence[np.ndarray]) -> None:
        """Store a batch: ``vectors[i]`` are the segment vectors of ``batch[i]``."""

    def fail(self, failure: DecodeFailure) -> None:
        """Record a file that could not be decoded."""

    def finish(self) -> None:
        """Called once when every job is done (not after an error)."""

    def close(self) -> None:
        """Called once at the end, also after an error or Ctrl-C."""


DecodeFactory = Callable[[IndexOptions], DecodeStage]
EncodeFactory = Callable[[Any, IndexOptions], EncodeStage]
CommitFactory = Callable[[Library, SpaceInfo, Plan, IndexOptions], CommitStage]


def pool_decoder(options: IndexOptions) -> DecodeStage:
    """The crash-contained decode pool (worker processes) configured from ``options``."""
    from vidsearch.media.pool import DecodePool

    kwargs: dict[str, Any] = {}
    if options.workers is not None:
        kwargs["workers"] = options.workers
    if options.timeout is not None:
        kwargs["timeout"] = options.timeout
    if options.decode_faults is not None:
        kwargs["faults"] = options.decode_faults
    return DecodePool(**kwargs)


def clip_encoder(encoder: Any, options: IndexOptions) -> EncodeStage:
    """Encode a video's segments with the model's video tower, ``options.batch_size`` clips a call."""

    def encode(video: DecodedVideo) -> np.ndarray:
        clips = video.clips()
        step = options.batch_size
        out = [encoder.encode_video(clips[i : i + step]) for i in range(0, len(clips), step)]
        return np.concatenate(out).astype("<f4", copy=False)

    return encode


def library_committer(library: Library, space: SpaceInfo, plan: Plan, options: IndexOptions) -> CommitStage:
    """The library's own commit stage (one SQLite transaction per batch, then FAISS)."""
    return LibraryCommitter(library, space, plan, crash_after_commits=options.crash_after_commits)
