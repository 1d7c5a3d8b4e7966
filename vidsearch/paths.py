"""File paths as the library keys them, and as they are shown.

A library stores one row per real file: :func:`canonical_path` resolves symlinked folders (so
indexing a link to a folder and the folder itself agree). Names that are not valid UTF-8 arrive
from the OS as ``str`` with surrogate escapes (PEP 383); they are kept losslessly (``os.fsencode``
gives the original bytes back) and shown escaped by :func:`display_path`.
"""

from __future__ import annotations

import os

__all__ = ["canonical_path", "display_path", "has_surrogates"]


def canonical_path(path: str | os.PathLike[str]) -> str:
    """The absolute path of ``path`` with every symlinked folder above it resolved.

    The last component is left as it is (a symlinked *file* keeps its own name), so a file reached
    through two links to one folder gets one path.
    """
    absolute = os.path.abspath(os.path.expanduser(os.fspath(path)))
    head, name = os.path.split(absolute)
    if not name:
        return os.path.realpath(absolute)
    return os.path.join(os.path.realpath(head), name)


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds surrogate escapes of undecodable file-name bytes."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def display_path(path: str) -> str:
    """``path`` printable on any terminal: undecodable bytes shown as ``\\xNN``."""
    if not has_surrogates(path):
        return path
    return os.fsencode(path).decode("utf-8", "backslashreplace")
