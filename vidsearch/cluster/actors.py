"""The actors Ray Data runs: decode (a crash-contained pool each) and encode (the model, once).

A row is a group of videos (one, as the driver streams them): ``{"group", "payload", "decode_s",
"encode_s"}``. ``payload`` is a pickled list of ``(item, uri)`` pairs, ``uri`` being the source's
identity on the driver; the item is a :class:`~vidsearch.media.jobs.DecodeJob` on the way in, a
``DecodedVideo`` or ``DecodeFailure`` after decoding, and after encoding ``(video without
frames, vectors)`` or the failure. Pickles because the arrays are ragged and the classes are the
library's own; frames never travel past the encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import time
from typing import Any

import numpy as np

from vidsearch.cluster.options import ClusterError
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec

__all__ = ["DecodeActor", "EncodeActor", "make_row", "pack", "unpack"]

LOG = logging.getLogger(__name__)


def pack(items: list[tuple[Any, str]]) -> bytes:
    """A row's payload from ``(item, uri)`` pairs."""
    return pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(blob: bytes) -> list[tuple[Any, str]]:
    """The ``(item, uri)`` pairs of a row's payload."""
    return pickle.loads(blob)


def make_row(
    groups: list[int], payloads: list[bytes], decode_s: list[float], encode_s: list[float]
) -> dict[str, np.ndarray]:
    """A batch in the pipeline's row layout (``payload`` an object column of bytes)."""
    blobs = np.empty(len(payloads), dtype=object)
    blobs[:] = payloads
    return {
        "group": np.asarray(groups, dtype=np.int64),
        "payload": blobs,
        "decode_s": np.asarray(decode_s, dtype=np.float64),
        "encode_s": np.asarray(encode_s, dtype=np.float64),
    }


class DecodeActor:
    """Decodes the videos of each row in a one-process decode pool, exactly as a local run does.

    The pool's worker process (decord first, PyAV after a crash or hang, the same sampling and
    windows) outlives calls; a crash or a hang fails that video only, with its one-line reason.

    Args:
        options: the run's :class:`~vidsearch.indexer.options.IndexOptions` (workers, timeouts).
    """

    def __init__(self, options: Any) -> None:
        from vidsearch.indexer.stages import pool_decoder

        self.pool = pool_decoder(dataclasses.replace(options, workers=1))
        self.pool.__enter__()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decode every video of every row of ``batch``."""
        out, secs = [], []
        for blob in batch["payload"]:
            pairs = unpack(blob)
            meta = {job.job_id: m for job, m in pairs}
            t = time.perf_counter()
            results = sorted(self.pool.run([job for job, _ in pairs]), key=lambda r: r.job_id)
            secs.append(time.perf_counter() - t)
            out.append(pack([(r, meta[r.job_id]) for r in results]))
        return make_row(list(batch["group"]), out, secs, [0.0] * len(out))

    def __del__(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()


class EncodeActor:
    """Encodes decoded videos with a model it loads once; frames stop here.

    Args:
        options: the run's ``IndexOptions`` with paths as this node sees them and the resolved precision.
        expected_key: the key of the driver's space (the same weights and precision everywhere).
        device: ``"cpu"``, ``"cuda"`` (Ray has set ``CUDA_VISIBLE_DEVICES`` for the actor).
    """

    def __init__(self, options: Any, expected_key: str, device: str) -> None:
        from vidsearch.indexer.stages import clip_encoder

        # options.precision is the driver's resolved one: every actor writes the same space
        self.encoder: Any = open_encoder(
            EncoderSpec(
                options.model,
                checkpoint=options.checkpoint,
                config=options.model_config,
                device=device,
                precision=options.precision,
            )
        )
        if self.encoder.key != expected_key:
            raise ClusterError(
                f"this node's model is {self.encoder.key}, the library's space is {expected_key}: "
                "install the same weights on every node"
            )
        self.options = options
        self.encode = clip_encoder(self.encoder, options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encode every decoded video of every row; failures pass through unchanged."""
        from vidsearch.media.jobs import DecodedVideo

        out, secs = [], []
        for blob in batch["payload"]:
            t = time.perf_counter()
            encoded = []
            for result, uri in unpack(blob):
                if isinstance(result, DecodedVideo):
                    xb = self.encode(result)
                    # Spans, info and reader go on; the frames are done with.
                    result = (
                        dataclasses.replace(result, frames=result.frames[:0], clip_index=result.clip_index[:0]),
                        xb,
                    )
                encoded.append((result, uri))
            secs.append(time.perf_counter() - t)
            out.append(pack(encoded))
        return make_row(list(batch["group"]), out, [float(s) for s in batch["decode_s"]], secs)
