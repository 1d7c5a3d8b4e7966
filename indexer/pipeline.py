"""The index run: scan -> diff -> decode (worker processes) -> encode (batched) -> commit.

Decoding runs in :class:`~vidsearch.media.pool.DecodePool` worker processes while this
process encodes, so the two overlap. Results are committed per batch: the video rows, their
segments and the segments' vectors go into SQLite in one transaction, then into the in-memory
FAISS index. The FAISS file is saved when the run ends (also on Ctrl-C); after a hard crash it is
brought up to date from SQLite the next time the library is opened, so nothing committed is lost
and nothing is duplicated.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import delete, select, update

from vidsearch.errors import InputError
from vidsearch.indexer.scan import FileEntry, Plan, find_videos, fingerprint, plan_changes
from vidsearch.store.library import Library, SpaceInfo
from vidsearch.store.schema import Segment, Space, Video, VideoStatus

if TYPE_CHECKING:
    from vidsearch.media.jobs import DecodedVideo, DecodeFailure
    from vidsearch.media import SamplingConfig
    from vidsearch.store.vectors import VectorIndex

__all__ = ["IndexOptions", "IndexReport", "ProgressSink", "index_folder", "index_files", "sampling_dict"]

LOG = logging.getLogger(__name__)

# Crash injection for the crash-safety tests (as faiss contrib's resumable jobs do): the process
# SIGKILLs itself right after the N-th batch commit, before the FAISS file is saved.
CRASH_AFTER_COMMITS_ENV = "VIDSEARCH_CRASH_AFTER_COMMITS"


def _default_sampling() -> SamplingConfig:
    from vidsearch.media import SamplingConfig

    return SamplingConfig()


@dataclass
class IndexOptions:
    """How to index: which model, how to sample, how much parallelism."""

    model: str = "viclip-b16"  # preset name, "openclip:<arch>", or a checkpoint path
    checkpoint: str | None = None  # explicit weights for a preset
    model_config: str | None = None  # ViCLIPConfig JSON for a custom size
    device: str = "auto"
    sampling: SamplingConfig = field(default_factory=_default_sampling)
    fast: bool = False  # snap sampled frames to keyframes (see vidsearch.media.read_frames)
    workers: int | None = None  # decoding processes; None = the pool's default
    batch_size: int = 8  # clips per encoder call
    timeout: float | None = None  # per-file decoding timeout in seconds; None = the pool's default
    retry_failed: bool = False


@dataclass
class IndexReport:
    """What an index run did."""

    space_key: str
    scanned: int = 0
    unchanged: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    touched: int = 0
    removed: int = 0
    segments: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    failed_unchanged: int = 0
    seconds: float = 0.0
    model_loaded: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``--json``)."""
        d = dataclasses.asdict(self)
        d["failed"] = [{"path": p, "reason": r} for p, r in self.failed]
        return d


class ProgressSink(Protocol):
    """Receives progress; the CLI implements it with a rich progress bar."""

    def start(self, total: int) -> None:
        """``total`` files are going to be decoded and encoded."""

    def advance(self, path: str, ok: bool) -> None:
        """One file is done (committed or failed)."""


def sampling_dict(sampling: SamplingConfig) -> dict[str, Any]:
    """JSON form of a SamplingConfig."""
    return dataclasses.asdict(sampling)


def index_folder(
    library: Library,
    folder: Path | str,
    options: IndexOptions | None = None,
    progress: ProgressSink | None = None,
    encoder: Any | None = None,
) -> IndexReport:
    """Index every video under ``folder`` incrementally; forget videos that left it.

    Raises:
        InputError: ``folder`` is not a directory.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder} is not a directory; pass the folder that holds your videos")
    scan = find_videos(folder)
    return _run(library, scan.files, scan.problems, Path(os.path.abspath(folder)), options or IndexOptions(), progress, encoder)


def index_files(
    library: Library,
    files: Sequence[Path | str],
    options: IndexOptions | None = None,
    progress: ProgressSink | None = None,
    encoder: Any | None = None,
) -> IndexReport:
    """Index an explicit list of files incrementally (nothing else in the library is removed)."""
    entries: list[FileEntry] = []
    problems: list[tuple[str, str]] = []
    for f in files:
        path = os.path.abspath(os.fspath(f))
        try:
            st = os.stat(path)
        except OSError as exc:
            problems.append((path, f"cannot open: {exc.strerror}"))
            continue
        entries.append(FileEntry(path, st.st_size, st.st_mtime_ns))
    return _run(library, entries, problems, None, options or IndexOptions(), progress, encoder)


def _space_key(options: IndexOptions, encoder: Any | None) -> str:
    if encoder is not None:
        return str(encoder.key)
    from vidsearch.models import model_key

    return model_key(options.model, checkpoint=options.checkpoint, config=options.model_config)


def _run(
    library: Library,
    files: list[FileEntry],
    problems: list[tuple[str, str]],
    root: Path | None,
    options: IndexOptions,
    progress: ProgressSink | None,
    encoder: Any | None,
) -> IndexReport:
    t0 = time.perf_counter()
    key = _space_key(options, encoder)
    report = IndexReport(space_key=key, scanned=len(files))
    with library.writer_lock():
        space = library.find_space(key)
        if space is not None:  # an explicit resize choice must match the space's, before any weights
            from vidsearch.media.sampling import resolve_antialias

            options = _with_antialias(options, resolve_antialias(options.sampling, space.sampling, f"space {key} in {library.root}").antialias)
        plan = plan_changes(library, files, space.id if space else None, root, retry_failed=options.retry_failed)
        report.unchanged = plan.unchanged
        report.failed_unchanged = plan.failed_unchanged
        _apply_bookkeeping(library, plan, report)
        for path, reason in problems + plan.problems:
            _record_failure(library, path, reason)
            report.failed.append((path, reason))
        if plan.encode:
            if encoder is None:
                from vidsearch.models import load_encoder

                encoder = load_encoder(options.model, checkpoint=options.checkpoint, config=options.model_config, device=options.device)
                report.model_loaded = True
            if options.sampling.antialias is None:  # a new space: the model's own resize
                options = _with_antialias(options, encoder.antialias)
            space = library.ensure_space(encoder.key, encoder.embed_dim, encoder.spec, sampling_dict(options.sampling))
            report.space_key = space.key
            _EncodeRun(library, space, plan, encoder, options, progress, report).run()
        elif space is not None and (plan.removed or plan.moved):
            library.vector_index(space, refresh=True)  # persist the removals in the FAISS file
    report.seconds = time.perf_counter() - t0
    return report


def _with_antialias(options: IndexOptions, antialias: bool | None) -> IndexOptions:
    return dataclasses.replace(options, sampling=dataclasses.replace(options.sampling, antialias=antialias))


def _apply_bookkeeping(library: Library, plan: Plan, report: IndexReport) -> None:
    """Moves, touches and removals: cheap metadata changes, one transaction."""
    if plan.moved or plan.touched:
        with library.session() as s:
            for vid, entry in plan.moved + plan.touched:
                s.execute(update(Video).where(Video.id == vid).values(path=entry.path, size=entry.size, mtime_ns=entry.mtime_ns))
    report.moved = len(plan.moved)
    report.touched = len(plan.touched)
    report.removed = library.remove_videos(plan.removed)


def _record_failure(library: Library, path: str, reason: str, fp: str | None = None) -> list[tuple[int, int]]:
    """Mark ``path`` failed with a one-line reason; its old segments (if any) are stale: drop them.

    Returns:
        The dropped segments as ``(space id, segment id)``.
    """
    try:
        st = os.stat(path)
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime_ns = -1, 0
    if fp is None and size >= 0:
        fp = _fingerprint_or_empty(path, size)
    reason = " ".join(reason.split())[:500]
    dropped: list[tuple[int, int]] = []
    with library.session() as s:
        row = s.scalar(select(Video).where(Video.path == path))
        if row is None:
            row = Video(path=path)
            s.add(row)
        else:
            dropped = _drop_segments(s, row.id)
        row.size, row.mtime_ns, row.fingerprint = size, mtime_ns, fp or ""
        row.status, row.error = VideoStatus.FAILED, reason
    return dropped


def _drop_segments(s: Any, video_id: int) -> list[tuple[int, int]]:
    """Delete a video's segments in every space; bump those spaces. Returns (space id, segment id)."""
    old = s.execute(select(Segment.space_id, Segment.id).where(Segment.video_id == video_id)).all()
    if old:
        s.execute(delete(Segment).where(Segment.video_id == video_id))
        spaces = {sp for sp, _ in old}
        s.execute(update(Space).where(Space.id.in_(spaces)).values(generation=Space.generation + 1))
    return [(sp, sid) for sp, sid in old]


def _fingerprint_or_empty(path: str, size: int) -> str:
    # The file may vanish between decoding and the commit; its decoded frames are still good.
    try:
        return fingerprint(path, size)
    except OSError:
        return ""


def _set_info(row: Video, info: Any) -> None:
    row.duration, row.fps, row.num_frames = info.duration, info.fps, info.num_frames
    row.width, row.height = info.width, info.height


def _encode_clips(encoder: Any, clips: np.ndarray, batch_size: int) -> np.ndarray:
    out = [encoder.encode_video(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]
    return np.concatenate(out).astype("<f4", copy=False)


class _BackgroundRebuild:
    """Builds a fresh index from the stored vectors in a thread while the run goes on.

    The new index may miss vectors committed while it was built; it is synced by id difference
    before it replaces the live one, so the swap never loses or duplicates a vector.
    """

    def __init__(self, library: Library, space: SpaceInfo) -> None:
        self._library, self._space = library, space
        self._result: VectorIndex | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="vidsearch-rebuild", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        from vidsearch.store.vectors import VectorIndex

        try:
            ids, xb = self._library.load_vectors(self._space.id)
            self._result = VectorIndex.build(ids, xb) if len(ids) else VectorIndex.empty(self._space.dim)
        except BaseException as exc:  # reported to the main thread, which keeps the old index
            self._error = exc

    def done(self) -> bool:
        """Whether the build has finished."""
        return not self._thread.is_alive()

    def take(self) -> VectorIndex | None:
        """Wait for the build; the new index synced with SQLite (None if the build failed)."""
        self._thread.join()
        if self._error is not None or self._result is None:
            LOG.warning("background index rebuild failed, keeping the current index: %s", self._error)
            return None
        self._library.sync_index(self._space, self._result)
        return self._result


class _EncodeRun:
    """Decode -> encode -> commit for the files of a plan, with its shared state."""

    def __init__(
        self,
        library: Library,
        space: SpaceInfo,
        plan: Plan,
        encoder: Any,
        options: IndexOptions,
        progress: ProgressSink | None,
        report: IndexReport,
    ) -> None:
        self.library, self.space, self.plan, self.encoder = library, space, plan, encoder
        self.options, self.progress, self.report = options, progress, report
        self.index = library.vector_index(space)
        self.generation = library.generation(space.id)  # the generation `index` reflects
        self.entries = {e.path: e for e in plan.encode}
        self.commits = 0
        self.crash_after = int(os.environ.get(CRASH_AFTER_COMMITS_ENV, "0") or 0)
        self.rebuild: _BackgroundRebuild | None = None

    def run(self) -> None:
        """Decode in worker processes and commit encoded batches until every file is done."""
        from vidsearch.media.jobs import DecodedVideo, DecodeJob, FaultPlan
        from vidsearch.media.pool import DecodePool

        jobs = [
            DecodeJob(job_id=i, path=e.path, num_frames=self.encoder.num_frames, resolution=self.encoder.resolution, sampling=self.options.sampling, fast=self.options.fast)
            for i, e in enumerate(self.plan.encode)
        ]
        if self.progress is not None:
            self.progress.start(len(jobs))
        # the end-to-end crash tests set VIDSEARCH_FAULT_INJECT; read once, here, and passed on
        pool_kwargs: dict[str, Any] = {"faults": FaultPlan.from_env()}
        if self.options.workers is not None:
            pool_kwargs["workers"] = self.options.workers
        if self.options.timeout is not None:
            pool_kwargs["timeout"] = self.options.timeout
        pending: list[DecodedVideo] = []
        pending_clips = 0
        try:
            with DecodePool(**pool_kwargs) as pool:
                for result in pool.run(jobs):
                    if not isinstance(result, DecodedVideo):
                        self.fail(result)
                        continue
                    pending.append(result)
                    pending_clips += len(result.segments)
                    if pending_clips >= self.options.batch_size:
                        self.commit(pending)
                        pending, pending_clips = [], 0
                if pending:
                    self.commit(pending)
            if self.rebuild is not None:
                self._swap_rebuilt(self.rebuild)
        except KeyboardInterrupt:
            self.report.interrupted = True
            raise
        finally:
            # Whatever was committed is in `index` too; save it as reflecting that generation.
            self.library.save_index(self.space, self.index, self.generation)

    def _swap_rebuilt(self, rebuild: _BackgroundRebuild) -> None:
        new = rebuild.take()
        self.rebuild = None
        if new is not None:
            self.index = new
            self.generation = self.library.generation(self.space.id)
            LOG.info("swapped in rebuilt index %s (%d vectors)", new.spec, new.ntotal)

    def _maybe_rebuild(self) -> None:
        if self.rebuild is None:
            if self.index.needs_rebuild():
                LOG.info("index policy asks for a rebuild; building in the background")
                self.rebuild = _BackgroundRebuild(self.library, self.space)
        elif self.rebuild.done():
            self._swap_rebuilt(self.rebuild)
            # Save right away so that queries in other processes get the new index.
            self.library.save_index(self.space, self.index, self.generation)

    def fail(self, failure: DecodeFailure) -> None:
        """Record a file that could not be decoded."""
        dropped = _record_failure(self.library, failure.path, failure.reason, fp=self.plan.fingerprints.get(failure.path))
        stale = [sid for sp, sid in dropped if sp == self.space.id]
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
        self.report.failed.append((failure.path, failure.reason))
        if self.progress is not None:
            self.progress.advance(failure.path, False)

    def commit(self, batch: list[DecodedVideo]) -> None:
        """Encode a batch of decoded videos and commit rows + vectors in one transaction."""
        space = self.space
        vectors = [_encode_clips(self.encoder, v.clips(), self.options.batch_size) for v in batch]
        stale: list[int] = []
        new: list[tuple[int, np.ndarray]] = []
        with self.library.session() as s:
            for video, xb in zip(batch, vectors):
                entry = self.entries[video.path]
                row = s.scalar(select(Video).where(Video.path == video.path))
                if row is None:
                    row = Video(path=video.path)
                    s.add(row)
                else:
                    stale.extend(sid for sp, sid in _drop_segments(s, row.id) if sp == space.id)
                fp = self.plan.fingerprints.get(video.path) or row.fingerprint or _fingerprint_or_empty(video.path, entry.size)
                row.size, row.mtime_ns, row.fingerprint = entry.size, entry.mtime_ns, fp
                row.status, row.error, row.reader = VideoStatus.INDEXED, None, video.reader
                _set_info(row, video.info)
                s.flush()
                segs = [
                    Segment(video_id=row.id, space_id=space.id, kind=sp.kind, start=float(sp.start), end=float(sp.end), vector=vec.tobytes())
                    for sp, vec in zip(video.segments, xb)
                ]
                s.add_all(segs)
                s.flush()
                new.extend((seg.id, vec) for seg, vec in zip(segs, xb))
            s.execute(update(Space).where(Space.id == space.id).values(generation=Space.generation + 1))
            generation = int(s.scalar(select(Space.generation).where(Space.id == space.id)))
        # Only after the commit: the FAISS index never holds a vector SQLite does not.
        if stale:
            self.index.remove(np.asarray(stale, dtype=np.int64))
        if new:
            self.index.add(np.asarray([i for i, _ in new], dtype=np.int64), np.stack([v for _, v in new]).astype(np.float32))
        self.generation = generation
        for video in batch:
            if video.path in self.plan.reencode:
                self.report.updated += 1
            else:
                self.report.added += 1
            self.report.segments += len(video.segments)
            if self.progress is not None:
                self.progress.advance(video.path, True)
        self.commits += 1
        if self.crash_after and self.commits >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self._maybe_rebuild()
