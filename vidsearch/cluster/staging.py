"""``--stage DIR``: encoded videos as Parquet shards, and ``vidsearch ingest DIR`` to commit them.

For runs too large to stream to one driver, encode actors write each group of videos to its
own shard instead. A shard is named by its content (a hash of the space key and every video's
path, size and mtime), so a retried task or a re-run of the same plan overwrites its own file
rather than adding a second one; the write is atomic (temporary name, then rename).

Columns (one row per video, ``vectors`` float32 ``[segments * dim]`` as bytes):

    space_key, dim, model_spec (JSON), sampling (JSON),
    path, size, mtime_ns, fingerprint, status ("indexed" | "failed"), reason, reader,
    info (JSON), kinds, starts, ends, vectors

:func:`ingest` commits shards through the indexer's own commit stage: the rows are planned
against the library like files of a scan (same path, size and mtime as what the library holds:
nothing to do), so ingesting twice, or a shard that overlaps another, adds nothing twice.
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
from vidsearch.indexer.options import IndexReport, sampling_dict
from vidsearch.indexer.scan import FileEntry, plan_changes

__all__ = ["ingest", "list_shards", "shard_name", "write_shard", "write_stage_roots", "stage_roots"]

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
COMMIT_VIDEOS = 64  # videos per SQLite transaction when ingesting


def shard_name(space_key: str, metas: Sequence[tuple[str, int, int]]) -> str:
    """The file name of a shard holding ``metas`` (driver path, size, mtime_ns): its content's hash."""
    h = hashlib.sha256(space_key.encode())
    for path, size, mtime_ns in sorted(metas):
        h.update(f"\0{path}\0{size}\0{mtime_ns}".encode())
    return f"shard-{h.hexdigest()[:24]}.parquet"


def write_shard(stage_dir: Path, encoder: Any, options: Any, encoded: list[tuple[Any, tuple[str, int, int]]]) -> Path:
    """Write one group of encoded videos (``((video, xb) | failure, meta)`` pairs) as a shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vidsearch.media import fingerprint

    cols: dict[str, list] = {k: [] for k in COLUMNS}
    spec, sampling = (
        json.dumps(encoder.spec, sort_keys=True),
        json.dumps(sampling_dict(options.sampling), sort_keys=True),
    )
    for result, (path, size, mtime_ns) in encoded:
        ok = isinstance(result, tuple)
        video = result[0] if ok else None
        try:
            fp = fingerprint(video.info.path if ok else result.path, size) if size >= 0 else ""
        except OSError:
            fp = ""
        row = {
            "space_key": str(encoder.key),
            "dim": int(encoder.embed_dim),
            "model_spec": spec,
            "sampling": sampling,
            "path": path,
            "size": int(size),
            "mtime_ns": int(mtime_ns),
            "fingerprint": fp,
            "status": "indexed" if ok else "failed",
            "reason": None if ok else result.reason,
            "reader": video.reader if ok else None,
            "info": json.dumps(dataclasses.asdict(video.info)) if ok else None,
            "kinds": [s.kind for s in video.segments] if ok else [],
            "starts": [float(s.start) for s in video.segments] if ok else [],
            "ends": [float(s.end) for s in video.segments] if ok else [],
            "vectors": np.ascontiguousarray(result[1], dtype="<f4").tobytes() if ok else b"",
        }
        for k, v in row.items():
            cols[k].append(v)
    stage_dir.mkdir(parents=True, exist_ok=True)
    final = stage_dir / shard_name(str(encoder.key), [m for _, m in encoded])
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    pq.write_table(pa.table(cols), tmp)
    os.replace(tmp, final)
    return final


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
    from vidsearch.indexer.commit import LibraryCommitter
    from vidsearch.media import SegmentPlan, VideoInfo
    from vidsearch.media.jobs import DecodedVideo, DecodeFailure
    from vidsearch.store import videos as stored_videos

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
            entries = [FileEntry(r["path"], r["size"], r["mtime_ns"]) for r in group]
            plan = plan_changes(snapshot, entries, None, retry_failed=True)
            todo = {e.path for e in plan.encode} | {e.path for _, e in plan.moved}
            report.unchanged += len(group) - len(todo)
            plan.encode = [e for e in entries if e.path in todo]
            plan.fingerprints.update({r["path"]: r["fingerprint"] for r in group if r["fingerprint"]})
            committer = LibraryCommitter(library, space, plan)
            try:
                batch, vectors = [], []
                for job_id, row in enumerate(r for r in group if r["path"] in todo):
                    if row["status"] != "indexed":
                        committer.fail(DecodeFailure(job_id, row["path"], row["reason"] or "failed"))
                        report.failed.append((row["path"], row["reason"] or "failed"))
                        continue
                    spans = [
                        SegmentPlan(k, s, e, [])
                        for k, s, e in zip(row["kinds"], row["starts"], row["ends"], strict=False)
                    ]
                    xb = row_vectors(row)[0]
                    info = VideoInfo(**json.loads(row["info"]))
                    batch.append(
                        DecodedVideo(
                            job_id,
                            row["path"],
                            info,
                            spans,
                            np.zeros((0,), np.uint8),
                            np.zeros((0, 0), np.int64),
                            row["reader"],
                            0.0,
                        )
                    )
                    vectors.append(xb)
                    report.updated += row["path"] in plan.reencode
                    report.added += row["path"] not in plan.reencode
                    report.segments += len(spans)
                    if len(batch) >= COMMIT_VIDEOS:
                        committer.commit(batch, vectors)
                        batch, vectors = [], []
                if batch:
                    committer.commit(batch, vectors)
                committer.finish()
            finally:
                committer.close()
    report.seconds = time.perf_counter() - t0
    return report
