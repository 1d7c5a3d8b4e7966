"""The one space resolver: which embedding space a ``--model`` (and ``--precision``) value means."""

from __future__ import annotations

from pathlib import Path

from vidsearch.errors import InputError, LibraryError, VidsearchError
from vidsearch.models import model_key
from vidsearch.precision import space_key as at_precision
from vidsearch.precision import split_key
from vidsearch.store.library import Library, SpaceInfo

__all__ = ["resolve_space"]


def resolve_space(library: Library, model: str | None = None, precision: str = "auto") -> SpaceInfo:
    """The embedding space ``model`` (at ``precision``) means in ``library``.

    ``model`` is a space key, a space key's name before ``@`` (as ``vidsearch info`` lists them),
    or anything ``vidsearch index --model`` accepts (a preset, a checkpoint path, an
    ``openclip:`` spec): then the space that model's vectors went into. None: the most recently
    indexed space. ``precision`` ``auto`` takes the space's own; an explicit one picks, among
    the spaces of that model (or of the latest space's model), the one at that precision. Every
    front end (the CLI's ``--model``, ``serve --model``) resolves through here.

    Raises:
        LibraryError: the library is empty, or has no vectors of that model (the message lists its
            spaces), or ``model`` is neither a space nor a model that can be resolved.
        InputError: the space is at another precision and the library has none of the model at
            ``precision`` (or ``model`` is an exact space key of another precision).
    """
    try:
        space = _model_space(library, model)
    except LibraryError:
        # `index --model M --precision P` made only M's space at P, which --model M alone misses.
        found = None if precision == "auto" else _model_space_at(library, model, precision)
        if found is None:
            raise
        return found
    base, have = split_key(space.key)
    if precision in ("auto", have):
        return space
    sibling = library.find_space(at_precision(base, precision)) if model != space.key else None
    if sibling is not None:
        return sibling
    raise InputError(
        f"{precision}: embedding space {space.key} of {library.root} is {have} (a library keeps each "
        "precision in its own space)",
        argument="precision",
        hint=f"leave the precision out or ask for {have}, or index at {precision} first",
        remedy="space_precision",
        value=precision,
        choices=(have,),
    )


def _model_space(library: Library, model: str | None) -> SpaceInfo:
    """The space ``model`` names: a key, a key's name before ``@``, or a model that resolves to a key."""
    if model is None:
        return library.space(None)
    found = library.spaces()  # most recently indexed first: a bare name means its latest space
    for sp in found:
        if model in (sp.key, sp.key.split("@")[0]):
            return sp

    try:
        # cheap: the checkpoint's cached hash, no model built
        key = model_key(model, config=_recorded_config(found, model))
    except VidsearchError as exc:
        have = ", ".join(s.key for s in found) or "none"
        # Only what went wrong: the loader's advice (give a checkpoint) is no option here.
        raise LibraryError(
            f"{model}: not an embedding space of {library.root} (it has: {have}) and not a usable model: {exc.what}",
            argument="model",
        ) from None
    return library.space(key)


def _model_space_at(library: Library, model: str | None, precision: str) -> SpaceInfo | None:
    """``model``'s space at ``precision`` in ``library``, if the library has one."""

    if model is None:
        return None
    try:
        key = at_precision(model_key(model, config=_recorded_config(library.spaces(), model)), precision)
    except VidsearchError:
        return None
    return library.find_space(key)


def _recorded_config(spaces: list[SpaceInfo], model: str) -> str | None:
    """The config JSON a space indexed from the checkpoint file ``model`` recorded, if any.

    A checkpoint indexed with ``--model-config`` may have no config beside it; the space knows
    which one it was (the most recent space of that file, when there are several).
    """
    try:
        target = Path(model).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    for sp in spaces:  # most recently updated first
        spec = sp.model_spec
        files = [spec.get(field) for field in ("checkpoint", "model")]
        if spec.get("config") and any(f and Path(str(f)).expanduser().resolve() == target for f in files):
            return str(spec["config"])
    return None
