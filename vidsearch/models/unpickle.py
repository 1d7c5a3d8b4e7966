"""A restricted unpickler for ``torch.save`` checkpoints that carry more than tensors.

Training checkpoints (InternVideo's ``{"model", "optimizer", "scheduler", "scaler", "config",
...}``) pickle their config as an instance of a class of the training code, e.g.
``utils.easydict.EasyDict``. ``torch.load(weights_only=True)`` refuses such a file, and a full
unpickle needs that code importable (``No module named 'utils'``) and would run whatever the
pickle asks for. This unpickler, handed to ``torch.load`` as its ``pickle_module``:

* never imports a module and never calls a callable outside :data:`ALLOWED` (tensor and
  storage rebuilding, ``OrderedDict``, ``set``, ``torch.Size``, ... : what ``torch.save`` of
  tensors, state dicts and optimizer state writes);
* turns every other global into an inert stand-in class. Instantiating a stand-in the way
  pickle restores plain objects (``NEWOBJ``, ``copyreg._reconstructor``, then ``BUILD``)
  yields a plain dict of its items and attributes, so a foreign config becomes a dict;
* refuses, with :class:`RefusedGlobal`, a pickle that *calls* a stand-in (``REDUCE``), which
  is how a malicious pickle runs ``os.system`` and the like: nothing is run.

Storages are resolved by torch itself (``persistent_load``), so ``mmap=True`` works as with
torch's own loaders and tensors that are dropped later (optimizer state) are never read.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any, BinaryIO

import torch

__all__ = ["RefusedGlobal", "PICKLE_MODULE", "TRUSTED_PICKLE_MODULE", "ALLOWED", "to_plain"]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks to call something that is not on the allow-list."""

    def __init__(self, name: str, action: str = "calls") -> None:
        super().__init__(f"the pickle {action} {name}, which is not a tensor or a plain container")
        self.name = name


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for ``bytes`` (latin-1 text only)."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise RefusedGlobal(f"_codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def _torch_allowed() -> dict[str, Any]:
    from torch import _utils

    names = {
        "torch._utils._rebuild_tensor_v2": _utils._rebuild_tensor_v2,
        "torch._utils._rebuild_tensor": _utils._rebuild_tensor,
        "torch._utils._rebuild_parameter": _utils._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _utils._rebuild_parameter_with_state,
        "torch.serialization._get_layout": torch.serialization._get_layout,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.Tensor": torch.Tensor,
        "torch._tensor._rebuild_from_type_v2": torch._tensor._rebuild_from_type_v2,
    }
    # dtypes (torch.float16, ...) are pickled by name: values, never called with user data.
    names.update({f"torch.{n}": v for n, v in vars(torch).items() if isinstance(v, torch.dtype)})
    return names


# Everything the unpickler may hand to REDUCE/NEWOBJ; ``module.name`` as written in the pickle.
ALLOWED: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.complex": complex,
    "builtins.slice": slice,
    "builtins.bytearray": bytearray,
    "_codecs.encode": _codecs_encode,
    **_torch_allowed(),
}
# Protocol-2 pickles use Python 2 module names.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _StandInMeta(type):
    """Metaclass of stand-ins: calling one (pickle's REDUCE) is refused, nothing runs."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedGlobal(cls.__qualname__)


class StandIn(dict, metaclass=_StandInMeta):
    """An instance of a class the checkpoint names but vidsearch does not import.

    Created by ``NEWOBJ`` (which calls ``__new__``, not the class); ``SETITEMS`` fill it like
    a dict and ``BUILD`` merges the object's attributes into it.
    """

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            for part in state:
                self.__setstate__(part)
        elif isinstance(state, dict):
            self.update(state)
        elif state is not None:
            self["__state__"] = state


def _stand_in(qualname: str) -> type:
    return _StandInMeta(qualname, (StandIn,), {"__qualname__": qualname})


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 objects) for stand-ins only."""
    if isinstance(cls, _StandInMeta):
        obj = dict.__new__(cls)
        if state is not None:
            obj.__setstate__(state)
        return obj
    raise RefusedGlobal(f"copyreg._reconstructor({getattr(cls, '__qualname__', cls)!r})")


class Unpickler(pickle._Unpickler):  # the Python implementation: its opcodes can be overridden
    """An unpickler that resolves globals only through :data:`ALLOWED` or stand-ins.

    ``BUILD`` (set an object's state) is admitted only on what pickle builds that way in a
    checkpoint: stand-ins, ``OrderedDict`` state dicts (their ``_metadata``) and tensors, so a
    pickle cannot rewrite attributes of the allowed functions and classes themselves.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def load_build(self) -> None:
        """``BUILD``, refused on anything but stand-ins, ``OrderedDict`` and tensors."""
        target = self.stack[-2]
        if not isinstance(target, (StandIn, collections.OrderedDict, torch.Tensor)):
            raise RefusedGlobal(getattr(target, "__qualname__", type(target).__qualname__), "sets the state of")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        qualname = f"{module}.{name}"
        if qualname in ALLOWED:
            return ALLOWED[qualname]
        if qualname == "copyreg._reconstructor":
            return _reconstructor
        if qualname in ("builtins.object", "builtins.dict"):  # _reconstructor's base argument
            return dict
        return _stand_in(qualname)


class TrustedUnpickler(pickle.Unpickler):
    """Full unpickling (imports and calls anything), with stand-ins for classes that are gone.

    Only for files the user said they trust (``VIDSEARCH_TRUST_CHECKPOINT=1``): a config class
    of training code that is not installed (``utils.easydict``) still becomes a dict.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return _stand_in(f"{_PY2_MODULES.get(module, module)}.{name}")


class _PickleModule:
    """What ``torch.load(pickle_module=...)`` reads: ``Unpickler``, ``load`` and a name."""

    UnpicklingError = pickle.UnpicklingError

    def __init__(self, unpickler: type[pickle.Unpickler]) -> None:
        self.__name__ = f"{__name__}.{unpickler.__name__}"
        self.Unpickler = unpickler

    def load(self, file: BinaryIO, **kwargs: Any) -> Any:
        """``pickle.load`` with this module's unpickler."""
        return self.Unpickler(file, **kwargs).load()

    def loads(self, data: bytes, **kwargs: Any) -> Any:
        """``pickle.loads`` with this module's unpickler."""
        return self.load(io.BytesIO(data), **kwargs)


PICKLE_MODULE = _PickleModule(Unpickler)
TRUSTED_PICKLE_MODULE = _PickleModule(TrustedUnpickler)


def to_plain(obj: Any) -> Any:
    """Replace stand-in instances by plain dicts, through dicts, lists and tuples."""
    if isinstance(obj, StandIn):
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
