"""``vidsearch index --ray``: the index run with decode and encode on a Ray Data pipeline.

The driver (where the library lives) scans, plans and commits exactly as a local run: this
module only swaps two of the runner's stages (:class:`vidsearch.indexer.pipeline.Stages`):

- the decode stage becomes the Ray Data pipeline: one input row per video, a CPU stage of
  :class:`~vidsearch.cluster.actors.DecodeActor` (each with its own crash-contained decode pool:
  decord first, PyAV after a crash or hang, the local run's sampling), then a stage of
  :class:`~vidsearch.cluster.actors.EncodeActor` (the model loaded once per actor; GPUs when the
  cluster has them, fractions allowed). Ray Data streams between the two with backpressure (a
  slow encoder stops decoders from running ahead of memory), and back to the driver, which
  yields one result per video;
- the encode stage hands the runner the vectors computed on the cluster for that video.

The commit stage is the library's own (one SQLite transaction per batch, FAISS after the
commit), so progress, report, exit codes and crash safety are the local run's. Exactly once:
a video's rows are keyed by (space, path, fingerprint); the plan sends only what the library
does not hold yet, a committed video replaces any older rows of its path, and a result Ray
delivers twice (a task retried after its actor died) is dropped here by job id. A killed
driver loses nothing committed; the re-run plans only what is left.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.cluster.actors import DecodeActor, EncodeActor
from vidsearch.cluster.connect import cluster_gpus, connected
from vidsearch.cluster.options import ClusterError, RayOptions
from vidsearch.cluster.pathmap import to_remote
from vidsearch.cluster.preflight import preflight, sample_paths
from vidsearch.indexer.options import IndexOptions, IndexReport, ProgressSink
from vidsearch.indexer.pipeline import Stages, index_folder
from vidsearch.media.jobs import DecodedVideo, DecodeFailure, DecodeJob

__all__ = ["RayStages", "index_folder_ray", "remote_options"]

LOG = logging.getLogger(__name__)

# Input blocks at most: one video per block streams best; beyond this Ray's per-block overhead
# outweighs it (blocks then hold a few videos each).
MAX_INPUT_BLOCKS = 2000


def remote_options(options: IndexOptions, path_map: tuple[str, str] | None) -> IndexOptions:
    """``options`` with the model files as the workers see them."""
    def mapped(p: str | None) -> str | None:
        return to_remote(os.path.abspath(p), path_map) if p else p

    model = options.model
    if os.path.sep in model or os.path.exists(model):  # a checkpoint path, not a preset name
        model = mapped(model) or model
    return dataclasses.replace(options, model=model, checkpoint=mapped(options.checkpoint), model_config=mapped(options.model_config))


class RayStages:
    """The runner's decode and encode stages backed by one Ray Data pipeline.

    Args:
        ray_options: the cluster side (workers, GPUs, path map).

    Attributes:
        busy: seconds the actors spent decoding (``decode_busy``) and encoding (``encode_busy``),
            summed over actors.
        duplicates: results Ray delivered more than once (dropped).
    """

    def __init__(self, ray_options: RayOptions) -> None:
        self.ray_options = ray_options
        self.busy = {"decode_busy": 0.0, "encode_busy": 0.0}
        self.duplicates = 0
        self._vectors: dict[int, np.ndarray] = {}
        self._key: str | None = None

    def stages(self) -> Stages:
        """The runner's stages: decode and encode from here, the library's own commit."""
        return Stages(decode=self.decode, encode=self.encode)

    def encode(self, encoder: Any, options: IndexOptions):
        """Encode stage: the vectors the cluster computed for a video (the runner calls it per video)."""
        self._key = str(encoder.key)
        vectors = self._vectors

        def encoded(video: DecodedVideo) -> np.ndarray:
            return vectors.pop(video.job_id)

        return encoded

    def decode(self, options: IndexOptions) -> _Pipeline:
        """Decode stage: the Ray Data pipeline (decode, then encode, on the cluster)."""
        if self._key is None:
            raise RuntimeError("the runner makes the encode stage before the decode stage")
        return _Pipeline(self, options)


class _Pipeline:
    """One run of the Ray Data pipeline; yields the runner one result per job."""

    def __init__(self, owner: RayStages, options: IndexOptions) -> None:
        self.owner, self.options = owner, options
        self._iter: Any = None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._iter is not None and hasattr(self._iter, "close"):
            self._iter.close()  # stops the executor: its actors go away
        self._iter = None

    def _dataset(self, jobs: list[DecodeJob]) -> Any:
        import ray.data

        ro, owner = self.owner.ray_options, self.owner
        remote = remote_options(self.options, ro.path_map)
        gpus = ro.gpus_per_encoder
        if gpus is None:
            gpus = 1.0 if self.options.device != "cpu" and cluster_gpus() > 0 else 0.0
        device = "cuda" if gpus > 0 else "cpu"
        items = [
            {"job_id": j.job_id, "payload": pickle.dumps(dataclasses.replace(j, path=to_remote(j.path, ro.path_map))), "decode_s": 0.0, "encode_s": 0.0}
            for j in jobs
        ]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), MAX_INPUT_BLOCKS)))
        ds = ds.map_batches(
            DecodeActor,
            fn_constructor_kwargs={"options": remote},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=ro.decode_workers),
            num_cpus=ro.decode_cpus,
            udf_modifying_row_count=False,
        )
        return ds.map_batches(
            EncodeActor,
            fn_constructor_kwargs={"options": remote, "expected_key": owner._key, "device": device, "dies_once": ro.encoder_dies_once},
            batch_size=ro.videos_per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=ro.encode_workers),
            num_cpus=ro.encode_cpus,
            num_gpus=gpus if gpus > 0 else None,
            udf_modifying_row_count=False,
        )

    def run(self, jobs: Iterable[DecodeJob]) -> Iterator[DecodedVideo | DecodeFailure]:
        """Results as the cluster finishes them, one per job, with the driver's paths."""
        jobs = list(jobs)
        if not jobs:
            return
        ro, owner = self.owner.ray_options, self.owner
        by_id = {j.job_id: j for j in jobs}
        remote = remote_options(self.options, ro.path_map)
        hint = f" (mapped by --path-map {ro.path_map[0]}={ro.path_map[1]})" if ro.path_map else ""
        preflight(
            sample_paths([to_remote(j.path, ro.path_map) for j in jobs], ro.preflight_sample),
            remote.model, remote.checkpoint, remote.model_config, str(owner._key), hint=hint,
        )
        self._iter = iter(self._dataset(jobs).iter_rows())
        seen: set[int] = set()
        for row in self._iter:
            job_id = int(row["job_id"])
            if job_id in seen or job_id not in by_id:
                owner.duplicates += 1
                LOG.warning("dropped a repeated result for %s", by_id.get(job_id, job_id))
                continue
            seen.add(job_id)
            owner.busy["decode_busy"] += float(row["decode_s"])
            owner.busy["encode_busy"] += float(row["encode_s"])
            result = pickle.loads(row["payload"])
            path = by_id[job_id].path
            if isinstance(result, tuple):  # (video without frames, its vectors)
                video, xb = result
                owner._vectors[job_id] = xb
                yield dataclasses.replace(video, path=path)
            elif isinstance(result, DecodeFailure):
                yield dataclasses.replace(result, path=path)
            else:
                raise ClusterError(f"the encode stage returned {type(result).__name__} for {path}, not vectors")
        missing = len(by_id) - len(seen)
        if missing:
            raise ClusterError(f"the cluster returned no result for {missing} video(s); run the same command again to index them")


def index_folder_ray(
    library: Any,
    folder: Path | str,
    options: IndexOptions,
    ray_options: RayOptions,
    progress: ProgressSink | None = None,
    encoder: Any | None = None,
) -> IndexReport:
    """Index ``folder`` like :func:`vidsearch.indexer.pipeline.index_folder`, decoding and encoding on Ray.

    The report is a local run's, with the actors' busy time added to ``stage_seconds``.

    Raises:
        ClusterError: Ray is missing, the cluster is unreachable, or a node fails the preflight.
        InputError: ``folder`` is not a directory.
    """
    stages = RayStages(ray_options)
    with connected(ray_options):
        report = index_folder(library, folder, options, progress=progress, encoder=encoder, stages=stages.stages())
    report.stage_seconds.update(stages.busy)
    return report
