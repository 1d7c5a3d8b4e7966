"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["TMP_SUFFIX", "atomic_write", "atomic_write_text", "clean_stale_temps", "why_not_a_file"]

LOG = logging.getLogger(__name__)

# Every temporary file of an atomic write is `.<name>.<random>.tmp` beside its target, so a crash
# leaves only names that `clean_stale_temps` recognises, and two writers never share one.
TMP_SUFFIX = ".tmp"


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every OS lets one open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a unique temporary file beside ``path``, fsync it, rename it over ``path``.

    The directory is fsynced after the rename, so after a power cut the path holds either the
    old bytes or the new ones.

    Returns:
        ``path``. On failure the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def clean_stale_temps(folder: str | os.PathLike[str], target_glob: str = "*", min_age_s: float = 0.0) -> int:
    """Delete temporary files that crashed atomic writes left in ``folder``.

    Args:
        folder: where the targets live.
        target_glob: which targets' temporaries to look for (e.g. ``"*.faiss"``).
        min_age_s: leave files modified more recently than this (a live writer may own them);
            0 removes all, which is right only while holding the lock its writers take.

    Returns:
        How many files were removed.
    """
    folder = Path(folder)
    removed = 0
    now = time.time()
    # mkstemp's random part has no dots, so ".<target>.<random>.tmp" matches exactly one target glob.
    for stale in folder.glob(f".{target_glob}.*{TMP_SUFFIX}"):
        try:
            if min_age_s and now - stale.stat().st_mtime < min_age_s:
                continue
            stale.unlink()
            removed += 1
        except OSError as exc:
            LOG.warning("cannot remove stale temporary file %s: %s", stale, exc)
    return removed


def why_not_a_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is no regular file to read, as the end of a sentence (None: it is one).

    "does not exist" said of a folder or of ``/dev/zero`` sends the user looking for a missing
    file; this says what the path is instead.
    """

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, FIFO or socket)"
    return None
