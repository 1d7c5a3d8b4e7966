"""Deprecated: the names that lived here moved (this module only forwards them).

* ``Encoder`` -> :mod:`vidsearch.models.base`
* ``load_encoder``, ``model_key``, ``list_models`` -> :mod:`vidsearch.models.registry`
  (or simply ``vidsearch.models``)
* ``resolve_device`` -> :mod:`vidsearch.models.precision`
* ``ViCLIPEncoder`` -> :mod:`vidsearch.models.viclip_encoder`
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = {
    "Encoder": "vidsearch.models.base",
    "load_encoder": "vidsearch.models.registry",
    "model_key": "vidsearch.models.registry",
    "list_models": "vidsearch.models.registry",
    "resolve_device": "vidsearch.models.precision",
    "ViCLIPEncoder": "vidsearch.models.viclip_encoder",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'vidsearch.models.encoder' has no attribute {name!r}")
    warnings.warn(f"vidsearch.models.encoder.{name} moved to {module}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)
