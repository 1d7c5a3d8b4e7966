"""One exception hierarchy whose messages are written for users.

The CLI prints any :class:`VidsearchError` on one line and exits non-zero, without a traceback,
so every message must say what went wrong, naming the file or argument, and what to do.
"""

from __future__ import annotations

__all__ = [
    "VidsearchError",
    "InputError",
    "ModelError",
    "CheckpointError",
    "WeightsNotFoundError",
    "MediaError",
    "LibraryError",
    "DiskFullError",
    "ReadOnlyLibraryError",
    "CorruptLibraryError",
]


class VidsearchError(Exception):
    """Base class of every error vidsearch raises on purpose."""


class InputError(VidsearchError):
    """A bad argument or input file given by the user."""


class ModelError(VidsearchError):
    """An unknown model name or an unusable model configuration."""


class CheckpointError(ModelError):
    """A checkpoint that cannot be read or does not fit the model."""


class WeightsNotFoundError(ModelError):
    """No weights could be found locally and they cannot be downloaded."""


class MediaError(VidsearchError):
    """A file that cannot be decoded as a video."""


class LibraryError(VidsearchError):
    """A library on disk that cannot be opened or is inconsistent."""


class DiskFullError(LibraryError):
    """The disk holding the library filled up while writing to it."""


class ReadOnlyLibraryError(LibraryError):
    """A write was asked of a library whose directory cannot be written."""


class CorruptLibraryError(LibraryError):
    """The library database fails SQLite's integrity check."""
