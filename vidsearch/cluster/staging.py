"""``--stage DIR``: encoded videos as Parquet shards, and ``vidsearch ingest DIR`` to commit them.

For runs whose library should not take the commits as they come, :class:`ParquetSink` is the
run's sink instead of the library's: it writes each group of ``videos_per_shard`` results to its
own shard. A shard is named by its content (a hash of the space key and every video's path,
size and mtime), so a re-run of the same plan overwrites its own file rather than adding a
second one; the write is atomic (temporary name, then rename).

Columns (one row per video, ``vectors`` float32 ``[segments * dim]`` as bytes):

    space_key, dim, model_spec (JSON), sampling (JSON),
    path, size, mtime_ns, fingerprint, status ("indexed" | "failed"), reason, reader,
    info (JSON), kinds, starts, ends, vectors; and failed_options (JSON, optional: the options a
    decode failure happened under)

:func:`ingest` commits shards through the store's space writer: the rows are planned against the
library like files of a scan (same path, size and mtime as what the library holds: nothing to
do), so ingesting twice, or a shard that overlaps another, adds nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.cluster.options import ClusterError
from vidsearch.fileio import atomic_write_text
from vidsearch.indexer.options import IndexReport, failure_options, sampling_dict, with_options
from vidsearch.indexer.scan import plan_changes
from vidsearch.indexer.sources import FileSource

__all__ = ["ParquetSink", "ingest", "list_shards", "shard_name", "write_shard", "write_stage_roots", "stage_roots"]

LOG = logging.getLogger(__name__)

SHARD_GLOB = "shard-*.parquet"
STAGE_FILE = "stage.json"  # the run's folders, written by the driver beside its shards
COLUMNS = (
    "space_key",
    "dim",
    "model_spec",
    "sampling",
    "path",
    "size",
    "mtime_ns",
    "fingerprint",
    "status",
    "reason",
    "reader",
    "info",
    "kinds",
    "starts",
    "ends",
    "vectors",
)
# Written by this vidsearch, not required of a shard (those of older runs lack it).
OPTIONAL_COLUMNS = ("failed_options",)
COMMIT_VIDEOS = 64  # videos per SQLite transaction when ingesting


def shard_name(space_key: str, metas: Sequence[tuple[str, int, int]]) -> str:
    """The file name of a shard holding ``metas`` (driver path, size, mtime_ns): its content's hash."""
    h = hashlib.sha256(space_key.encode())
    for path, size, mtime_ns in sorted(metas):
        h.update(f"\0{path}\0{size}\0{mtime_ns}".encode())
    return f"shard-{h.hexdigest()[:24]}.parquet"


def write_shard(stage_dir: Path, space_key: str, rows: Sequence[dict[str, Any]]) -> Path:
    """Write rows (dicts with the module's columns) as one shard; returns its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {k: [row.get(k) for row in rows] for k in COLUMNS + OPTIONAL_COLUMNS}
    stage_dir.mkdir(parents=True, exist_ok=True)
    final = stage_dir / shard_name(space_key, [(r["path"], r["size"], r["mtime_ns"]) for r in rows])
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    pq.write_table(pa.table(cols), tmp)
    os.replace(tmp, final)
    return final


class ParquetSink:
    """A run's sink that writes shards for ``vidsearch ingest`` instead of the library.

    Args:
        stage_dir: the shards' folder (as the driver sees it).
        space_key, dim, model_spec: the space the vectors belong to.
        options: the run's options (the sampling is stored; decode failures keep them).
        fingerprints: the plan's content fingerprints, by path.
        videos_per_shard: results per shard.
    """

    def __init__(
        self,
        stage_dir: Path,
        space_key: str,
        dim: int,
        model_spec: dict[str, Any],
        options: Any,
        fingerprints: dict[str, str],
        videos_per_shard: int,
    ) -> None:
        self.stage_dir, self.options, self.fingerprints = stage_dir, options, fingerprints
        self.videos_per_shard = videos_per_shard
        self._common = {
            "space_key": space_key,
            "dim": int(dim),
            "model_spec": json.dumps(model_spec, sort_keys=True),
            "sampling": json.dumps(sampling_dict(options.sampling), sort_keys=True),
        }
        self._rows: list[dict[str, Any]] = []
        self.shards: list[Path] = []
        self.videos = 0

    def _row(self, source: Any, **values: Any) -> dict[str, Any]:
        fp = self.fingerprints.get(source.uri)
        if fp is None:
            try:
                fp = source.fingerprint()
            except OSError:
                fp = ""
        row = {**self._common, "path": source.uri, "size": int(source.size), "mtime_ns": int(source.mtime_ns)}
        row.update(fingerprint=fp, reason=None, failed_options=None, reader=None, info=None)
        row.update(kinds=[], starts=[], ends=[], vectors=b"")
        row.update(values)
        return row

    def add(self, batch: Sequence[Any]) -> None:
        """Stage encoded sources (:class:`~vidsearch.indexer.producer.Encoded`)."""
        for item in batch:
            video = item.video
            self._rows.append(
                self._row(
                    item.source,
                    status="indexed",
                    reader=video.reader,
                    info=json.dumps(dataclasses.asdict(video.info)),
                    kinds=[s.kind for s in video.segments],
                    starts=[float(s.start) for s in video.segments],
                    ends=[float(s.end) for s in video.segments],
                    vectors=np.ascontiguousarray(item.vectors, dtype="<f4").tobytes(),
                )
            )
            self._maybe_write()

    def fail(self, failed: Any) -> str:
        """Stage a failure (a decode failure with the options it happened under); returns its reason."""
        reason = with_options(failed.reason, self.options) if failed.decoding else failed.reason
        options = json.dumps(failure_options(self.options)) if failed.decoding else None
        self._rows.append(self._row(failed.source, status="failed", reason=reason, failed_options=options))
        self._maybe_write()
        return reason

    def _maybe_write(self, force: bool = False) -> None:
        if self._rows and (force or len(self._rows) >= self.videos_per_shard):
            self.shards.append(write_shard(self.stage_dir, self._common["space_key"], self._rows))
            self.videos += len(self._rows)
            self._rows = []

    def close(self, completed: bool) -> None:
        """Write what is left (also after an error: staged results are kept) and say where the shards are."""
        self._maybe_write(force=True)
        LOG.info(
            "staged %d video(s) in %s; commit them with `vidsearch ingest %s`",
            self.videos,
            self.stage_dir,
            self.stage_dir,
        )


def write_stage_roots(stage_dir: Path | str, roots: Sequence[Path | str]) -> None:
    """Record the folders a staged run indexes (``ingest`` commits no file outside them)."""

    folders = [os.path.realpath(os.path.abspath(r)) for r in roots]
    try:  # a second run into the same folder adds its folders to the first's
        folders = sorted(set(stage_roots(stage_dir)) | set(folders))
    except ClusterError:
        pass
    atomic_write_text(Path(stage_dir) / STAGE_FILE, json.dumps({"roots": folders}))


def stage_roots(stage_dir: Path | str) -> list[str]:
    """The folders :func:`write_stage_roots` recorded for a ``--stage`` folder.

    Raises:
        ClusterError: nothing was recorded (a stage from an older vidsearch) or the record is unreadable.
    """
    path = Path(stage_dir) / STAGE_FILE
    try:
        roots = json.loads(path.read_text("utf-8"))["roots"]
    except FileNotFoundError:
        raise ClusterError(
            f"{stage_dir} does not say which folders its run indexed; pass them with --root FOLDER"
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise ClusterError(f"{path} is unreadable; pass the run's folders with --root FOLDER") from None
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise ClusterError(f"{path} is unreadable; pass the run's folders with --root FOLDER")
    return roots


def list_shards(stage_dir: Path | str) -> list[Path]:
    """The shards in a ``--stage`` folder, by name."""
    return sorted(Path(stage_dir).glob(SHARD_GLOB))


def _read_rows(stage_dir: Path) -> tuple[int, list[dict[str, Any]]]:
    shards = list_shards(stage_dir)
    if not shards:
        return 0, []
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ClusterError("reading staged shards needs pyarrow: pip install 'vidsearch[ray]'") from None
    rows: dict[str, dict[str, Any]] = {}
    for shard in shards:
        try:
            table = pq.read_table(shard)
        except Exception as exc:  # noqa: BLE001 -- any unreadable shard: name it
            raise ClusterError(f"cannot read shard {shard}: {exc}; re-run the staged index to rewrite it") from None
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ClusterError(
                f"shard {shard.name} lacks the column(s) {', '.join(missing)}; it is no shard of this vidsearch: "
                "re-run the staged index to rewrite it"
            )
        for row in table.to_pylist():
            rows[row["path"]] = row  # a video in two shards (a re-planned run): the same content
    return len(shards), list(rows.values())


def ingest(library: Any, stage_dir: Path | str, roots: Sequence[Path | str] | None = None) -> IndexReport:
    """Commit the shards of ``stage_dir`` into ``library``, once (see the module docstring).

    Rows that :mod:`vidsearch.cluster.shard_checks` refuses (a file outside the run's folders,
    changed, or no video; vectors of the wrong size or not finite) are not committed: they are
    reported in ``failed``.

    Args:
        library: the library to commit into.
        stage_dir: the ``--stage`` folder of a run.
        roots: the folders the run indexed (None: those the run recorded, see :func:`stage_roots`).

    Returns:
        An index run's report: ``scanned`` is the videos in the shards, ``unchanged`` those the
        library already held, ``space_key`` the space of the last shard rows.

    Raises:
        ClusterError: ``stage_dir`` holds no shards, a shard cannot be read or lacks columns, or
            the run's folders are unknown.
    """
    from vidsearch.cluster.shard_checks import file_refusal, row_vectors
    from vidsearch.media import VideoInfo
    from vidsearch.store import videos as stored_videos
    from vidsearch.store.segments import SpanRow
    from vidsearch.store.writer import FailedVideo, SpaceWriter, VideoRows

    t0 = time.perf_counter()
    stage_dir = Path(stage_dir)
    n_shards, rows = _read_rows(stage_dir)
    report = IndexReport(space_key="", scanned=len(rows))
    if not n_shards:
        raise ClusterError(f"{stage_dir} holds no {SHARD_GLOB} files; pass the --stage folder of an index run")
    folders = [str(r) for r in roots] if roots else stage_roots(stage_dir)
    refused: dict[str, str] = {}
    for row in rows:
        why = file_refusal(row, folders, indexed=row["status"] == "indexed")
        if why is None and row["status"] == "indexed":
            why = row_vectors(row)[1] or None
        if why is not None:
            refused[row["path"]] = why
            report.failed.append((str(row["path"]), why))
    rows = [r for r in rows if r["path"] not in refused]
    by_space: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_space.setdefault(row["space_key"], []).append(row)
    with library.writer_lock():
        for key, group in by_space.items():
            first = group[0]
            report.space_key = key
            space = library.ensure_space(
                key, first["dim"], json.loads(first["model_spec"]), json.loads(first["sampling"])
            )
            with library.session() as s:
                snapshot = stored_videos.snapshot(s, space.id)
            entries = [FileSource(r["path"], r["size"], r["mtime_ns"]) for r in group]
            plan = plan_changes(snapshot, entries, None, retry_failed=True)
            todo = {e.path for e in plan.encode} | {e.path for _, e in plan.moved}
            report.unchanged += len(group) - len(todo)
            with SpaceWriter(library, space) as writer:
                batch: list[VideoRows] = []
                for row in (r for r in group if r["path"] in todo):
                    if row["status"] != "indexed":
                        reason = row["reason"] or "failed"
                        options = json.loads(row["failed_options"]) if row.get("failed_options") else None
                        writer.fail(
                            FailedVideo(row["path"], reason, row["size"], row["mtime_ns"], row["fingerprint"], options)
                        )
                        report.failed.append((row["path"], reason))
                        continue
                    spans = [
                        SpanRow(k, float(s), float(e))
                        for k, s, e in zip(row["kinds"], row["starts"], row["ends"], strict=False)
                    ]
                    batch.append(
                        VideoRows(
                            uri=row["path"],
                            size=row["size"],
                            mtime_ns=row["mtime_ns"],
                            fingerprint=row["fingerprint"] or None,
                            reader=row["reader"],
                            info=VideoInfo(**json.loads(row["info"])),
                            spans=spans,
                            xb=row_vectors(row)[0],
                        )
                    )
                    report.updated += row["path"] in plan.reencode
                    report.added += row["path"] not in plan.reencode
                    report.segments += len(spans)
                    if len(batch) >= COMMIT_VIDEOS:
                        writer.add(batch)
                        batch = []
                if batch:
                    writer.add(batch)
    report.seconds = time.perf_counter() - t0
    return report
