"""Encoders behind one small interface, opened one way: ``open_encoder(EncoderSpec(...))``.

Modules: ``spec`` (torch-free: :class:`EncoderSpec` and the :class:`TextEncoder` /
:class:`VideoEncoder` protocols), ``opener`` (:func:`open_encoder`, which picks the backend),
``catalog`` (every family and preset, declared once), ``base`` (the PyTorch :class:`Encoder`
base), ``registry`` (names -> families: ``list_models``, ``model_key``, ``describe_encoder``), ``info``
(:class:`EncoderInfo`: an encoder described without its weights), one file per encoder (``viclip_encoder`` over
the ``viclip`` network port, ``openclip``), ``precision`` (devices and the autocast policy),
``weights`` (finding and loading checkpoints), ``preprocess`` and ``tokenizer``.

Everything here is imported lazily (module ``__getattr__``) so that ``import vidsearch.models``
stays cheap: building an encoder pulls in torch, and ``openclip:`` models pull in open_clip,
timm and torchvision, which the CLI must not pay for at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "tokenize",
    "open_encoder",
    "EncoderSpec",
    "TextEncoder",
    "VideoEncoder",
    "VideoTextEncoder",
    "model_key",
    "describe_encoder",
    "list_models",
    "resolve_device",
    "Encoder",
    "EncoderInfo",
    "ViCLIP",
    "ViCLIPConfig",
]

_EXPORTS = {
    "tokenize": "vidsearch.models.tokenizer",
    "open_encoder": "vidsearch.models.opener",
    "EncoderSpec": "vidsearch.models.spec",
    "TextEncoder": "vidsearch.models.spec",
    "VideoEncoder": "vidsearch.models.spec",
    "VideoTextEncoder": "vidsearch.models.spec",
    "model_key": "vidsearch.models.registry",
    "describe_encoder": "vidsearch.models.registry",
    "list_models": "vidsearch.models.registry",
    "resolve_device": "vidsearch.models.precision",
    "Encoder": "vidsearch.models.base",
    "EncoderInfo": "vidsearch.models.info",
    "ViCLIP": "vidsearch.models.viclip",
    "ViCLIPConfig": "vidsearch.models.viclip",
}

if TYPE_CHECKING:
    from vidsearch.models.base import Encoder
    from vidsearch.models.info import EncoderInfo
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.precision import resolve_device
    from vidsearch.models.registry import describe_encoder, list_models, model_key
    from vidsearch.models.spec import EncoderSpec, TextEncoder, VideoEncoder, VideoTextEncoder
    from vidsearch.models.tokenizer import tokenize
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vidsearch.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
