"""Devices and mixed precision: the one place the policy is written.

``auto`` picks CUDA when available, else CPU. On CUDA, models run under bf16 autocast where the
GPU supports bf16, else fp16 (training then needs a gradient scaler: fp16 gradients underflow);
on the CPU they run in fp32, since CPU autocast is slower than fp32 for these models.

An encoder may also be asked for an explicit precision (``--precision``): the choices, what
``auto`` resolves to and the space-key suffix are the torch-free :mod:`vidsearch.precision`
(the ONNX query path needs them without torch); :func:`resolve_precision` feeds it this device's
facts and :func:`autocast_for` is the autocast of a resolved precision.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from vidsearch.errors import ModelError
from vidsearch.precision import choose_precision

__all__ = ["resolve_device", "autocast_dtype", "autocast", "training_precision", "resolve_precision", "autocast_for"]

_PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The device a ``--device`` value names (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Raises:
        ModelError: an unknown device, or CUDA asked for where there is none.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(
            f"device {device!r} requested but CUDA is not available",
            argument="device",
            hint="use the CPU",
            remedy="use_choices",
            choices=("cpu",),
        )
    return dev


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on a CUDA device that supports it, else fp16 on CUDA; None (fp32) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of :func:`autocast_dtype` (a no-op context on CPU or when not ``enabled``).

    The returned object can be entered again and again (one per step of a loop).
    """
    return _autocast_of(device, autocast_dtype(device) if enabled else None)


def _autocast_of(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` to ``dtype`` on ``device``; a no-op context for ``None`` (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def training_precision(
    device: torch.device, enabled: bool = True, precision: str = "auto"
) -> tuple[contextlib.AbstractContextManager[Any], Any]:
    """``(autocast context, gradient scaler or None)`` for a training loop on ``device``.

    ``precision`` ``auto`` is mixed precision on CUDA (bf16, or fp16 without it) when ``enabled``
    and fp32 on a CPU; ``fp32``, ``bf16`` or ``fp16`` ask for one (checked against the device as
    for encoding). fp16 autocast needs a ``torch.amp.GradScaler`` (small gradients underflow in
    fp16); bf16 and fp32 need none.

    Raises:
        ModelError: int8 (an inference precision), or one the device lacks.
    """
    if precision == "int8":
        raise ModelError(
            "int8 is for encoding, not training",
            argument="precision",
            hint="train at fp32 (or bf16/fp16 on a GPU), then index at int8",
            remedy="int8_training",
        )
    if precision == "auto":
        dtype = autocast_dtype(device) if enabled else None
    else:
        dtype = _PRECISION_DTYPES.get(resolve_precision(precision, device))
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None
    return _autocast_of(device, dtype), scaler


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """What ``precision`` (``auto``, ``fp32``, ``int8``, ``bf16``, ``fp16``) resolves to on ``device``.

    Raises:
        ModelError: an unknown device or precision, or one that does not fit the device
            (see :func:`vidsearch.precision.choose_precision`).
    """
    dev = resolve_device(device)
    return choose_precision(precision, dev.type, dev.type == "cuda" and torch.cuda.is_bf16_supported())


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a resolved precision on ``device`` (a no-op context for fp32 and int8)."""
    return _autocast_of(device, _PRECISION_DTYPES.get(precision))
