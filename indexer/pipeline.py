"""The index run: scan -> diff -> decode (worker processes) -> encode (batched) -> commit.

:func:`run_stages` is a runner over three swappable stages (:mod:`vidsearch.indexer.stages`):
decoding runs in :class:`~vidsearch.media.pool.DecodePool` worker processes while this
process encodes, so the two overlap. Results are committed per batch: the video rows, their
segments and the segments' vectors go into SQLite in one transaction, then into the in-memory
FAISS index. The FAISS file is saved when the run ends (also on Ctrl-C); after a hard crash it is
brought up to date from SQLite the next time the library is opened, so nothing committed is lost
and nothing is duplicated. Each stage is timed (:attr:`IndexReport.stage_seconds`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidsearch.errors import DiskFullError, InputError, VidsearchError
from vidsearch.indexer.commit import record_failure
from vidsearch.indexer.options import (
    IndexOptions,
    IndexReport,
    ProgressSink,
    failed_with_other_options,
    sampling_dict,
    with_options,
)
from vidsearch.indexer.scan import FileEntry, Plan, find_videos, plan_changes, stat_entry
from vidsearch.indexer.stages import (
    CommitFactory,
    DecodeFactory,
    EncodeFactory,
    clip_encoder,
    library_committer,
    pool_decoder,
)
from vidsearch.models.registry import model_key, precision_before_load
from vidsearch.paths import canonical_path
from vidsearch.precision import space_key
from vidsearch.store import videos as stored_videos
from vidsearch.store.library import Library, SpaceInfo

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo

__all__ = [
    "IndexOptions",
    "IndexReport",
    "ProgressSink",
    "Stages",
    "index_folder",
    "index_files",
    "run_stages",
    "sampling_dict",
    "space_key_for",
]

LOG = logging.getLogger(__name__)


@dataclass
class Stages:
    """The factories of the three stages; replace one to swap that stage (tests, other back ends)."""

    decode: DecodeFactory = pool_decoder
    encode: EncodeFactory = clip_encoder
    commit: CommitFactory = library_committer


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
    entries: list[FileEntry] = []
    problems: list[tuple[str, str]] = []
    for f in files:
        entry = stat_entry(os.fspath(f))
        if isinstance(entry, FileEntry):
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

    # The key load_encoder_at(..., precision=) would give, without loading the model. Missing
    # weights fail here first, and a CPU-only run resolves the precision without importing torch.
    key = model_key(options.model, checkpoint=options.checkpoint, config=options.model_config)
    return space_key(key, precision_before_load(options.precision, options.device))


def _run(
    library: Library,
    files: list[FileEntry],
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
            retry_reason=lambda reason: failed_with_other_options(reason, options),
        )  # fmt: skip
        report.unchanged = plan.unchanged
        report.failed_unchanged = plan.failed_unchanged
        _apply_bookkeeping(library, plan, report)
        for path, reason in problems + plan.problems:
            record_failure(library, path, reason)
            report.failed.append((path, reason))
        if plan.encode:
            if encoder is None:
                from vidsearch.models.lowprec import load_encoder_at

                if stages.decode is pool_decoder:  # decoding workers start while the model loads
                    from vidsearch.media.pool import prestart

                    prestart()

                encoder = load_encoder_at(
                    options.model,
                    checkpoint=options.checkpoint,
                    config=options.model_config,
                    device=options.device,
                    precision=options.precision,
                )
                report.model_loaded = True
            if options.sampling.antialias is None:  # a new space: the model's own resize
                options = _with_antialias(options, encoder.antialias)
            space = library.ensure_space(encoder.key, encoder.embed_dim, encoder.spec, sampling_dict(options.sampling))
            report.space_key = space.key
            run_stages(library, space, plan, encoder, options, stages, report, progress)
        elif space is not None and (plan.removed or plan.moved):
            library.vector_index(space, refresh=True)  # persist the removals in the FAISS file
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


def run_stages(
    library: Library,
    space: SpaceInfo,
    plan: Plan,
    encoder: Any,
    options: IndexOptions,
    stages: Stages,
    report: IndexReport,
    progress: ProgressSink | None = None,
) -> None:
    """Decode -> encode -> commit the files ``plan`` says to encode, timing each stage.

    Decoded videos are encoded and committed in batches of at least ``options.batch_size``
    clips; one commit is one SQLite transaction (see :mod:`vidsearch.indexer.commit`).
    """
    from vidsearch.media.jobs import DecodedVideo, DecodeJob

    timing = report.stage_seconds
    jobs = [
        DecodeJob(
            job_id=i,
            path=e.path,
            num_frames=encoder.num_frames,
            resolution=encoder.resolution,
            sampling=options.sampling,
            fast=options.fast,
        )
        for i, e in enumerate(plan.encode)
    ]
    if progress is not None:
        progress.start(len(jobs))
    encode = stages.encode(encoder, options)
    committer = stages.commit(library, space, plan, options)

    def flush(batch: list[DecodedVideo]) -> None:
        t = time.perf_counter()
        vectors = [encode(v) for v in batch]
        timing["encode"] += time.perf_counter() - t
        t = time.perf_counter()
        committer.commit(batch, vectors)
        timing["commit"] += time.perf_counter() - t
        for video in batch:
            if video.path in plan.reencode:
                report.updated += 1
            else:
                report.added += 1
            report.segments += len(video.segments)
            if progress is not None:
                progress.advance(video.path, True)

    pending: list[DecodedVideo] = []
    pending_clips = 0
    completed = False
    try:
        with stages.decode(options) as decoder:
            results = iter(decoder.run(jobs))
            while True:
                t = time.perf_counter()
                result = next(results, None)
                timing["decode"] += time.perf_counter() - t
                if result is None:
                    break
                if not isinstance(result, DecodedVideo):
                    result = dataclasses.replace(result, reason=with_options(result.reason, options))
                    t = time.perf_counter()
                    committer.fail(result)
                    timing["commit"] += time.perf_counter() - t
                    report.failed.append((result.path, result.reason))
                    if progress is not None:
                        progress.advance(result.path, False)
                    continue
                pending.append(result)
                pending_clips += len(result.segments)
                if pending_clips >= options.batch_size:
                    flush(pending)
                    pending, pending_clips = [], 0
            if pending:
                flush(pending)
        committer.finish()
        completed = True
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        # Whatever was committed is in the index too; save it as reflecting that generation.
        _close(committer, completed)


def _close(committer: Any, completed: bool) -> None:
    if completed:
        committer.close()
        return
    # The run is already failing (a full disk, Ctrl-C): the save must not replace that error with
    # its own; the FAISS file is synced from SQLite on the next open anyway.
    try:
        committer.close()
    except DiskFullError as exc:  # the run's own error already says the disk is full: one line is enough
        LOG.debug("could not save the vector index: %s", exc)
    except VidsearchError as exc:
        LOG.warning("could not save the vector index: %s", exc)
