"""Producers: sources in, encoded segments (or failures) out.

A producer is the front half of an index run (:func:`vidsearch.indexer.pipeline.run_pipeline`):
it takes :class:`Work` (a source and the run's id for it) and yields one :class:`Encoded` or
:class:`Failed` per item, in any order. Implementations:

- :class:`LocalProducer`: a decode stage (by default the crash-contained worker pool,
  :class:`~vidsearch.media.pool.DecodePool`) feeding an encode stage in this process;
- ``vidsearch.cluster.ray_runner.RayProducer``: decode and encode actors on a Ray cluster;
- :class:`vidsearch.indexer.live.LiveProducer` (``vidsearch watch``): windows of a stream as
  they are recorded, with wall-clock times (``source.clock == "wall"``).

The back half is a sink (:mod:`vidsearch.indexer.sink`); neither knows the other.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vidsearch.indexer.sources import Source

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo, DecodeFailure, DecodeJob
    from vidsearch.media.sampling import SegmentPlan

__all__ = ["DecodeStage", "Encoded", "EncodeStage", "Failed", "LocalProducer", "Producer", "Result", "Work"]


@dataclass(frozen=True)
class Work:
    """One source to produce, under the run's id for it."""

    job_id: int
    source: Source


@dataclass
class Encoded:
    """A source decoded and encoded: its segments and their vectors (frames are dropped).

    Attributes:
        job_id: the work item's id.
        source: what was read.
        video: the decoded video without its frames (segments, probe info, reader).
        vectors: float32 ``[len(video.segments), D]``, L2-normalized.
    """

    job_id: int
    source: Source
    video: DecodedVideo
    vectors: np.ndarray

    @property
    def segments(self) -> list[SegmentPlan]:
        """The segments, in the order of ``vectors``' rows."""
        return self.video.segments


@dataclass
class Failed:
    """A source that could not be produced, with a one-line reason for users.

    Attributes:
        decoding: the failure happened while decoding, so the run's decode options may be the
            cause (the sink records them, and a run with other options retries the file).
    """

    job_id: int
    source: Source
    reason: str
    decoding: bool = True


Result = Encoded | Failed


class Producer(Protocol):
    """Turns work into results; a context manager that owns its workers or actors."""

    def __enter__(self) -> Producer: ...

    def __exit__(self, *exc: object) -> object: ...

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        """One result per work item, as they complete."""
        ...

    @property
    def encode_seconds(self) -> float:
        """Time this process spent encoding so far (0 where encoding runs elsewhere)."""
        ...


class DecodeStage(Protocol):
    """Turns decode jobs into decoded videos or failures; a context manager that owns its workers."""

    def __enter__(self) -> DecodeStage: ...

    def __exit__(self, *exc: object) -> object: ...

    def run(self, jobs: Iterable[DecodeJob]) -> Iterator[DecodedVideo | DecodeFailure]:
        """Results as they complete, one per job."""
        ...


EncodeStage = Callable[["DecodedVideo"], np.ndarray]


class LocalProducer:
    """Decodes in a decode stage (worker processes) and encodes here, overlapping the two.

    Args:
        decoder: the decode stage (entered and closed with this producer).
        encode: maps a decoded video to its segment vectors ``[S, D]``.
        make_job: the decode job of a work item (the model's frame count and resolution, the
            run's sampling).
    """

    def __init__(self, decoder: DecodeStage, encode: EncodeStage, make_job: Callable[[Work], DecodeJob]) -> None:
        self.decoder, self.encode, self.make_job = decoder, encode, make_job
        self._encode_seconds = 0.0

    @property
    def encode_seconds(self) -> float:
        """Time spent in the encode stage so far."""
        return self._encode_seconds

    def __enter__(self) -> LocalProducer:
        self.decoder.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.decoder.__exit__(*exc)

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        """Decode every item in the decode stage, encode each decoded video as it arrives."""
        from vidsearch.media.jobs import DecodedVideo

        sources: dict[int, Source] = {}

        def jobs() -> Iterator[DecodeJob]:
            for item in work:
                sources[item.job_id] = item.source
                yield self.make_job(item)

        for result in self.decoder.run(jobs()):
            source = sources.pop(result.job_id)
            if not isinstance(result, DecodedVideo):
                yield Failed(result.job_id, source, result.reason)
                continue
            t = time.perf_counter()
            vectors = self.encode(result)
            self._encode_seconds += time.perf_counter() - t
            # The frames are done with: only spans, info and reader go on to the sink.
            video = dataclasses.replace(result, frames=result.frames[:0], clip_index=result.clip_index[:0])
            yield Encoded(result.job_id, source, video, vectors)
