"""The parts of an index run, each made by a factory (clip-retrieval's shape).

The runner (:func:`vidsearch.indexer.pipeline.run_pipeline`) is a producer feeding a sink. Each
comes from a factory in :class:`Stages`, so a test or another front end swaps one (a fake
decoder, the Ray cluster, Parquet shards) and every part gets timed the same way:

- producer: ``ProducerFactory(encoder, options) -> Producer``; by default a
  :class:`~vidsearch.indexer.producer.LocalProducer` over the two factories below:
  - decode: ``DecodeFactory(options) -> DecodeStage``, jobs in, decoded videos or failures out;
  - encode: ``EncodeFactory(encoder, options) -> EncodeStage``, a decoded video to its segment
    vectors ``[S, D]`` (float32, L2-normalized);
- sink: ``SinkFactory(library, space, plan, options) -> Sink``; durable writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.producer import DecodeStage, EncodeStage, LocalProducer, Producer, Work
from vidsearch.indexer.scan import Plan
from vidsearch.indexer.sink import LibrarySink, Sink
from vidsearch.store.library import Library, SpaceInfo

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo, DecodeJob

__all__ = [
    "DecodeFactory",
    "EncodeFactory",
    "ProducerFactory",
    "SinkFactory",
    "Stages",
    "clip_encoder",
    "decode_job_of",
    "library_sink",
    "pool_decoder",
]

DecodeFactory = Callable[[IndexOptions], DecodeStage]
EncodeFactory = Callable[[Any, IndexOptions], EncodeStage]
ProducerFactory = Callable[[Any, IndexOptions], Producer]
SinkFactory = Callable[[Library, SpaceInfo, Plan, IndexOptions], Sink]


def pool_decoder(options: IndexOptions) -> DecodeStage:
    """The crash-contained decode pool (worker processes) configured from ``options``."""
    from vidsearch.media.pool import DecodePool

    kwargs: dict[str, Any] = {}
    if options.workers is not None:
        kwargs["workers"] = options.workers
    if options.timeout is not None:
        kwargs["timeout"] = options.timeout
    return DecodePool(**kwargs)


def clip_encoder(encoder: Any, options: IndexOptions) -> EncodeStage:
    """Encode a video's segments with the model's video tower, ``options.batch_size`` clips a call."""

    def encode(video: DecodedVideo) -> np.ndarray:
        clips = video.clips()
        step = options.batch_size
        out = [encoder.encode_video(clips[i : i + step]) for i in range(0, len(clips), step)]
        return np.concatenate(out).astype("<f4", copy=False)

    return encode


def decode_job_of(work: Work, encoder: Any, options: IndexOptions) -> DecodeJob:
    """The decode job of a file source: the model's frames and resolution, the run's sampling."""
    from vidsearch.media.jobs import DecodeJob

    return DecodeJob(
        job_id=work.job_id,
        path=work.source.uri,
        num_frames=encoder.num_frames,
        resolution=encoder.resolution,
        sampling=options.sampling,
        fast=options.fast,
    )


def library_sink(library: Library, space: SpaceInfo, plan: Plan, options: IndexOptions) -> Sink:
    """The library's own sink (one space-writer transaction per batch)."""
    return LibrarySink(library, space, plan.fingerprints, options)


@dataclass
class Stages:
    """The factories of a run; replace one to swap that part (tests, other back ends).

    ``producer`` None: a :class:`LocalProducer` of ``decode`` and ``encode``.
    """

    decode: DecodeFactory = pool_decoder
    encode: EncodeFactory = clip_encoder
    producer: ProducerFactory | None = None
    sink: SinkFactory = library_sink

    def make_producer(self, encoder: Any, options: IndexOptions) -> Producer:
        """The run's producer."""
        if self.producer is not None:
            return self.producer(encoder, options)
        return LocalProducer(
            self.decode(options), self.encode(encoder, options), lambda work: decode_job_of(work, encoder, options)
        )
