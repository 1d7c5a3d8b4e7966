"""Where a library lives on disk, told without opening it (no SQLAlchemy import).

Kept apart from :mod:`vidsearch.store.library` so a command can ask whether a library exists
before paying for the database layer's import (about a quarter of a second).
"""

from __future__ import annotations

from pathlib import Path

from vidsearch.settings import settings

__all__ = ["DB_NAME", "default_library_path", "library_root", "library_exists"]

DB_NAME = "library.sqlite"


def default_library_path() -> Path:
    """``$VIDSEARCH_LIBRARY``, else ``<user data dir>/vidsearch/library``."""
    env = settings().library_path()
    if env is not None:
        return env
    import platformdirs

    return platformdirs.user_data_path("vidsearch") / "library"


def library_root(path: Path | str | None) -> Path:
    """The library directory ``path`` means (None: the default library)."""
    return Path(path).expanduser() if path is not None else default_library_path()


def library_exists(path: Path | str | None) -> bool:
    """Whether the library at ``path`` (None: the default one) has a database yet."""
    return (library_root(path) / DB_NAME).exists()
