"""Open, migrate and query a library directory.

A library directory holds ``library.sqlite`` (videos, segments and their embedding vectors: the
source of truth) and, under ``indexes/``, one FAISS index per embedding space. A FAISS file is a
derived artefact: it records the space's *generation* (bumped by every transaction that changes
the space's vectors, :func:`vidsearch.store.spaces.bump_generation`); when the file is missing,
unreadable or stale it is brought up to date from SQLite on open, so a crash between a commit and
an index save never loses or duplicates vectors.

The SQL itself lives in the table modules (``spaces``, ``videos``, ``segments``, ``embeddings``,
``labels``); they take a session from :meth:`Library.session`, so a caller can put several of
them in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from vidsearch.errors import LibraryError
from vidsearch.fileio import clean_stale_temps
from vidsearch.paths import canonical_path
from vidsearch.store import embeddings, health, segments, spaces, videos
from vidsearch.store.engine import open_engine
from vidsearch.store.location import DB_NAME, default_library_path, library_root
from vidsearch.store.locks import WRITE_LOCK, file_lock
from vidsearch.store.schema import VideoStatus
from vidsearch.store.segments import SegmentInfo
from vidsearch.store.spacefiles import SpaceIndexFiles
from vidsearch.store.spaces import SpaceInfo

if TYPE_CHECKING:
    from vidsearch.store.vectors.protocol import SpaceIndex

__all__ = ["Library", "SpaceInfo", "SegmentInfo", "default_library_path", "DB_NAME"]

LOG = logging.getLogger(__name__)

_READ_CHUNK = 65536
STALE_TEMP_S = 600.0  # a live save writes its temporary file continuously


def _alembic_config():

    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(files("vidsearch.migrations")))
    return cfg


# The newest migration under migrations/versions (tests/test_migrations.py checks it against
# Alembic's own head). Knowing it lets an up-to-date library open without importing Alembic,
# whose import and script walk cost ~0.3 s of every command's start-up.
SCHEMA_HEAD = "0010"


def schema_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (``None`` for a database Alembic never stamped)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        stamped = conn.execute(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"))
        if stamped.scalar() is None:
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine, db_path: Path, read_only: bool = False) -> None:
    """Bring the database to the newest schema this vidsearch knows; refuse a newer one.

    A ``read_only`` library is not migrated: one made by an older vidsearch is refused.
    """
    if schema_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    head = script.get_current_head()
    with engine.connect() as conn:
        # Off before the transaction (inside one the pragma does nothing): a migration that
        # rebuilds a table others point at (0006) must not cascade the drop of its old copy.
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                # The sqlite3 module begins a transaction only before INSERT/UPDATE/DELETE, so each
                # CREATE/ALTER would commit on its own: a process killed mid-upgrade left tables made,
                # no revision stamped, and a library no later open could migrate. An explicit BEGIN
                # makes the whole upgrade one transaction (SQLite's DDL is transactional).
                conn.exec_driver_sql("BEGIN")
                current = MigrationContext.configure(conn).get_current_revision()
                if current is not None and current not in known:
                    raise LibraryError(
                        f"library {db_path} has schema revision {current!r}, made by a newer vidsearch; "
                        "upgrade vidsearch (pip install -U vidsearch) to open it"
                    )
                if current is None and read_only and not _has_tables(conn):
                    raise health.empty_database_error(db_path)  # not "read-only": there is nothing to read
                if current != head and read_only:
                    raise health.read_only_error(db_path.parent)
                if current != head:
                    LOG.info("migrating %s from %s to %s", db_path, current, head)
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _upgrade_if_behind(root: Path, db_path: Path) -> None:
    """Bring a library made by an older vidsearch to head before a read command reads it.

    A read command opens the database read-only, where a migration cannot run; without this,
    every library made before an upgrade would answer "read-only" until a writing command ran.
    The upgrade is the one write such a command makes, and only where the folder is writable.
    """
    probe = open_engine(db_path, True, immutable=health.needs_immutable(db_path))
    try:
        with health.translated_errors(root, db_path, opening=True):
            revision = schema_revision(probe)
            # Unstamped (an empty or foreign file) is left to the read-only open to name.
            behind = revision is not None and revision != SCHEMA_HEAD
    finally:
        probe.dispose()
    if not behind:
        return
    engine = open_engine(db_path, False, immutable=False)
    try:
        with health.translated_errors(root, db_path, opening=True):
            migrate(engine, db_path)
    finally:
        engine.dispose()


def _has_tables(conn: Any) -> bool:
    return conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").first() is not None


class Library(SpaceIndexFiles):
    """A library directory: SQLite metadata and embeddings plus one FAISS index per space.

    Its spaces' FAISS files (load, sync, rebuild, save) are :class:`SpaceIndexFiles`' job.
    """

    def __init__(self, root: Path, engine: Engine, *, read_only: bool = False, writable: bool = True) -> None:
        self.root = root
        self.engine = engine
        self.read_only = read_only  # this handle never writes (query, info)
        self.writable = writable  # the directory can be written at all
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._indexes: dict[int, SpaceIndex] = {}
        self._reading = threading.local()  # .session: this thread's open snapshot (see snapshot())

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True, read_only: bool = False) -> Library:
        """Open (and, with ``create``, create) the library at ``path``, migrating it to head.

        Args:
            read_only: open the database read-only and never write (not even the FAISS files);
                implied when the directory cannot be written, where writers are then refused
                with :class:`~vidsearch.errors.ReadOnlyLibraryError`.

        Raises:
            LibraryError: the path is not a usable library directory, or its schema is newer;
                :class:`~vidsearch.errors.CorruptLibraryError` for a damaged database.
        """
        root = library_root(path)
        db_path = root / DB_NAME
        if root.exists() and not root.is_dir():
            raise health.not_a_library_error(root)
        if not db_path.exists():
            if not create:
                raise health.no_library_error(root)
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create library directory {root}: {exc.strerror}") from exc
        writable = health.directory_writable(root)
        if not writable and not db_path.exists():
            raise health.read_only_error(root)
        if read_only and writable and db_path.exists():
            _upgrade_if_behind(root, db_path)
        read_only = read_only or not writable
        engine = open_engine(db_path, read_only, immutable=read_only and health.needs_immutable(db_path))
        try:
            with health.translated_errors(root, db_path, opening=True):
                migrate(engine, db_path, read_only=read_only)
        except LibraryError:
            engine.dispose()
            raise
        except Exception as exc:  # sqlite3.DatabaseError for a file that is not a database, etc.
            engine.dispose()
            raise LibraryError(
                f"cannot open library database {db_path}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc
        library = cls(root, engine, read_only=read_only, writable=writable)
        if not read_only:
            library._clean_index_temps()
        return library

    def _clean_index_temps(self) -> None:
        # A crash mid-save leaves a temporary index file; queries save synced indexes too, so only
        # files nobody has written to for a while are stale.
        folder = self.root / "indexes"
        if folder.is_dir():
            clean_stale_temps(folder, "*.faiss", min_age_s=STALE_TEMP_S)

    @staticmethod
    def serve_concurrent_searches() -> None:
        """Tune this process for many searches at once, each on its own thread (a server).

        Vector searches then run on their caller's thread only
        (:func:`~vidsearch.store.vectors.plumbing.search_one_query_per_thread`).
        """
        from vidsearch.store.vectors.plumbing import search_one_query_per_thread

        search_one_query_per_thread()

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
        """A transaction: committed when the block ends, rolled back on any exception.

        Inside :meth:`snapshot` (same thread) it is the snapshot's read transaction.
        """
        current = getattr(self._reading, "session", None)
        if current is not None:
            yield current
            return
        with health.translated_errors(self.root, self.db_path), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, every read of this library on this thread is one read transaction.

        A query reads the index generation, segment rows and window vectors in several calls;
        in one transaction they all see the same committed state, whatever an index run commits
        meanwhile (SQLite's WAL keeps the snapshot; writers are not blocked). Reads only: the
        block must not write. Nested blocks join the outer one.
        """
        if getattr(self._reading, "session", None) is not None:
            yield
            return
        with self.session() as session:
            session.connection().exec_driver_sql("BEGIN")  # deferred: the first read fixes the snapshot
            self._reading.session = session
            try:
                yield
            finally:
                self._reading.session = None

    @contextlib.contextmanager
    def write_session(self) -> Iterator[Session]:
        """A transaction that holds SQLite's write lock from its first statement (``BEGIN IMMEDIATE``).

        What it reads cannot change before it writes: a check such as "these segments still
        exist" stays true until the commit, whatever other processes do meanwhile (they wait).
        """
        with self.session() as session:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    @property
    def db_path(self) -> Path:
        """The SQLite file of the library."""
        return self.root / DB_NAME

    def check(self) -> list[str]:
        """Problems found by ``PRAGMA quick_check`` and by reading every FAISS file (checksums).

        Returns:
            One line per problem; empty when the library is sound.
        """
        from vidsearch.store.vectors.fileformat import REBUILD_HINT, read_index_file

        problems = [f"{self.db_path}: {p}" for p in health.quick_check(self.db_path)]
        if problems:
            return problems
        for sp in self.spaces():
            path = self.index_path(sp.id)
            if path.exists():
                try:
                    owner = read_index_file(path)[0].get("meta", {}).get("owner")
                    if owner is not None and owner != sp.uid:  # ownerless: an older vidsearch's, adopted
                        problems.append(f"{path} belongs to another library or space; {REBUILD_HINT}")
                except LibraryError as exc:
                    problems.append(f"{exc} (derived from {DB_NAME}: nothing is lost)")
        return problems

    def backup(self, dest: Path | str) -> Path:
        """A consistent copy of the database at ``dest`` (a file, or a folder to put it in).

        The FAISS files are not copied: they are rebuilt from the database when missing.
        """
        return health.backup(self.db_path, Path(dest))

    def _require_writable(self) -> None:
        if not self.writable:
            raise health.read_only_error(self.root)

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive lock for runs that write (index, remove, reindex) on this library.

        Raises:
            LibraryError: another run holds it; ReadOnlyLibraryError: the library is read-only.
        """
        self._require_writable()
        with file_lock(
            self.root / WRITE_LOCK, f"another vidsearch run is writing to {self.root}; wait for it to finish"
        ):
            yield

    @contextlib.contextmanager
    def enrich_lock(self) -> Iterator[None]:
        """One labelling run at a time per library (indexing may go on meanwhile).

        Raises:
            LibraryError: another labelling run holds it; ReadOnlyLibraryError: the library is read-only.
        """
        self._require_writable()
        with file_lock(
            self.root / ".enrich.lock",
            f"another `vidsearch enrich` run is labelling {self.root}; wait for it to finish",
        ):
            yield

    # -- spaces --------------------------------------------------------------------------
    def spaces(self) -> list[SpaceInfo]:
        """All embedding spaces, most recently updated first."""
        with self.session() as s:
            return spaces.list_spaces(s)

    def space(self, key: str | None = None) -> SpaceInfo:
        """The space with exactly ``key`` (a ``--model``: ``usecases.spaces``), or the latest when None.

        Raises:
            LibraryError: no such space (the message lists the ones there are).
        """
        found = self.spaces()
        if not found:
            raise LibraryError(f"library {self.root} is empty; run `vidsearch index DIR` first")
        if key is None:
            return found[0]
        for sp in found:
            if sp.key == key:
                return sp
        raise LibraryError(
            f"library {self.root} has no embeddings for model {key!r}; it has: {', '.join(s.key for s in found)}"
        )

    def find_space(self, key: str) -> SpaceInfo | None:
        """The space with exactly ``key``, if any."""
        with self.session() as s:
            return spaces.find_space(s, key)

    def ensure_space(self, key: str, dim: int, model_spec: dict[str, Any], sampling: dict[str, Any]) -> SpaceInfo:
        """Get the space ``key``, creating it on first use.

        Raises:
            LibraryError: the space exists with another dimension.
        """
        with self.session() as s:
            found = spaces.find_space(s, key)
            if found is None:
                return spaces.add_space(s, key, dim, model_spec, sampling)
            if found.dim != dim:
                raise LibraryError(f"space {key} in {self.root} has dim {found.dim}, the model gives {dim}")
            return found

    def generation(self, space_id: int) -> int:
        """The space's current generation (see module docstring)."""
        with self.session() as s:
            return spaces.generation(s, space_id)

    # -- vectors -------------------------------------------------------------------------
    def iter_vectors(self, space_id: int, chunk: int = _READ_CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids, xb)`` of every stored vector of a space, in chunks, by id."""
        dim = self._space_dim(space_id)
        last = -1
        while True:
            with self.session() as s:
                ids, xb = embeddings.vectors_after(s, space_id, last, chunk, dim)
            if not len(ids):
                return
            last = int(ids[-1])
            yield ids, xb

    def load_vectors(self, space_id: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All vectors of a space (or those with ``ids``) as ``(ids, xb)``."""
        if ids is not None:
            with self.session() as s:
                return embeddings.vectors_by_id(s, space_id, [int(i) for i in ids], self._space_dim(space_id))
        parts = list(self.iter_vectors(space_id))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self._space_dim(space_id)), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _space_dim(self, space_id: int) -> int:
        with self.session() as s:
            return spaces.space_dim(s, space_id)

    def segment_ids(self, space_id: int) -> np.ndarray:
        """Sorted ids of every segment of a space."""
        with self.session() as s:
            return segments.segment_ids(s, space_id)

    # -- lookups for search and benchmarks ----------------------------------------------
    def segment_infos(self, ids: Sequence[int]) -> dict[int, SegmentInfo]:
        """Segment id -> :class:`SegmentInfo` for the given ids (unknown ids are left out)."""
        with self.session() as s:
            return segments.segment_infos(s, ids)

    def window_vectors(
        self, space_id: int, video_ids: Sequence[int]
    ) -> dict[int, tuple[list[tuple[float, float]], np.ndarray]]:
        """Video id -> (``[(start, end), ...]`` in time order, ``xb``) of its stored windows in a space."""
        with self.session() as s:
            return embeddings.window_vectors(s, space_id, video_ids)

    def video_embeddings(self, space_key: str, paths: Sequence[Path | str]) -> tuple[np.ndarray, list[int]]:
        """Whole-video embeddings of ``paths`` in one space.

        Returns:
            ``(xb, found)``: ``xb[i]`` is the embedding of ``paths[found[i]]``; paths without one
            (never indexed, or failed) are left out of ``found``.
        """
        space = self.space(space_key)
        wanted = [canonical_path(p) for p in paths]
        with self.session() as s:
            by_path = embeddings.video_vectors(s, space.id, wanted)
        found = [i for i, p in enumerate(wanted) if p in by_path]
        if not found:
            return np.zeros((0, space.dim), dtype=np.float32), []
        return np.stack([by_path[wanted[i]] for i in found]).astype(np.float32), found

    def failures(self, paths: Sequence[Path | str] | None = None) -> dict[str, str]:
        """Path -> one-line reason for every failed video (or those among ``paths``)."""
        with self.session() as s:
            result = dict(videos.failures(s))
        if paths is not None:
            wanted = {canonical_path(p) for p in paths}
            result = {p: e for p, e in result.items() if p in wanted}
        return result

    # -- maintenance ---------------------------------------------------------------------
    def remove_videos(self, video_ids: Sequence[int]) -> int:
        """Delete videos (their segments go with them) and bump the affected spaces' generations."""
        with self.session() as s:
            return videos.remove_videos(s, video_ids)

    def paths_under(self, targets: Sequence[Path | str]) -> list[str]:
        """The stored paths :meth:`remove_paths` would forget for ``targets``, sorted."""
        absolute = [os.path.abspath(os.path.expanduser(str(t))) for t in targets]
        with self.session() as s:
            return [path for _, path in videos.videos_under(s, absolute)]

    def remove_paths(self, targets: Sequence[Path | str]) -> int:
        """Forget the videos at ``targets`` (files, or folders: every video under them).

        Returns:
            How many videos were removed (0: none of the targets is in the library).
        """
        absolute = [canonical_path(t) for t in targets]
        with self.session() as s:
            return videos.remove_videos(s, videos.video_ids_under(s, absolute))

    def stats(self) -> dict[str, Any]:
        """Counts for `vidsearch info`: videos by status, failures, spaces with segments and index state."""
        from vidsearch.store.vectors.files import index_file_entry

        with self.session() as s:
            by_status = videos.status_counts(s)
            failed = videos.failures(s)
            hours = videos.hours_indexed(s)
            seg_counts, vid_counts = segments.segment_counts(s)
        entries = []
        for sp in self.spaces():
            entry: dict[str, Any] = {
                "key": sp.key,
                "dim": sp.dim,
                "model": sp.model_spec,
                "sampling": sp.sampling,
                "videos": int(vid_counts.get(sp.id, 0)),
                "segments": int(seg_counts.get(sp.id, 0)),
            }
            entry.update(index_file_entry(self.index_path(sp.id), self.ondisk_path(sp.id), sp.generation, sp.uid))
            entries.append(entry)
        return {
            "library": str(self.root),
            "videos_indexed": int(by_status.get(VideoStatus.INDEXED, 0)),
            "videos_failed": int(by_status.get(VideoStatus.FAILED, 0)),
            "hours_indexed": hours,
            "failed": [{"path": p, "reason": e} for p, e in failed],
            "spaces": entries,
        }
