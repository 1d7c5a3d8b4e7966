"""The registry of encoders: model names -> the family that builds them.

``model`` names understood by :func:`model_key` and :func:`vidsearch.models.opener.open_encoder`:

* a registered preset: ``viclip-b16``, ``viclip-l14`` (weights: explicit path,
  ``VIDSEARCH_CHECKPOINT``, Hugging Face cache/hub);
* a registered prefix: ``openclip:<arch>``, any open_clip image-text architecture with a local
  checkpoint;
* a ViCLIP checkpoint path (``.pth``/``.pt``/``.bin``/``.safetensors``), its config from
  ``config=``, ``<stem>.json`` or ``config.json`` beside it.

A *family* is a module with ``load(name, checkpoint, config, device, precision) -> Encoder``,
``key(name, checkpoint, config) -> str`` and ``describe(name, checkpoint, config) -> EncoderInfo``
(what the loaded fp32 encoder would say of itself, without its weights); it is imported only when
one of its models is used, so ``list_models()`` and importing this module cost nothing (no torch).
The families, presets and prefixes are declared in :mod:`vidsearch.models.catalog`.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from typing import TYPE_CHECKING

from vidsearch.errors import ModelError
from vidsearch.models.catalog import FAMILIES, PATH_CLAIMS, PATH_FAMILY, PREFIXES, PRESETS, Family
from vidsearch.models.hub import CHECKPOINT_SUFFIXES, HF_SOURCES, resolve_checkpoint
from vidsearch.models.keymemo import recall_key
from vidsearch.precision import choose_precision, cuda_visible, space_key

if TYPE_CHECKING:
    from vidsearch.models.info import EncoderInfo

__all__ = [
    "Family",
    "register_family",
    "register_preset",
    "register_prefix",
    "register_path_claim",
    "list_models",
    "model_key",
    "describe_encoder",
    "route",
    "locate_weights",
    "precision_before_load",
]


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, str] = {}  # preset name -> family
_PREFIXES: dict[str, tuple[str, str]] = {}  # prefix -> (family, what follows it, for list_models)
# families that recognise their own checkpoint paths: (family, module, ``(path, config) -> bool``)
_PATH_CLAIMS: list[tuple[str, str, str]] = []


def register_family(family: Family) -> None:
    """Make a family of encoders known (its module is imported on first use)."""
    _FAMILIES[family.name] = family


def register_preset(name: str, family: str) -> None:
    """Register a named preset (e.g. ``viclip-b16``) built by ``family``."""
    if family not in _FAMILIES:
        raise ValueError(f"register family {family!r} before its presets")
    _PRESETS[name] = family


def register_prefix(prefix: str, family: str, placeholder: str) -> None:
    """Register ``<prefix><placeholder>`` names (e.g. ``openclip:<arch>``) built by ``family``."""
    if family not in _FAMILIES:
        raise ValueError(f"register family {family!r} before its prefixes")
    _PREFIXES[prefix] = (family, placeholder)


def register_path_claim(family: str, module: str, function: str) -> None:
    """Let ``family`` take checkpoint paths that ``module.function(path, config)`` recognises."""
    if family not in _FAMILIES:
        raise ValueError(f"register family {family!r} before its path claim")
    _PATH_CLAIMS.append((family, module, function))


def list_models() -> list[str]:
    """The model names accepted besides checkpoint paths: presets, then prefixes."""
    return sorted(_PRESETS) + [prefix + placeholder for prefix, (_, placeholder) in _PREFIXES.items()]


def _is_checkpoint_path(model: str) -> bool:

    return model.endswith(CHECKPOINT_SUFFIXES) or os.path.sep in model or os.path.isfile(model)


def route(model: str, config: str | os.PathLike[str] | None = None) -> tuple[Family, str]:
    """(family, the name that family gets) for a model name, or ModelError listing the choices."""
    for prefix, (family, _) in _PREFIXES.items():
        if model.startswith(prefix):
            return _FAMILIES[family], model[len(prefix) :]
    if model in _PRESETS:
        return _FAMILIES[_PRESETS[model]], model
    if _is_checkpoint_path(model):
        for family, module, function in _PATH_CLAIMS:
            if getattr(importlib.import_module(module), function)(model, config):
                return _FAMILIES[family], model
        return _FAMILIES[PATH_FAMILY], model
    raise ModelError(
        f"unknown model {model!r}; choose one of {', '.join(list_models())} or a checkpoint path "
        f"(.pth, .pt, .bin, .safetensors)"
    )


def locate_weights(model: str, checkpoint: str | os.PathLike[str] | None) -> None:
    """Find a published preset's weights before its family (torch) is imported: missing weights
    are a one-line error within seconds (the family resolves them again, from the same cache)."""

    if model in _PRESETS and model in HF_SOURCES:
        resolve_checkpoint(model, checkpoint)


def precision_before_load(precision: str, device: str = "auto") -> str:
    """What a ``--precision`` value resolves to for a model loaded on ``device``, before it loads.

    A CPU run resolves it without importing torch, so a precision that does not fit (fp16 on a
    CPU, bf16 on a CPU without native bf16) fails at once, before weights are looked up.

    Raises:
        ModelError: the precision does not fit the device (one line naming --precision).
    """

    if device == "cpu" or (device == "auto" and not cuda_visible()):
        return choose_precision(precision, "cpu")
    from vidsearch.models.precision import resolve_precision

    return resolve_precision(precision, device)


def model_key(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The ``key`` the opened fp32 encoder would give, without building the model or reading weights.

    Only the checkpoint's hash is needed (cached by path, size and mtime); a checkpoint path
    without a config JSON has its tensor shapes read (memory-mapped) to find its preset.

    Raises:
        ModelError: unknown name (lists the valid choices), or an unusable config.
        CheckpointError, WeightsNotFoundError: the weights cannot be found or read.
    """

    # a remembered key (its files unchanged) needs no torch and no weights look-up
    hit = recall_key(model, checkpoint, config)
    if hit is not None:
        return hit
    family, name = route(model, config)
    locate_weights(model, checkpoint)
    return family.function("key")(name, checkpoint, config)


def describe_encoder(
    model: str,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
) -> EncoderInfo:
    """What ``open_encoder(EncoderSpec(model, checkpoint, config, precision=precision))`` would give, unloaded.

    Args:
        precision: a resolved precision (``fp32``, ``int8``, ``bf16``, ``fp16``; see
            :func:`precision_before_load`): it sets the key's suffix and the spec's precision.

    Raises:
        ModelError, CheckpointError, WeightsNotFoundError: as :func:`model_key`.
    """

    family, name = route(model, config)
    locate_weights(model, checkpoint)
    info = family.function("describe")(name, checkpoint, config)
    return dataclasses.replace(info, key=space_key(info.key, precision), spec={**info.spec, "precision": precision})


# ------------------------------------------------------------------------------ registered models

for _family in FAMILIES:
    register_family(_family)
for _preset in PRESETS.values():
    register_preset(_preset.name, _preset.family)
for _prefix, (_family_name, _placeholder) in PREFIXES.items():
    register_prefix(_prefix, _family_name, _placeholder)
for _claim in PATH_CLAIMS:
    register_path_claim(*_claim)
