"""One exception hierarchy whose messages are written for users, as fields a front end renders.

Every :class:`VidsearchError` carries what went wrong (``what``), the file concerned (``path``),
the argument it is about (``argument``, a Python name such as ``link_iou``) and what to do
(``hint``, in words that name no front end's options). A fix that a front end spells with its
own options (``--checkpoint PATH`` on the command line) is named by a :data:`Remedy` key, which
the front end words itself: the library never names a command-line flag, and no caller has to
cut advice off a message string.

``str(exc)`` renders the fields with plain argument names and the hint: one line that still
says what to do. The CLI prints its own rendering on one line and exits non-zero, without a
traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Remedy",
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

# Fixes a front end words with its own options (the CLI: cli/errors.py). Every raise that names
# one also has a hint saying the same in plain words, which is what ``str(exc)`` prints.
Remedy = Literal[
    "use_choices",  # give the argument one of ``choices``
    "pass_checkpoint",  # give the path of a local checkpoint file (or set ``env``)
    "check_checkpoint",  # the checkpoint path given does not exist
    "download_checkpoint",  # ``value`` says what to download; then give its path (or set ``env``)
    "pass_model_config",  # give the model's config JSON (InternVideo2Config fields)
    "pass_model_config_json",  # give the model's config JSON
    "pass_config",  # give the config JSON of a bare checkpoint (or put ``value`` beside it)
    "reindex_space",  # index again with the model's new weights (at ``path``) as a new space
    "reindex_moved",  # index again with the model at its new path
    "reindex_on_disk",  # rebuild the on-disk vector index
    "choose_library",  # name another library directory
    "index_first",  # index a folder into the library at ``path`` first
    "match_antialias",  # use the resize the space was indexed with (``value`` on/off), or another library
    "recognize_first",  # run the recognition pass (label set ``value``) first
    "calibrate_score",  # calibrate the score kind ``value``
    "detector_weights",  # download ``value``, give the detector's weights file, or use the weight-free detector
    "detector_weights_file",  # give the detector's weights file
    "ivf_index_spec",  # an on-disk index needs an IVF index spec
    "drop_detector_weights",  # the weight-free detector takes no weights file
    "int8_training",  # train at a float precision, then index at int8
    "query_usage",  # how a query is given
    "span_needs_video",  # a time span needs a query clip
    "localize_usage",  # how a localization query is given
    "label_with_set",  # a label set filter needs a label
    "space_precision",  # the space is at another precision (``choices``) than asked (``value``)
    "confirm_remove",  # a large removal needs confirming (or a dry run)
    "head_space",  # a trained head belongs to another space; pick it, or train one for ``value``
    "replace_empty_library",  # an empty database file at ``path``: move it away or index there
]


class VidsearchError(Exception):
    """Base class of every error vidsearch raises on purpose.

    Args:
        what: what went wrong, on one line, naming the file or value; when ``argument`` is
            given, it reads after the argument's name (``"must be in [0, 1] (got 2)"``).
        path: the file or folder concerned, if any.
        argument: the caller's argument the error is about (``link_iou``; ``start/end`` for a
            pair), named by each front end in its own terms.
        hint: what to do, in words that name no front end's options.
        remedy: a fix a front end may word with its own options instead of ``hint``.
        value: the offending value, where a remedy's wording needs it.
        choices: the values that would do, where the remedy is to use one of them.
        env: the environment variable that can also give the value.
    """

    def __init__(
        self,
        what: str,
        *,
        path: str | Path | None = None,
        argument: str | None = None,
        hint: str | None = None,
        remedy: Remedy | None = None,
        value: str | None = None,
        choices: tuple[str, ...] = (),
        env: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.path = None if path is None else Path(path)
        self.argument = argument
        self.hint = hint
        self.remedy = remedy
        self.value = value
        self.choices = tuple(choices)
        self.env = env

    def __str__(self) -> str:
        """One line: the argument's Python name, what went wrong, and the hint."""
        head = f"{self.argument} {self.what}" if self.argument else self.what
        return f"{head}; {self.hint}" if self.hint else head

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (decode workers, cluster actors): keep the fields.
        fields = {k: v for k, v in vars(self).items() if k != "what"}
        return (functools.partial(type(self), **fields), (self.what,))


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
