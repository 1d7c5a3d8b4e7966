"""Open, migrate and query a library directory.

A library directory holds ``library.sqlite`` (videos, segments and their embedding vectors: the
source of truth) and, under ``indexes/``, one FAISS index per embedding space. A FAISS file is a
derived artefact: it records the space's *generation* (bumped by every transaction that changes
the space's vectors); when the file is missing, unreadable or stale it is brought up to date from
SQLite on open, so a crash between a commit and an index save never loses or duplicates vectors.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import create_engine, delete, event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from vidsearch.errors import LibraryError
from vidsearch.store.schema import Segment, Space, Video, VideoStatus

if TYPE_CHECKING:
    from vidsearch.store.vectors import VectorIndex

__all__ = ["Library", "SpaceInfo", "SegmentInfo", "default_library_path", "DB_NAME"]

LOG = logging.getLogger(__name__)

DB_NAME = "library.sqlite"
_READ_CHUNK = 65536


def default_library_path() -> Path:
    """``$VIDSEARCH_LIBRARY``, else ``<user data dir>/vidsearch/library``."""
    env = os.environ.get("VIDSEARCH_LIBRARY")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("vidsearch") / "library"


@dataclass(frozen=True)
class SpaceInfo:
    """A detached view of a :class:`~vidsearch.store.schema.Space` row."""

    id: int
    key: str
    dim: int
    model_spec: dict[str, Any]
    sampling: dict[str, Any]
    generation: int


@dataclass(frozen=True)
class SegmentInfo:
    """What search needs to know about a segment hit."""

    segment_id: int
    video_id: int
    path: str
    kind: str
    start: float
    end: float
    duration: float | None


def _space_info(row: Space) -> SpaceInfo:
    return SpaceInfo(
        id=row.id,
        key=row.key,
        dim=row.dim,
        model_spec=json.loads(row.model_spec),
        sampling=json.loads(row.sampling),
        generation=row.generation,
    )


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets queries read while an index run writes; NORMAL sync is durable against process
    # crashes (SIGKILL), which is what "a crash loses nothing" means for a desktop library.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _alembic_config():
    from importlib.resources import files

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("vidsearch.migrations")))
    return cfg


def migrate(engine: Engine, db_path: Path) -> None:
    """Bring the database to the newest schema this vidsearch knows; refuse a newer one."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    head = script.get_current_head()
    with engine.begin() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current not in known:
            raise LibraryError(
                f"library {db_path} has schema revision {current!r}, made by a newer vidsearch; "
                "upgrade vidsearch (pip install -U vidsearch) to open it"
            )
        if current != head:
            LOG.info("migrating %s from %s to %s", db_path, current, head)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


class Library:
    """A library directory: SQLite metadata and embeddings plus one FAISS index per space."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._indexes: dict[int, VectorIndex] = {}

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True) -> Library:
        """Open (and, with ``create``, create) the library at ``path``, migrating it to head.

        Raises:
            LibraryError: the path is not a usable library directory, or its schema is newer.
        """
        root = Path(path).expanduser() if path is not None else default_library_path()
        db_path = root / DB_NAME
        if root.exists() and not root.is_dir():
            raise LibraryError(f"library path {root} is a file, not a directory; pass --library DIR")
        if not db_path.exists():
            if not create:
                raise LibraryError(f"no library at {root}; run `vidsearch index DIR --library {root}` first")
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create library directory {root}: {exc.strerror}") from exc
        engine = create_engine(f"sqlite:///{db_path}", future=True)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        try:
            migrate(engine, db_path)
        except LibraryError:
            engine.dispose()
            raise
        except Exception as exc:  # sqlite3.DatabaseError for a file that is not a database, etc.
            engine.dispose()
            raise LibraryError(f"cannot open library database {db_path}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc
        return cls(root, engine)

    def close(self) -> None:
        """Release the database connections."""
        self._indexes.clear()
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive lock for runs that write (index, remove, reindex) on this library."""
        import fcntl

        lock_path = self.root / ".write.lock"
        with open(lock_path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LibraryError(
                    f"another vidsearch run is writing to {self.root}; wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- spaces --------------------------------------------------------------------------
    def spaces(self) -> list[SpaceInfo]:
        """All embedding spaces, most recently updated first."""
        with self.session() as s:
            rows = s.scalars(select(Space).order_by(Space.updated_at.desc(), Space.id.desc())).all()
            return [_space_info(r) for r in rows]

    def space(self, key: str | None = None) -> SpaceInfo:
        """The space with ``key``, or the most recently indexed one when ``key`` is None.

        Raises:
            LibraryError: no such space (the message lists the ones there are).
        """
        spaces = self.spaces()
        if not spaces:
            raise LibraryError(f"library {self.root} is empty; run `vidsearch index DIR` first")
        if key is None:
            return spaces[0]
        for sp in spaces:
            if sp.key == key or sp.key.split("@")[0] == key:
                return sp
        raise LibraryError(f"library {self.root} has no embeddings for model {key!r}; it has: {', '.join(s.key for s in spaces)}")

    def find_space(self, key: str) -> SpaceInfo | None:
        """The space with exactly ``key``, if any."""
        with self.session() as s:
            row = s.scalar(select(Space).where(Space.key == key))
            return _space_info(row) if row else None

    def ensure_space(self, key: str, dim: int, model_spec: dict[str, Any], sampling: dict[str, Any]) -> SpaceInfo:
        """Get the space ``key``, creating it on first use."""
        with self.session() as s:
            row = s.scalar(select(Space).where(Space.key == key))
            if row is None:
                row = Space(key=key, dim=dim, model_spec=json.dumps(model_spec), sampling=json.dumps(sampling), generation=0)
                s.add(row)
                s.flush()
            elif row.dim != dim:
                raise LibraryError(f"space {key} in {self.root} has dim {row.dim}, the model gives {dim}")
            return _space_info(row)

    def generation(self, space_id: int) -> int:
        """The space's current generation (see module docstring)."""
        with self.session() as s:
            return int(s.scalar(select(Space.generation).where(Space.id == space_id)) or 0)

    # -- vectors -------------------------------------------------------------------------
    def iter_vectors(self, space_id: int, chunk: int = _READ_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids, xb)`` of every stored vector of a space, in chunks."""
        last = -1
        while True:
            with self.session() as s:
                rows = s.execute(
                    select(Segment.id, Segment.vector)
                    .where(Segment.space_id == space_id, Segment.id > last)
                    .order_by(Segment.id)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            xb = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32, copy=False)
            last = int(ids[-1])
            yield ids, xb

    def load_vectors(self, space_id: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All vectors of a space (or those with ``ids``) as ``(ids, xb)``."""
        if ids is None:
            parts = list(self.iter_vectors(space_id))
        else:
            parts = []
            id_list = [int(i) for i in ids]
            for lo in range(0, len(id_list), 900):  # stay under SQLite's bound-parameter limit
                with self.session() as s:
                    rows = s.execute(select(Segment.id, Segment.vector).where(Segment.space_id == space_id, Segment.id.in_(id_list[lo : lo + 900]))).all()
                if rows:
                    parts.append(
                        (
                            np.array([r[0] for r in rows], dtype=np.int64),
                            np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32, copy=False),
                        )
                    )
        if not parts:
            dim = self._space_dim(space_id)
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _space_dim(self, space_id: int) -> int:
        with self.session() as s:
            return int(s.scalar(select(Space.dim).where(Space.id == space_id)))

    def index_path(self, space_id: int) -> Path:
        """Where the FAISS index of a space lives."""
        return self.root / "indexes" / f"space-{space_id}.faiss"

    def vector_index(self, space: SpaceInfo, *, refresh: bool = False) -> VectorIndex:
        """The space's FAISS index, loaded and brought in line with SQLite.

        A missing or unreadable file is rebuilt from the stored embeddings; a stale one (its
        generation differs) is synced by id difference, which also covers a crash between a
        commit and the index save. The synced index is saved back atomically.
        """
        from vidsearch.store.vectors import VectorIndex

        cached = self._indexes.get(space.id)
        generation = self.generation(space.id)
        if cached is not None and not refresh and cached.meta.get("generation") == generation:
            return cached
        path = self.index_path(space.id)
        index: VectorIndex | None = None
        if path.exists():
            try:
                index = VectorIndex.load(path)
            except LibraryError as exc:
                LOG.warning("rebuilding %s: %s", path, exc)
        if index is None or index.dim != space.dim:
            index = self.rebuild_index(space)
        elif index.meta.get("generation") != generation:
            self.sync_index(space, index)
            index.meta["generation"] = generation
            self._save_quietly(index, path)
        self._indexes[space.id] = index
        return index

    def sync_index(self, space: SpaceInfo, index: VectorIndex) -> tuple[int, int]:
        """Add vectors SQLite has and the index lacks; remove ids the index has and SQLite lacks."""
        db_ids = self.segment_ids(space.id)
        have = index.ids()
        missing = np.setdiff1d(db_ids, have, assume_unique=True)
        extra = np.setdiff1d(have, db_ids, assume_unique=True)
        if len(extra):
            index.remove(extra)
        if len(missing):
            ids, xb = self.load_vectors(space.id, missing)
            index.add(ids, xb)
        LOG.info("synced index of %s: +%d -%d", space.key, len(missing), len(extra))
        return len(missing), len(extra)

    def rebuild_index(self, space: SpaceInfo, spec: str | None = None) -> VectorIndex:
        """Build the space's index from the stored embeddings (no re-encoding) and save it."""
        from vidsearch.store.vectors import VectorIndex

        generation = self.generation(space.id)
        ids, xb = self.load_vectors(space.id)
        index = VectorIndex.build(ids, xb, spec=spec) if len(ids) else VectorIndex.empty(space.dim)
        index.meta["generation"] = generation
        self._save_quietly(index, self.index_path(space.id))
        self._indexes[space.id] = index
        return index

    def save_index(self, space: SpaceInfo, index: VectorIndex, generation: int) -> None:
        """Save ``index`` as reflecting ``generation`` of the space (atomic write)."""
        index.meta["generation"] = generation
        path = self.index_path(space.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        self._indexes[space.id] = index

    def _save_quietly(self, index: VectorIndex, path: Path) -> None:
        # Readers may lack write permission; the in-memory index is correct either way.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            index.save(path)
        except (OSError, LibraryError) as exc:
            LOG.warning("could not save %s: %s", path, exc)

    def segment_ids(self, space_id: int) -> np.ndarray:
        """Sorted ids of every segment of a space."""
        with self.session() as s:
            ids = s.scalars(select(Segment.id).where(Segment.space_id == space_id).order_by(Segment.id)).all()
        return np.asarray(ids, dtype=np.int64)

    # -- lookups for search and benchmarks ----------------------------------------------
    def segment_infos(self, ids: Sequence[int]) -> dict[int, SegmentInfo]:
        """Segment id -> :class:`SegmentInfo` for the given ids (unknown ids are left out)."""
        out: dict[int, SegmentInfo] = {}
        id_list = [int(i) for i in ids]
        for lo in range(0, len(id_list), 900):
            with self.session() as s:
                rows = s.execute(
                    select(Segment.id, Segment.video_id, Video.path, Segment.kind, Segment.start, Segment.end, Video.duration)
                    .join(Video, Video.id == Segment.video_id)
                    .where(Segment.id.in_(id_list[lo : lo + 900]))
                ).all()
            for r in rows:
                out[r[0]] = SegmentInfo(*r)
        return out

    def window_vectors(self, space_id: int, video_ids: Sequence[int]) -> dict[int, tuple[list[tuple[float, float]], np.ndarray]]:
        """Video id -> (``[(start, end), ...]`` in time order, ``xb``) of its stored windows in a space."""
        out: dict[int, tuple[list[tuple[float, float]], list[np.ndarray]]] = {}
        ids = [int(v) for v in video_ids]
        for lo in range(0, len(ids), 900):
            with self.session() as s:
                rows = s.execute(
                    select(Segment.video_id, Segment.start, Segment.end, Segment.vector)
                    .where(Segment.space_id == space_id, Segment.kind == "window", Segment.video_id.in_(ids[lo : lo + 900]))
                    .order_by(Segment.video_id, Segment.start)
                ).all()
            for vid, start, end, vec in rows:
                spans, vecs = out.setdefault(vid, ([], []))
                spans.append((start, end))
                vecs.append(np.frombuffer(vec, dtype="<f4"))
        return {vid: (spans, np.stack(vecs).astype(np.float32, copy=False)) for vid, (spans, vecs) in out.items()}

    def video_embeddings(self, space_key: str, paths: Sequence[Path | str]) -> tuple[np.ndarray, list[int]]:
        """Whole-video embeddings of ``paths`` in one space.

        Returns:
            ``(xb, found)``: ``xb[i]`` is the embedding of ``paths[found[i]]``; paths without one
            (never indexed, or failed) are left out of ``found``.
        """
        space = self.space(space_key)
        wanted = [str(Path(p).absolute()) for p in paths]
        by_path: dict[str, np.ndarray] = {}
        for lo in range(0, len(wanted), 900):
            with self.session() as s:
                rows = s.execute(
                    select(Video.path, Segment.vector)
                    .join(Segment, Segment.video_id == Video.id)
                    .where(Segment.space_id == space.id, Segment.kind == "video", Video.path.in_(wanted[lo : lo + 900]))
                ).all()
            for path, vec in rows:
                by_path[path] = np.frombuffer(vec, dtype="<f4")
        found = [i for i, p in enumerate(wanted) if p in by_path]
        if not found:
            return np.zeros((0, space.dim), dtype=np.float32), []
        return np.stack([by_path[wanted[i]] for i in found]).astype(np.float32), found

    def failures(self, paths: Sequence[Path | str] | None = None) -> dict[str, str]:
        """Path -> one-line reason for every failed video (or those among ``paths``)."""
        with self.session() as s:
            q = select(Video.path, Video.error).where(Video.status == VideoStatus.FAILED)
            rows = s.execute(q).all()
        result = {p: (e or "failed") for p, e in rows}
        if paths is not None:
            wanted = {str(Path(p).absolute()) for p in paths}
            result = {p: e for p, e in result.items() if p in wanted}
        return result

    # -- maintenance ---------------------------------------------------------------------
    def remove_videos(self, video_ids: Sequence[int]) -> int:
        """Delete videos (their segments go with them) and bump the affected spaces' generations."""
        if not video_ids:
            return 0
        ids = [int(i) for i in video_ids]
        with self.session() as s:
            space_ids = set(s.scalars(select(Segment.space_id).where(Segment.video_id.in_(ids)).distinct()).all())
            s.execute(delete(Video).where(Video.id.in_(ids)))
            if space_ids:
                s.execute(update(Space).where(Space.id.in_(space_ids)).values(generation=Space.generation + 1))
        return len(ids)

    def stats(self) -> dict[str, Any]:
        """Counts for `vidsearch info`: videos by status, failures, spaces with segments and index state."""
        with self.session() as s:
            by_status = dict(s.execute(select(Video.status, func.count()).group_by(Video.status)).all())
            failed = s.execute(select(Video.path, Video.error).where(Video.status == VideoStatus.FAILED).order_by(Video.path)).all()
            total_duration = s.scalar(select(func.coalesce(func.sum(Video.duration), 0.0)).where(Video.status == VideoStatus.INDEXED))
            seg_counts = dict(s.execute(select(Segment.space_id, func.count()).group_by(Segment.space_id)).all())
            vid_counts = dict(s.execute(select(Segment.space_id, func.count(func.distinct(Segment.video_id))).group_by(Segment.space_id)).all())
        spaces = []
        for sp in self.spaces():
            path = self.index_path(sp.id)
            entry: dict[str, Any] = {
                "key": sp.key,
                "dim": sp.dim,
                "model": sp.model_spec,
                "sampling": sp.sampling,
                "videos": int(vid_counts.get(sp.id, 0)),
                "segments": int(seg_counts.get(sp.id, 0)),
                "index_file": str(path),
                "index_bytes": path.stat().st_size if path.exists() else 0,
            }
            try:
                from vidsearch.store.vectors import VectorIndex

                header = VectorIndex.read_header(path) if path.exists() else None
            except LibraryError:
                header = None
            if header is not None:
                entry.update(
                    index_spec=header["spec"],
                    index_vectors=header.get("ntotal"),
                    index_recall_at_10=header.get("recall_at_10"),
                    index_up_to_date=header.get("meta", {}).get("generation") == sp.generation,
                )
            spaces.append(entry)
        return {
            "library": str(self.root),
            "videos_indexed": int(by_status.get(VideoStatus.INDEXED, 0)),
            "videos_failed": int(by_status.get(VideoStatus.FAILED, 0)),
            "hours_indexed": float(total_duration or 0.0) / 3600.0,
            "failed": [{"path": p, "reason": e} for p, e in failed],
            "spaces": spaces,
        }
