"""The SQLAlchemy engine of a library database: pragmas, and read-only opening."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

__all__ = ["open_engine"]


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    if getattr(dbapi_connection, "vidsearch_read_only", False):
        cur.close()
        return
    # WAL lets queries read while an index run writes; NORMAL sync is durable against process
    # crashes (SIGKILL), which is what "a crash loses nothing" means for a desktop library.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class _ReadOnlyConnection(sqlite3.Connection):
    vidsearch_read_only = True


def open_engine(db_path: Path, read_only: bool, immutable: bool) -> Engine:
    """An engine on ``db_path``; read-only ones open it ``mode=ro`` (``immutable`` when not even
    SQLite's -shm file can be created beside it), so they work on read-only mounts."""
    if read_only:
        uri = f"file:{quote(str(db_path))}?mode=ro" + ("&immutable=1" if immutable else "")

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False, factory=_ReadOnlyConnection)

        # The URL alone would mean an in-memory database, whose default pool (one connection per
        # thread, at most five, the oldest closed under a thread still using it) crashes a server
        # that searches from many threads: pool file connections as a file URL would.
        engine = create_engine("sqlite://", creator=connect, future=True, poolclass=QueuePool)
    else:
        engine = create_engine(f"sqlite:///{db_path}", future=True)
    event.listen(engine, "connect", _set_pragmas)
    return engine
