"""Load ``torch.save`` checkpoints that carry more than tensors, without running their code.

Training checkpoints (InternVideo's ``{"model", "optimizer", "scheduler", "scaler", "config",
...}``) pickle their config as an instance of a class of the training code, e.g.
``utils.easydict.EasyDict``. ``torch.load(weights_only=True)`` refuses such a file, and a full
unpickle needs that code importable (``No module named 'utils'``) and would run whatever the
pickle asks for. :func:`load_weights_only` keeps torch's own weights-only unpickler (it imports
nothing, calls only tensor rebuilding and plain containers, and sets state only on tensors,
``OrderedDict`` and allow-listed classes) and, for this one load, allow-lists every other class
the pickle names as an inert stand-in (``torch.serialization.safe_globals``):

* a stand-in restored the way pickle restores plain objects (``NEWOBJ``, ``SETITEMS``, then
  ``BUILD``) holds its items and attributes, and :func:`to_plain` turns it into a plain dict, so
  a foreign config becomes a dict;
* a pickle that *calls* a stand-in (``REDUCE``), which is how a malicious pickle runs
  ``os.system`` or ``eval``, stops with :class:`RefusedGlobal`: nothing is run.

Storages are resolved by torch itself, so ``mmap=True`` works as with a plain ``torch.load``,
and tensors that are dropped later (optimizer state) are never read.
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import pickletools
import threading
import zipfile
from pathlib import Path
from typing import IO, Any, BinaryIO

import torch

__all__ = ["RefusedGlobal", "TRUSTED_PICKLE_MODULE", "load_weights_only", "pickle_globals", "to_plain"]

# torch refuses every name of these modules even when it is allow-listed: no stand-in can be
# registered for them, and nothing in them is data.
_CODE_MODULES = frozenset({"os", "posix", "nt", "sys"})
# Plain values torch's weights-only unpickler does not allow by default and checkpoints hold.
_EXTRA_SAFE: list[tuple[Any, str]] = [(frozenset, "builtins.frozenset"), (slice, "builtins.slice")]
# ``safe_globals`` changes a process-wide allow-list: one load at a time registers its stand-ins.
_LOAD_LOCK = threading.Lock()


class RefusedGlobal(Exception):
    """The pickle asks to call something that is not a tensor or a plain container.

    Not a ``pickle.UnpicklingError``: torch rewraps those into a several-line message, and this
    one must reach the caller with its name intact.
    """

    def __init__(self, name: str, action: str = "calls") -> None:
        super().__init__(f"the pickle {action} {name}, which is not a tensor or a plain container")
        self.name = name


# The attribute that marks an ``OrderedDict`` as the restored instance of a foreign class.
_FOREIGN = "__vidsearch_foreign_class__"


class _StandInMeta(type):
    """Metaclass of stand-ins: calling one (pickle's ``REDUCE``) is refused, nothing runs."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedGlobal(cls.__qualname__)


class StandIn:
    """A class the checkpoint names but vidsearch does not import.

    ``NEWOBJ`` creates instances with ``__new__`` (not a call), which returns an
    ``OrderedDict`` tagged with the class name: torch's weights-only unpickler fills only exact
    ``dict``/``OrderedDict`` objects (``SETITEMS``, as a ``dict`` subclass such as ``EasyDict``
    pickles its items) and sets state (``BUILD``) on an ``OrderedDict`` into its ``__dict__``.
    :func:`to_plain` merges both into one plain dict.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - see the class docstring
        obj: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        setattr(obj, _FOREIGN, cls.__qualname__)
        return obj


def _stand_in(qualname: str) -> type:
    return _StandInMeta(qualname, (StandIn,), {"__qualname__": qualname})


class _TrustedStandIn(dict[str, Any]):
    """A class of a trusted checkpoint whose module is gone: a dict of its items and attributes."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            for part in state:
                self.__setstate__(part)
        elif isinstance(state, dict):
            self.update(state)
        elif state is not None:
            self["__state__"] = state


def _global_name(arg: str) -> str:
    """``module.name`` of a ``GLOBAL`` opcode's argument, with Python 2 names mapped as torch does."""
    module, name = arg.split(" ", 1)
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _globals_of(fh: IO[bytes], pickles: int) -> set[str]:
    """The names of the ``GLOBAL`` opcodes of the next ``pickles`` pickles of ``fh`` (not run)."""
    names: set[str] = set()
    for _ in range(pickles):
        names.update(_global_name(str(arg)) for op, arg, _ in pickletools.genops(fh) if op.name == "GLOBAL")
    return names


def pickle_globals(path: Path) -> set[str]:
    """Every class or function a ``torch.save`` file names (zip or legacy format), unpickling nothing."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            record = next(n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            with zf.open(record) as fh:
                return _globals_of(fh, 1)
    with open(path, "rb") as fh:
        # The legacy format: magic number, protocol, system info, then the object itself.
        return _globals_of(fh, 4)


def load_weights_only(path: Path, mmap: bool) -> Any:
    """``torch.load(weights_only=True)`` with every foreign class of the file as an inert stand-in.

    Raises:
        RefusedGlobal: the pickle names a function of ``os``/``sys`` or calls a stand-in.
        Exception: whatever torch raises for a file it cannot read (truncated, not a checkpoint).
    """
    try:
        names = pickle_globals(path)
    except (OSError, ValueError, EOFError, StopIteration, zipfile.BadZipFile):
        names = set()  # not a readable pickle: torch.load below says why, in its words
    for name in sorted(names):
        if name.split(".", 1)[0] in _CODE_MODULES:
            raise RefusedGlobal(name)
    # A name torch allows by default resolves to torch's own object before any stand-in is
    # consulted, so every name but the extra safe ones gets one.
    extra = {name for _, name in _EXTRA_SAFE}
    stand_ins = [(_stand_in(name), name) for name in sorted(names - extra)]
    with _LOAD_LOCK, torch.serialization.safe_globals([*_EXTRA_SAFE, *stand_ins]):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


class TrustedUnpickler(pickle.Unpickler):
    """Full unpickling (imports and calls anything), with stand-ins for classes that are gone.

    Only for files the user said they trust: a config class of training code that is not
    installed (``utils.easydict``) still becomes a dict.
    """

    def find_class(self, module: str, name: str) -> Any:
        """The named global, or a stand-in where its module or attribute is missing."""
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return type(_global_name(f"{module} {name}"), (_TrustedStandIn,), {})


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` reads: ``Unpickler``, ``load`` and a name."""

    UnpicklingError = pickle.UnpicklingError

    def __init__(self, unpickler: type[pickle.Unpickler]) -> None:
        self.__name__ = f"{__name__}.{unpickler.__name__}"
        self.Unpickler = unpickler

    def load(self, file: BinaryIO, **kwargs: Any) -> Any:
        """``pickle.load`` with this module's unpickler."""
        return self.Unpickler(file, **kwargs).load()


TRUSTED_PICKLE_MODULE = _PickleModule(TrustedUnpickler)


def to_plain(obj: Any) -> Any:
    """Replace restored foreign instances by plain dicts (items and attributes), through containers."""
    if isinstance(obj, collections.OrderedDict) and hasattr(obj, _FOREIGN):
        attrs = {k: v for k, v in vars(obj).items() if k != _FOREIGN}
        return {k: to_plain(v) for k, v in {**obj, **attrs}.items()}
    if isinstance(obj, _TrustedStandIn):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list, tuple)):
                obj[k] = to_plain(v)
        return obj
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(to_plain(v) for v in obj)
    return obj
