"""The index run: scan -> plan -> producer (decode + encode) -> sink (the library's space writer).

:func:`run_pipeline` is a producer (:mod:`vidsearch.indexer.producer`: by default decoding in
:class:`~vidsearch.media.pool.DecodePool` worker processes while this process encodes, so the
two overlap) feeding a sink (:mod:`vidsearch.indexer.sink`: by default the store's space writer,
one SQLite transaction per batch, then the in-memory FAISS index). The sink is closed at the end
(also on Ctrl-C), which saves the FAISS file; after a hard crash the file is brought up to date
from SQLite the next time the library is opened, so nothing committed is lost and nothing is
duplicated. Time is reported per part (:attr:`IndexReport.stage_seconds`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from vidsearch.errors import InputError
from vidsearch.indexer.options import (
    IndexOptions,
    IndexReport,
    ProgressSink,
    failed_with_other_options,
    sampling_dict,
)
from vidsearch.indexer.producer import Encoded, Producer, Work
from vidsearch.indexer.progress_file import FileProgress
from vidsearch.indexer.scan import Plan, find_videos, plan_changes
from vidsearch.indexer.sink import Sink, record_problem
from vidsearch.indexer.sources import FileSource, file_source
from vidsearch.indexer.stages import Stages, pool_decoder
from vidsearch.models.opener import open_encoder
from vidsearch.models.registry import model_key, precision_before_load
from vidsearch.models.spec import EncoderSpec
from vidsearch.paths import canonical_path
from vidsearch.precision import space_key
from vidsearch.store import videos as stored_videos
from vidsearch.store.library import Library
from vidsearch.store.writer import SpaceWriter

__all__ = [
    "IndexOptions",
    "IndexReport",
    "ProgressSink",
    "Stages",
    "index_folder",
    "index_files",
    "run_pipeline",
    "sampling_dict",
    "space_key_for",
]

LOG = logging.getLogger(__name__)


def index_folder(
    library: Library,
    folder: Path | str,
    options: IndexOptions | None = None,
    progress: ProgressSink | None = None,
    encoder: Any | None = None,
    stages: Stages | None = None,
) -> IndexReport:
    """Index every video under ``folder`` incrementally; forget videos that left it.

    Raises:
        InputError: ``folder`` is not a directory.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a directory; pass the folder that holds your videos")
    scan = find_videos(folder)
    return _run(
        library,
        scan.files,
        scan.problems,
        Path(canonical_path(folder)),
        options or IndexOptions(),
        progress,
        encoder,
        stages or Stages(),
    )


def index_files(
    library: Library,
    files: Sequence[Path | str],
    options: IndexOptions | None = None,
    progress: ProgressSink | None = None,
    encoder: Any | None = None,
    stages: Stages | None = None,
) -> IndexReport:
    """Index an explicit list of files incrementally (nothing else in the library is removed)."""
    entries: list[FileSource] = []
    problems: list[tuple[str, str]] = []
    for f in files:
        entry = file_source(os.fspath(f))
        if isinstance(entry, FileSource):
            entries.append(entry)
        else:
            problems.append(entry)
    return _run(library, entries, problems, None, options or IndexOptions(), progress, encoder, stages or Stages())


def space_key_for(options: IndexOptions, encoder: Any | None = None) -> str:
    """The embedding space an index run with ``options`` writes to, known before any model loads.

    Raises:
        ModelError: a precision that does not fit the device; WeightsNotFoundError: no weights.
    """
    if encoder is not None:
        return str(encoder.key)

    # The key open_encoder(EncoderSpec(..., precision=)) would give, without loading the model. Missing
    # weights fail here first, and a CPU-only run resolves the precision without importing torch.
    key = model_key(options.model, checkpoint=options.checkpoint, config=options.model_config)
    return space_key(key, precision_before_load(options.precision, options.device))


def _run(
    library: Library,
    files: list[FileSource],
    problems: list[tuple[str, str]],
    root: Path | None,
    options: IndexOptions,
    progress: ProgressSink | None,
    encoder: Any | None,
    stages: Stages,
) -> IndexReport:
    t0 = time.perf_counter()
    with library.writer_lock():  # first: a read-only or busy library is refused before any model work
        # no files, nothing to encode: no model key, so no weights look-up (a removal needs none)
        key = space_key_for(options, encoder) if files else ""
        report = IndexReport(space_key=key, scanned=len(files))
        space = library.find_space(key)
        if space is not None:  # an explicit resize choice must match the space's, before any weights
            from vidsearch.media.sampling import resolve_antialias

            options = _with_antialias(
                options, resolve_antialias(options.sampling, space.sampling, f"space {key} in {library.root}").antialias
            )
        with library.session() as s:
            snapshot = stored_videos.snapshot(s, space.id if space else None)
        plan = plan_changes(
            snapshot, files, root, retry_failed=options.retry_failed, verify=options.verify,
            retry_options=lambda stored: failed_with_other_options(stored, options),
        )  # fmt: skip
        report.unchanged = plan.unchanged
        report.failed_unchanged = plan.failed_unchanged
        _apply_bookkeeping(library, plan, report)
        by_uri = {f.uri: f for f in files}
        for path, reason in problems + plan.problems:
            # A file the plan could not fingerprint keeps the version the scan saw: it is not
            # retried until it changes. A path the scan could not stat has none.
            record_problem(library, by_uri.get(path, path), reason)
            report.failed.append((path, reason))
        if plan.encode:
            if encoder is None:
                if stages.producer is None and stages.decode is pool_decoder:  # workers start while the model loads
                    from vidsearch.media.pool import prestart

                    prestart()

                # The whole torch encoder: a new space records its spec and resize choice.
                encoder = cast(
                    Any,
                    open_encoder(
                        EncoderSpec(
                            options.model,
                            checkpoint=options.checkpoint,
                            config=options.model_config,
                            device=options.device,
                            precision=options.precision,
                        )
                    ),
                )
                report.model_loaded = True
            if options.sampling.antialias is None:  # a new space: the model's own resize
                options = _with_antialias(options, encoder.antialias)
            space = library.ensure_space(encoder.key, encoder.embed_dim, encoder.spec, sampling_dict(options.sampling))
            report.space_key = space.key
            producer = stages.make_producer(encoder, options)
            sink = stages.sink(library, space, plan, options)
            work = [Work(i, source) for i, source in enumerate(plan.encode)]
            # other processes (the web page's library view) follow the run through this file
            with FileProgress(library.root, progress) as shown:
                run_pipeline(producer, sink, work, options.batch_size, report, plan.reencode, shown)
        elif space is not None and (plan.removed or plan.moved):
            SpaceWriter(library, space).close()  # the FAISS file without the removed vectors
    report.seconds = time.perf_counter() - t0
    return report


def _with_antialias(options: IndexOptions, antialias: bool | None) -> IndexOptions:
    return dataclasses.replace(options, sampling=dataclasses.replace(options.sampling, antialias=antialias))


def _apply_bookkeeping(library: Library, plan: Plan, report: IndexReport) -> None:
    """Moves, touches and removals: cheap metadata changes."""
    if plan.moved or plan.touched:
        with library.session() as s:
            stored_videos.relocate_videos(
                s, [(vid, e.path, e.size, e.mtime_ns) for vid, e in plan.moved + plan.touched]
            )
    report.moved = len(plan.moved)
    report.touched = len(plan.touched)
    report.removed = library.remove_videos(plan.removed)


def run_pipeline(
    producer: Producer,
    sink: Sink,
    work: Sequence[Work],
    batch_size: int,
    report: IndexReport,
    updating: set[str] | frozenset[str] = frozenset(),
    progress: ProgressSink | None = None,
) -> None:
    """Feed the producer's results to the sink, timing each part into ``report.stage_seconds``.

    Encoded sources go to the sink in batches of at least ``batch_size`` segments (one sink
    batch is one library transaction); failures go one by one. The sink is closed in any case.

    Args:
        updating: uris that already have a row (counted as updated rather than added).
    """
    timing = report.stage_seconds
    if progress is not None:
        progress.start(len(work))

    def flush(batch: list[Encoded]) -> None:
        t = time.perf_counter()
        sink.add(batch)
        timing["commit"] += time.perf_counter() - t
        for item in batch:
            if item.source.uri in updating:
                report.updated += 1
            else:
                report.added += 1
            report.segments += len(item.segments)
            if progress is not None:
                progress.advance(item.source.uri, True)

    pending: list[Encoded] = []
    pending_segments = 0
    completed = False
    waited = 0.0
    try:
        with producer:
            results = iter(producer.run(work))
            while True:
                t = time.perf_counter()
                result = next(results, None)
                waited += time.perf_counter() - t
                if result is None:
                    break
                if not isinstance(result, Encoded):
                    t = time.perf_counter()
                    reason = sink.fail(result)
                    timing["commit"] += time.perf_counter() - t
                    report.failed.append((result.source.uri, reason))
                    if progress is not None:
                        progress.advance(result.source.uri, False)
                    continue
                pending.append(result)
                pending_segments += len(result.segments)
                if pending_segments >= batch_size:
                    flush(pending)
                    pending, pending_segments = [], 0
            if pending:
                flush(pending)
        completed = True
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        # The producer's encoding happens while the runner waits for results: split the wait.
        timing["encode"] += producer.encode_seconds
        timing["decode"] += max(0.0, waited - producer.encode_seconds)
        # Whatever was committed is in the index too; the sink saves it as reflecting that.
        sink.close(completed)
