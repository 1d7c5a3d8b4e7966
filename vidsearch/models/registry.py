"""The registry of encoders: model names -> the family that builds them.

``model`` names understood by :func:`load_encoder` / :func:`model_key`:

* a registered preset: ``viclip-b16``, ``viclip-l14`` (weights: explicit path,
  ``VIDSEARCH_CHECKPOINT``, Hugging Face cache/hub);
* a registered prefix: ``openclip:<arch>``, any open_clip image-text architecture with a local
  checkpoint;
* a ViCLIP checkpoint path (``.pth``/``.pt``/``.bin``/``.safetensors``), its config from
  ``config=``, ``<stem>.json`` or ``config.json`` beside it.

A *family* is a module with ``load(name, checkpoint, config, device) -> Encoder``,
``key(name, checkpoint, config) -> str`` and ``describe(name, checkpoint, config) -> EncoderInfo``
(what the loaded fp32 encoder would say of itself, without its weights); it is imported only when one of its models is used, so
``list_models()`` and importing this module cost nothing (no torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vidsearch.errors import ModelError
from vidsearch.models.hub import CHECKPOINT_SUFFIXES, HF_SOURCES, resolve_checkpoint
from vidsearch.models.keymemo import recall_key
from vidsearch.precision import choose_precision, cuda_visible, space_key

if TYPE_CHECKING:
    import torch

    from vidsearch.models.base import Encoder
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
    "load_encoder",
    "precision_before_load",
]


@dataclass(frozen=True)
class Family:
    """How the encoders of one kind are built.

    Attributes:
        name: the family's name (``viclip``, ``openclip``).
        module: the module holding the two functions.
        load: name of ``(name, checkpoint, config, device) -> Encoder`` in ``module``.
        key: name of ``(name, checkpoint, config) -> str`` in ``module`` (no model built).
        describe: name of ``(name, checkpoint, config) -> EncoderInfo`` in ``module`` (no model built).
    """

    name: str
    module: str
    load: str
    key: str
    describe: str

    def function(self, attr: str) -> Any:
        """The family's ``load``, ``key`` or ``describe`` function (imports its module)."""
        return getattr(importlib.import_module(self.module), getattr(self, attr))


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, str] = {}  # preset name -> family
_PREFIXES: dict[str, tuple[str, str]] = {}  # prefix -> (family, what follows it, for list_models)
_PATH_FAMILY = "viclip"  # a checkpoint path is a ViCLIP checkpoint unless another family claims it
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
    """The names ``load_encoder`` accepts besides checkpoint paths: presets, then prefixes."""
    return sorted(_PRESETS) + [prefix + placeholder for prefix, (_, placeholder) in _PREFIXES.items()]


def _is_checkpoint_path(model: str) -> bool:

    return model.endswith(CHECKPOINT_SUFFIXES) or os.path.sep in model or os.path.isfile(model)


def _route(model: str, config: str | os.PathLike[str] | None = None) -> tuple[Family, str]:
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
        return _FAMILIES[_PATH_FAMILY], model
    raise ModelError(
        f"unknown model {model!r}; choose one of {', '.join(list_models())} or a checkpoint path "
        f"(.pth, .pt, .bin, .safetensors)"
    )


def _locate_weights(model: str, checkpoint: str | os.PathLike[str] | None) -> None:
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
    """The ``key`` :func:`load_encoder` would give, without building the model or reading weights.

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
    family, name = _route(model, config)
    _locate_weights(model, checkpoint)
    return family.function("key")(name, checkpoint, config)


def describe_encoder(
    model: str,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
) -> EncoderInfo:
    """What ``load_encoder_at(model, checkpoint, config, precision=precision)`` would give, unloaded.

    Args:
        precision: a resolved precision (``fp32``, ``int8``, ``bf16``, ``fp16``; see
            :func:`precision_before_load`): it sets the key's suffix and the spec's precision.

    Raises:
        ModelError, CheckpointError, WeightsNotFoundError: as :func:`model_key`.
    """

    family, name = _route(model, config)
    _locate_weights(model, checkpoint)
    info = family.function("describe")(name, checkpoint, config)
    return dataclasses.replace(info, key=space_key(info.key, precision), spec={**info.spec, "precision": precision})


def load_encoder(
    model: str,
    checkpoint: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
) -> Encoder:
    """Build a ready encoder (eval mode, on ``device``) from a model name or checkpoint path.

    ``encode_video``/``encode_text`` return L2-normalized float32 **numpy** arrays ``[B, D]``.

    Args:
        model: ``viclip-b16``, ``viclip-l14``, ``openclip:<arch>``, or a checkpoint path.
        checkpoint: weights file (else ``VIDSEARCH_CHECKPOINT``, else the Hugging Face cache/hub).
        config: a ViCLIPConfig JSON (or an open_clip model config JSON for ``openclip:``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.

    Raises:
        ModelError: unknown name or unusable config (lists the valid choices), unknown device.
        CheckpointError: unreadable checkpoint or one that does not fit.
        WeightsNotFoundError: no weights locally and none downloadable.
    """
    family, name = _route(model, config)
    _locate_weights(model, checkpoint)
    from vidsearch.models.precision import resolve_device

    return family.function("load")(name, checkpoint, config, resolve_device(device))


# ------------------------------------------------------------------------------ registered models

register_family(
    Family(
        "viclip", "vidsearch.models.viclip_encoder", load="load_viclip", key="viclip_key", describe="describe_viclip"
    )
)
register_family(
    Family(
        "openclip", "vidsearch.models.openclip", load="load_openclip", key="openclip_key", describe="describe_openclip"
    )
)
# The architectures of these presets are vidsearch.models.viclip.PRESETS (a test keeps the two equal).
register_preset("viclip-b16", "viclip")
register_preset("viclip-l14", "viclip")
register_prefix("openclip:", "openclip", "<arch>")
register_family(
    Family(
        "internvideo2",
        "vidsearch.models.internvideo2_encoder",
        load="load_internvideo2",
        key="internvideo2_key",
        describe="describe_internvideo2",
    )
)
register_preset("internvideo2-1b", "internvideo2")
register_path_claim("internvideo2", "vidsearch.models.internvideo2_claim", "claims_checkpoint")
