"""What can go wrong with the disk under a library, turned into one-line errors that say what to do.

- a full disk (SQLite's ``database or disk is full``, ``ENOSPC`` from a file write);
- a corrupted ``library.sqlite`` (``database disk image is malformed``), confirmed with
  ``PRAGMA quick_check``;
- a directory that cannot be written (read-only mount, permissions): read-only commands open
  the database read-only, writers are refused up front;
- :func:`backup`: a consistent copy of a live database (SQLite's online backup API).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from vidsearch.errors import CorruptLibraryError, DiskFullError, LibraryError, ReadOnlyLibraryError

__all__ = [
    "is_disk_full",
    "disk_full_error",
    "is_corruption",
    "quick_check",
    "corruption_error",
    "directory_writable",
    "read_only_error",
    "not_a_library_error",
    "no_library_error",
    "empty_database_error",
    "backup",
    "translated_errors",
]

LOG = logging.getLogger(__name__)

_DISK_FULL_TEXT = ("database or disk is full", "no space left on device")
_CORRUPT_TEXT = ("malformed", "file is not a database", "database corruption")


def _chain(exc: BaseException | None) -> list[BaseException]:
    # SQLAlchemy wraps the driver's error (``.orig``); a raise ... from keeps ``__cause__``.
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the disk is full."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(e).lower() for t in _DISK_FULL_TEXT):
            return True
    return False


def _io_error_on_a_full_disk(exc: BaseException, root: Path) -> bool:
    # SQLite reports a -shm or journal file it could not grow as "disk I/O error", not "full"
    return any("disk i/o error" in str(e).lower() for e in _chain(exc)) and _free_mb(root) < 1.0


def _free_mb(path: Path) -> float:
    for folder in (path, *path.parents):
        try:
            return shutil.disk_usage(folder).free / 1e6
        except OSError:
            continue
    return 0.0


def disk_full_error(root: Path, target: Path | str | None = None) -> DiskFullError:
    """The one-line error for a write into library ``root`` that hit a full disk."""
    root = Path(root)
    what = Path(target) if target is not None else root
    return DiskFullError(
        f"disk full while writing {what} ({_free_mb(root):.0f} MB free); nothing committed before this "
        "write was lost (it was rolled back); free some space and run the command again to resume"
    )


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is SQLite reporting a damaged database file."""
    return any(t in str(e).lower() for e in _chain(exc) for t in _CORRUPT_TEXT)


def needs_immutable(db_path: Path) -> bool:
    """Whether ``db_path`` can be read only as ``immutable``: a plain read-only open fails.

    Reading a WAL database creates its ``-shm`` file beside it, which a read-only folder or a
    full disk refuses ("unable to open database file", "disk I/O error"); an immutable open
    reads the file as it is, without it. Reads must still answer there.
    """
    try:
        con = sqlite3.connect(f"file:{quote(str(db_path))}?mode=ro", uri=True, timeout=30)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return True
    except sqlite3.Error:
        return False  # a damaged file: the caller's own open reports it
    return False


def connect_read_only(db_path: Path) -> sqlite3.Connection:
    """A read-only connection to ``db_path``, immutable where it must be (see :func:`needs_immutable`)."""
    extra = "&immutable=1" if needs_immutable(db_path) else ""
    return sqlite3.connect(f"file:{quote(str(db_path))}?mode=ro{extra}", uri=True, timeout=30)


def quick_check(db_path: Path) -> list[str]:
    """Problems ``PRAGMA quick_check`` finds in the database file (empty: it is sound).

    The file is opened read-only, so checking never changes it.
    """
    try:
        con = connect_read_only(db_path)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [str(r[0]) for r in con.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as exc:
        return [str(exc)]
    finally:
        con.close()
    return [] if rows == ["ok"] else rows


def corruption_error(db_path: Path, problems: list[str], opening: bool = False) -> CorruptLibraryError:
    """The one-line error for a damaged database, saying what to do."""
    first = " ".join((problems[0] if problems else "database disk image is malformed").split())[:120]
    what = f"cannot open library database {db_path}: it" if opening else f"library database {db_path}"
    return CorruptLibraryError(
        f"{what} is corrupted ({first}); restore it from a backup (`vidsearch backup` makes one), "
        f"or move {db_path.parent} away and run `vidsearch index DIR` again to rebuild it from your videos"
    )


def directory_writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (tried, so read-only mounts count, and root's
    permission bypass is honoured as the kernel applies it)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".vidsearch-write-test.", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def not_a_library_error(root: Path) -> LibraryError:
    """The one-line error for a library path that is a file."""
    return LibraryError(
        f"library path {root} is a file, not a directory",
        path=root,
        hint="name a library directory",
        remedy="choose_library",
    )


def no_library_error(root: Path) -> LibraryError:
    """The one-line error for opening a library that does not exist where one is needed."""
    return LibraryError(f"no library at {root}", path=root, hint="index a folder into it first", remedy="index_first")


def empty_database_error(db_path: Path) -> LibraryError:
    """The one-line error for a ``library.sqlite`` with nothing in it (0 bytes, or no tables)."""
    return LibraryError(
        f"{db_path} is empty ({db_path.stat().st_size} bytes): no library",
        path=db_path.parent,
        hint="move it away, or index a folder into this directory to make a new library there",
        remedy="replace_empty_library",
    )


def read_only_error(root: Path) -> ReadOnlyLibraryError:
    """The one-line error for a write asked of a read-only library."""
    return ReadOnlyLibraryError(
        f"library {root} is read-only (its directory cannot be written); read commands (query, info) work, "
        "for this one make it writable or copy it elsewhere (`vidsearch backup DEST`)"
    )


def backup(db_path: Path, dest: Path) -> Path:
    """Copy a (possibly live) library database to ``dest`` with SQLite's online backup API.

    ``dest`` may be a directory (the copy is ``dest/library.sqlite``). The copy is written to a
    temporary file and renamed, so an interrupted backup never leaves a half-written file.

    Raises:
        LibraryError: ``dest`` cannot be written, or the disk filled up.
    """
    dest = Path(dest).expanduser()
    if dest.is_dir():
        dest = dest / db_path.name
    if dest.resolve() == db_path.resolve():
        raise LibraryError(f"backup destination {dest} is the library database itself; pass another path")
    tmp = dest.with_name(f".{dest.name}.backup.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = connect_read_only(db_path)
        try:
            out = sqlite3.connect(tmp)
            try:
                src.backup(out)
            finally:
                out.close()
        finally:
            src.close()
        os.replace(tmp, dest)
    except (OSError, sqlite3.Error) as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(dest.parent, dest) from None
        if is_corruption(exc):
            raise corruption_error(db_path, [str(exc)]) from None
        raise LibraryError(f"cannot back up {db_path} to {dest}: {exc}") from None
    return dest


@contextlib.contextmanager
def translated_errors(root: Path, db_path: Path, opening: bool = False) -> Iterator[None]:
    """Turn SQLite's disk-full, corruption and read-only errors inside the block into one-line
    :class:`LibraryError` subclasses (a corruption report is confirmed by ``quick_check`` first)."""
    try:
        yield
    except LibraryError:
        raise
    except Exception as exc:
        # Only what the database or the OS raised: a user error's text must never be mistaken.
        if not isinstance(exc, (sqlite3.Error, OSError)) and not isinstance(getattr(exc, "orig", None), sqlite3.Error):
            raise
        if is_disk_full(exc) or _io_error_on_a_full_disk(exc, root):
            raise disk_full_error(root, db_path) from exc
        if any("readonly database" in str(e).lower() for e in _chain(exc)):
            raise read_only_error(root) from exc
        if is_corruption(exc):
            raise corruption_error(db_path, quick_check(db_path) or [str(getattr(exc, "orig", exc))], opening) from exc
        raise
