"""Forgetting videos (``vidsearch remove``): the files on disk are never touched."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vidsearch.errors import InputError

if TYPE_CHECKING:  # the CLI imports this module at start-up (for CONFIRM_OVER): no SQLAlchemy yet
    from vidsearch.store.library import Library

__all__ = ["Removal", "remove_videos", "CONFIRM_OVER"]

# A removal forgets at most this many videos unless confirmed (a folder can hold a whole library).
CONFIRM_OVER = 5


@dataclass(frozen=True)
class Removal:
    """What a removal found and did."""

    found: list[str]  # the indexed paths under the targets
    removed: int  # videos forgotten (0 on a dry run)
    dry_run: bool


def remove_videos(library: Library, paths: Sequence[str], *, confirmed: bool = False, dry_run: bool = False) -> Removal:
    """Forget the videos at ``paths`` (a folder: every video under it), then save the vector indexes.

    Runs under the library's writer lock, so an index run and a removal never interleave.

    Raises:
        InputError: an empty path (it must not mean the current folder), none of the paths is in
            the library, or more than :data:`CONFIRM_OVER` videos without ``confirmed``.
        LibraryError: another run holds the writer lock.
    """
    for p in paths:
        # `vidsearch remove "$UNSET"` must not mean the current folder (abspath("") is the cwd).
        if not p.strip():
            raise InputError(
                f"remove: the path {p!r} is empty; name the video or folder to forget (`.` for the current folder)"
            )
    targets = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    with library.writer_lock():
        found = library.paths_under(targets)
        if not found:
            raise InputError(f"none of {', '.join(targets)} is in the library; `vidsearch info` lists what is")
        if dry_run:
            return Removal(found, 0, True)
        if len(found) > CONFIRM_OVER and not confirmed:
            raise InputError(
                f"this would forget {len(found)} videos (first: {found[0]})",
                hint="confirm to remove them, or ask for a dry run to list them",
                remedy="confirm_remove",
            )
        removed = library.remove_paths(targets)
        from vidsearch.store.writer import SpaceWriter

        for space in library.spaces():
            SpaceWriter(library, space).close()  # the FAISS files without the removed vectors, now
    return Removal(found, removed, False)
