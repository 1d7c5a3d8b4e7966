"""``vidsearch index --ray``: the index run with a Ray Data pipeline as its producer.

The driver (where the library lives) scans, plans and commits exactly as a local run: this
module only swaps the runner's producer (:class:`vidsearch.indexer.stages.Stages`):
:class:`RayProducer` is one input row per video, a CPU stage of
:class:`~vidsearch.cluster.actors.DecodeActor` (each with its own crash-contained decode pool:
decord first, PyAV after a crash or hang, the local run's sampling), then a stage of
:class:`~vidsearch.cluster.actors.EncodeActor` (the model loaded once per actor; GPUs when the
cluster has them, fractions allowed). Ray Data streams between the two with backpressure (a
slow encoder stops decoders from running ahead of memory), and back to the driver, which yields
one encoded video (its segments and vectors, no frames) or failure per source.

The driver does not load the model: the runner gets its description (key, frames, resolution,
dimension; :class:`~vidsearch.models.info.EncoderInfo`) and only the encode actors load it, at
the precision of their device (``auto``: fp32 on CPU encoders, bf16 or fp16 on GPU encoders, as
a local run on that device), so the driver starts sooner and needs no GPU.

The sink is the library's own (one SQLite transaction per batch, FAISS after the commit), so
progress, report, exit codes and crash safety are the local run's; with ``--stage`` it is
:class:`~vidsearch.cluster.staging.ParquetSink` and the library waits for ``vidsearch ingest``.
Exactly once: a video's rows are keyed by (space, path, fingerprint); the plan sends only what
the library does not hold yet, a committed video replaces any older rows of its path, and a
result Ray delivers twice (a task retried after its actor died) is dropped here by job id. A
killed driver loses nothing committed; the re-run plans only what is left.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vidsearch.cluster.actors import DecodeActor, EncodeActor, pack, unpack
from vidsearch.cluster.connect import cluster_gpus, connected, gpu_has_bf16
from vidsearch.cluster.options import ClusterError, RayOptions
from vidsearch.cluster.pathmap import to_remote
from vidsearch.cluster.preflight import check_preflight, sample_paths, start_preflight
from vidsearch.cluster.staging import ParquetSink
from vidsearch.indexer.options import IndexOptions, IndexReport, ProgressSink
from vidsearch.indexer.pipeline import index_folder
from vidsearch.indexer.producer import Encoded, Failed, Result, Work
from vidsearch.indexer.stages import Stages, decode_job_of
from vidsearch.media.jobs import DecodedVideo, DecodeFailure
from vidsearch.models.info import EncoderInfo
from vidsearch.models.registry import describe_encoder
from vidsearch.precision import choose_precision

__all__ = ["RayProducer", "RayRun", "encode_target", "index_folder_ray", "remote_options"]

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
    return dataclasses.replace(
        options, model=model, checkpoint=mapped(options.checkpoint), model_config=mapped(options.model_config)
    )


def encode_target(options: IndexOptions, ray_options: RayOptions) -> tuple[float, str]:
    """``(GPUs per encode actor, resolved precision)`` of a run on the connected cluster.

    GPUs: ``--gpus-per-encoder``, else one when the cluster has GPUs (and ``--device`` is not
    cpu), else none. The precision resolves for that device as a local run's would; bf16 on CPU
    encoders is checked by each node's preflight (the driver's CPU is not theirs).

    Raises:
        ModelError: a precision that does not fit the encoders' device.
    """

    gpus = ray_options.gpus_per_encoder
    if gpus is None:
        gpus = 1.0 if options.device != "cpu" and cluster_gpus() > 0 else 0.0
    if gpus > 0:
        bf16 = options.precision in ("auto", "bf16") and gpu_has_bf16(gpus)
        return gpus, choose_precision(options.precision, "cuda", bf16)
    return gpus, options.precision if options.precision == "bf16" else choose_precision(options.precision, "cpu")


class RayRun:
    """What a ``--ray`` run shares between its producers and its report.

    Args:
        ray_options: the cluster side (workers, GPUs, path map, stage folder).
        encode_actor: the encode stage's actor class (tests swap in one that misbehaves).

    Attributes:
        busy: seconds the actors spent decoding (``decode_busy``) and encoding (``encode_busy``),
            summed over actors.
        duplicates: results Ray delivered more than once (dropped).
        gpus, precision: GPUs per encode actor and the precision they run at (:func:`encode_target`).
        started: whether the pipeline ran (its encode actors loaded the model).
    """

    def __init__(self, ray_options: RayOptions, encode_actor: type = EncodeActor) -> None:
        self.ray_options, self.encode_actor = ray_options, encode_actor
        self.busy = {"decode_busy": 0.0, "encode_busy": 0.0}
        self.duplicates = 0
        self.gpus, self.precision = 0.0, "fp32"
        self.started = False

    def stages(self) -> Stages:
        """The runner's parts: this producer, and the library's sink (or, with ``stage_dir``,
        Parquet shards for ``vidsearch ingest``)."""
        stage_dir = self.ray_options.stage_dir
        producer = lambda encoder, options: RayProducer(self, encoder, options)  # noqa: E731
        if stage_dir is None:
            return Stages(producer=producer)
        per_shard = self.ray_options.videos_per_batch
        return Stages(
            producer=producer,
            sink=lambda library, space, plan, options: ParquetSink(
                Path(stage_dir), space.key, space.dim, space.model_spec, options, plan.fingerprints, per_shard
            ),
        )

    def model(self, options: IndexOptions) -> EncoderInfo:
        """What the encode actors will load, described without loading it here (sets ``gpus``, ``precision``)."""

        self.gpus, self.precision = encode_target(options, self.ray_options)
        return describe_encoder(options.model, options.checkpoint, options.model_config, self.precision)


class RayProducer:
    """One run of the Ray Data pipeline; yields the runner one encoded video or failure per source."""

    def __init__(self, run: RayRun, encoder: Any, options: IndexOptions) -> None:
        self.owner, self.options = run, options
        self.key = str(encoder.key)
        self.encoder = encoder
        self._iter: Any = None

    @property
    def encode_seconds(self) -> float:
        """Encoding happens on the cluster (its busy time is reported apart)."""
        return 0.0

    def __enter__(self) -> RayProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._iter is not None and hasattr(self._iter, "close"):
            self._iter.close()  # stops the executor: its actors go away
        self._iter = None

    def _rows(self, work: list[Work]) -> list[dict[str, Any]]:
        """Input rows: one video each, with the path as the workers see it."""
        ro = self.owner.ray_options
        rows = []
        for g, item in enumerate(work):
            job = decode_job_of(item, self.encoder, self.options)
            pairs = [(dataclasses.replace(job, path=to_remote(job.path, ro.path_map)), item.source.uri)]
            rows.append({"group": g, "payload": pack(pairs), "decode_s": 0.0, "encode_s": 0.0})
        return rows

    def _dataset(self, work: list[Work]) -> Any:
        import ray.data

        ro, owner = self.owner.ray_options, self.owner
        remote = remote_options(self.options, ro.path_map)
        gpus = owner.gpus
        rows = self._rows(work)
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), MAX_INPUT_BLOCKS)))
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
            owner.encode_actor,
            fn_constructor_kwargs={
                "options": remote,
                "expected_key": self.key,
                "device": "cuda" if gpus > 0 else "cpu",
            },
            batch_size=ro.videos_per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=ro.encode_workers),
            num_cpus=ro.encode_cpus,
            num_gpus=gpus if gpus > 0 else None,
            udf_modifying_row_count=False,
        )

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        """Results as the cluster finishes them, one per source, with the driver's sources."""
        work = list(work)
        if not work:
            return
        ro, owner = self.owner.ray_options, self.owner
        owner.started = True
        by_id = {w.job_id: w for w in work}
        remote = remote_options(self.options, ro.path_map)
        hint = f" (mapped by --path-map {ro.path_map[0]}={ro.path_map[1]})" if ro.path_map else ""
        # The nodes check themselves while the pipeline starts its actors: both take seconds, and
        # nothing is yielded (so nothing committed) before the checks have passed.
        checks = start_preflight(
            sample_paths([to_remote(w.source.uri, ro.path_map) for w in work], ro.preflight_sample),
            remote.model,
            remote.checkpoint,
            remote.model_config,
            remote.precision if owner.gpus == 0 else None,
        )
        self._iter = iter(self._dataset(work).iter_rows())
        try:
            try:
                first = next(self._iter, None)
            except Exception:
                check_preflight(checks, self.key, hint)  # a failed node check explains the failure best
                raise
            check_preflight(checks, self.key, hint)
            seen: set[int] = set()
            for row in itertools.chain([] if first is None else [first], self._iter):
                owner.busy["decode_busy"] += float(row["decode_s"])
                owner.busy["encode_busy"] += float(row["encode_s"])
                for result, _ in unpack(row["payload"]):
                    video = result[0] if isinstance(result, tuple) else result
                    if not isinstance(video, (DecodedVideo, DecodeFailure)):
                        raise ClusterError(f"the encode stage returned {type(video).__name__}, not a video")
                    if video.job_id in seen or video.job_id not in by_id:
                        owner.duplicates += 1
                        LOG.warning("dropped a repeated result for %s", video.path)
                        continue
                    seen.add(video.job_id)
                    source = by_id[video.job_id].source
                    if isinstance(result, tuple):  # (video without frames, its vectors)
                        yield Encoded(video.job_id, source, dataclasses.replace(video, path=source.uri), result[1])
                    elif isinstance(video, DecodeFailure):
                        yield Failed(video.job_id, source, video.reason)
                    else:
                        raise ClusterError("the encode stage returned a decoded video without its vectors")
            missing = len(by_id) - len(seen)
            if missing:
                raise ClusterError(
                    f"the cluster returned no result for {missing} video(s); run the same command again to index them"
                )
        finally:
            # Stop the streaming executor on every way out (a failed preflight, a caller that
            # stops early): left running, its thread reads Ray after `ray.shutdown()`, and Ray
            # then ends the whole process.
            closing = getattr(self._iter, "close", None)
            if closing is not None:
                closing()


def index_folder_ray(
    library: Any,
    folder: Path | str,
    options: IndexOptions,
    ray_options: RayOptions,
    progress: ProgressSink | None = None,
    encode_actor: type = EncodeActor,
) -> IndexReport:
    """Index ``folder`` like :func:`vidsearch.indexer.pipeline.index_folder`, decoding and encoding on Ray.

    The report is a local run's, with the actors' busy time added to ``stage_seconds``; the
    model is loaded by the encode actors only. ``encode_actor`` replaces the encode stage's
    actor class (tests: one that dies once).

    Raises:
        ClusterError: Ray is missing, the cluster is unreachable, or a node fails the preflight.
        InputError: ``folder`` is not a directory.
    """
    run = RayRun(ray_options, encode_actor)
    if ray_options.stage_dir is not None and Path(folder).is_dir():
        from vidsearch.cluster.staging import write_stage_roots

        write_stage_roots(ray_options.stage_dir, [folder])  # ingest commits files of this folder only
    with connected(ray_options):
        # the description gives the space's key up front, at the actors' precision, not the driver's;
        # the actors get that resolved precision with the options
        info = run.model(options)
        options = dataclasses.replace(options, precision=run.precision)
        report = index_folder(library, folder, options, progress=progress, encoder=info, stages=run.stages())
    report.stage_seconds.update(run.busy)
    report.model_loaded = run.started
    return report
