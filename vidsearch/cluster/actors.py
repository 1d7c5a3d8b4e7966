"""The actors Ray Data runs: decode (a crash-contained pool each) and encode (the model, once).

Rows travel as ``{"job_id", "payload", "decode_s", "encode_s"}``; ``payload`` is a pickled
:class:`~vidsearch.media.jobs.DecodeJob` on the way in, then a ``DecodedVideo`` or a
``DecodeFailure`` after decoding, then ``(video without frames, vectors)`` or the failure after
encoding. Pickles because a row's arrays are ragged (frames per video differ) and the classes
are the library's own; frames never travel past the encoder, so the stream back to the driver
carries only spans and vectors.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import time
from typing import Any

import numpy as np

from vidsearch.cluster.options import ClusterError

__all__ = ["DecodeActor", "EncodeActor", "rows"]

LOG = logging.getLogger(__name__)


def rows(job_ids: list[int], payloads: list[bytes], decode_s: list[float], encode_s: list[float]) -> dict[str, np.ndarray]:
    """A batch in the pipeline's row layout (``payload`` an object column of bytes)."""
    blobs = np.empty(len(payloads), dtype=object)
    blobs[:] = payloads
    return {
        "job_id": np.asarray(job_ids, dtype=np.int64),
        "payload": blobs,
        "decode_s": np.asarray(decode_s, dtype=np.float64),
        "encode_s": np.asarray(encode_s, dtype=np.float64),
    }


class DecodeActor:
    """Decodes one video per call in a one-process decode pool, exactly as a local run does.

    The pool's worker process (decord first, PyAV after a crash or hang, the same sampling and
    windows) outlives calls; a crash or a hang fails that video only, with its one-line reason.

    Args:
        options: the run's :class:`~vidsearch.indexer.options.IndexOptions` (timeouts, faults).
    """

    def __init__(self, options: Any) -> None:
        from vidsearch.indexer.stages import pool_decoder

        self.pool = pool_decoder(dataclasses.replace(options, workers=1))
        self.pool.__enter__()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decode every job of ``batch`` (usually one)."""
        ids, out, secs = [], [], []
        for job_id, blob in zip(batch["job_id"], batch["payload"]):
            job = pickle.loads(blob)
            t = time.perf_counter()
            results = list(self.pool.run([job]))
            secs.append(time.perf_counter() - t)
            ids.append(int(job_id))
            out.append(pickle.dumps(results[0], protocol=pickle.HIGHEST_PROTOCOL))
        return rows(ids, out, secs, [0.0] * len(ids))

    def __del__(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()


class EncodeActor:
    """Encodes decoded videos with a model it loads once; frames stop here.

    Args:
        options: the run's ``IndexOptions`` with paths as this node sees them.
        expected_key: the model key of the driver's space (the same weights everywhere).
        device: ``"cpu"``, ``"cuda"`` (Ray has set ``CUDA_VISIBLE_DEVICES`` for the actor).
        dies_once: tests only: a marker file (see ``RayOptions.encoder_dies_once``).
    """

    def __init__(self, options: Any, expected_key: str, device: str, dies_once: str | None = None) -> None:
        from vidsearch.indexer.stages import clip_encoder
        from vidsearch.models import load_encoder

        self.encoder = load_encoder(options.model, checkpoint=options.checkpoint, config=options.model_config, device=device)
        if self.encoder.key != expected_key:
            raise ClusterError(
                f"this node's model is {self.encoder.key}, the library's space is {expected_key}: "
                "install the same weights on every node"
            )
        self.encode = clip_encoder(self.encoder, options)
        self.dies_once = dies_once

    def _maybe_die(self) -> None:
        if self.dies_once and not os.path.exists(self.dies_once):
            with open(self.dies_once, "w", encoding="utf-8") as fh:
                fh.write(str(os.getpid()))
            LOG.warning("fault injection: encode actor %d exits", os.getpid())
            os._exit(1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encode every decoded video of ``batch``; failures pass through unchanged."""
        from vidsearch.media.jobs import DecodedVideo

        self._maybe_die()
        ids, out, secs = [], [], []
        for job_id, blob in zip(batch["job_id"], batch["payload"]):
            result = pickle.loads(blob)
            t = time.perf_counter()
            if isinstance(result, DecodedVideo):
                xb = self.encode(result)
                # Spans, info and reader go back to the driver; the frames are done with.
                light = dataclasses.replace(result, frames=result.frames[:0], clip_index=result.clip_index[:0])
                blob = pickle.dumps((light, xb), protocol=pickle.HIGHEST_PROTOCOL)
            secs.append(time.perf_counter() - t)
            ids.append(int(job_id))
            out.append(blob)
        return rows(ids, out, [float(s) for s in batch["decode_s"]], secs)
