"""Encoder precision: the choices, the ``auto`` policy, and the embedding-space key suffix.

A library never mixes precisions in one embedding space: vectors from an int8 or bf16 encoder
are close to the fp32 ones (cosine >= 0.999, tested) but not equal, so the precision is part of
the space key. fp32 keeps the plain key (``viclip-b16@0123456789ab``) so libraries indexed
before precisions existed stay valid; any other precision appends ``+<precision>``.

Policy for ``auto`` (measured, see README "Precision and fast text queries"):

* CUDA: bf16 where the GPU supports it, else fp16;
* CPU: fp32. bf16 autocast runs ~5x *slower* than fp32 on CPUs without native bf16; with it
  (AVX512-BF16/AMX) it is opt-in, like int8: ``auto`` must give the same space on every CPU, or
  one library indexed from two machines would split into two spaces.

This module is torch-free (the ONNX query path needs the key rules without torch): callers pass
the facts (device type, capabilities) in, and :func:`cpu_has_native_bf16` reads the CPU flags
from ``/proc/cpuinfo`` or torch when loaded. Its torch side, the device and autocast policy, is
:mod:`vidsearch.models.precision` (:func:`~vidsearch.models.precision.resolve_precision` feeds
this module a device's facts).
"""

from __future__ import annotations

import functools
import logging
import platform
import sys
from pathlib import Path

from vidsearch.errors import ModelError
from vidsearch.settings import settings

__all__ = [
    "cuda_visible",
    "PRECISIONS",
    "CHOICES",
    "choose_precision",
    "check_precision",
    "key_suffix",
    "space_key",
    "split_key",
    "cpu_flags",
    "cpu_has_native_bf16",
    "int8_needs_reduce_range",
]

LOG = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "bf16", "fp16")
CHOICES = ("auto",) + PRECISIONS
_SEP = "+"
# Native bf16 dot products on x86 (AVX512-BF16, AMX); ARM's bf16 extension.
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`CHOICES`, else a one-line error listing them."""
    if precision not in CHOICES:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(CHOICES)}")
    return precision


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags (``/proc/cpuinfo``: x86 ``flags``, ARM ``Features``; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16/AMX on x86, BF16 on ARM)."""
    torch = sys.modules.get("torch")  # only ask torch when it is loaded anyway
    if torch is not None:
        try:
            if torch.backends.cpu.get_cpu_capability() == "AVX512_BF16" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return True
        except (AttributeError, RuntimeError):
            pass
    return any(f in cpu_flags() for f in _BF16_FLAGS)


def int8_needs_reduce_range() -> bool:
    """Whether int8 weights must keep to 7 bits on this CPU: an x86 CPU without VNNI.

    There ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, which adds
    pairs of products into int16 and saturates: cosines to fp32 fell to 0.98-0.99 on an AVX2-only
    CPU. 7-bit weights cannot saturate; VNNI (AVX512-VNNI, AVX-VNNI) adds into int32 and needs
    no such care. ONNX Runtime's ``reduce_range`` is the documented remedy.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    return not ({"avx512_vnni", "avx_vnni"} & cpu_flags())


def choose_precision(precision: str, device_type: str, cuda_bf16: bool = False) -> str:
    """Resolve ``auto`` (or check an explicit choice) for a device.

    Args:
        precision: ``auto``, ``fp32``, ``int8``, ``bf16`` or ``fp16``.
        device_type: ``cpu`` or ``cuda``.
        cuda_bf16: whether the CUDA device supports bf16 (``torch.cuda.is_bf16_supported()``).

    Raises:
        ModelError: an unknown precision, int8 on CUDA, fp16 on CPU, or bf16 on a CPU without
            native bf16 (where it is about 5x slower than fp32).
    """
    check_precision(precision)
    if device_type == "cuda":
        if precision == "auto":
            return "bf16" if cuda_bf16 else "fp16"
        if precision == "int8":
            raise ModelError("int8 is the CPU path", argument="precision", hint="on a GPU use bf16, fp16 or fp32")
        if precision == "bf16" and not cuda_bf16:
            raise ModelError(
                "bf16 is not available: this GPU has no bf16",
                argument="precision",
                hint="use fp16 or fp32",
                remedy="use_choices",
                choices=("fp16", "fp32"),
            )
        return precision
    if precision == "auto":
        return "fp32"
    if precision == "fp16":
        raise ModelError("fp16 needs a GPU", argument="precision", hint="on a CPU use fp32, int8 or bf16")
    if precision == "bf16" and not cpu_has_native_bf16():
        raise ModelError(
            "bf16 would be slow: this CPU has no native bf16 (it would run ~5x slower than fp32)",
            argument="precision",
            hint="use fp32 or int8",
            remedy="use_choices",
            choices=("fp32", "int8"),
        )
    return precision


def key_suffix(precision: str) -> str:
    """What a precision appends to an embedding space key: ``""`` for fp32, else ``+<precision>``."""
    if precision not in PRECISIONS:
        raise ModelError(f"a space key needs a resolved precision ({', '.join(PRECISIONS)}), got {precision!r}")
    return "" if precision == "fp32" else _SEP + precision


def space_key(encoder_key: str, precision: str) -> str:
    """The embedding space key of an encoder key (``name@hash``) at a resolved precision."""
    return encoder_key + key_suffix(precision)


def split_key(key: str) -> tuple[str, str]:
    """``(encoder key, precision)`` of a space key; a key without a suffix is fp32."""
    base, sep, tail = key.rpartition(_SEP)
    if sep and tail in PRECISIONS and "@" in base:
        return base, tail
    return key, "fp32"


def cuda_visible() -> bool:
    """Whether a CUDA device is visible, told without importing torch."""
    # `auto` means CUDA when there is one; without importing torch, a visible NVIDIA device is
    # the tell. A GPU host answers queries with the PyTorch tower on the GPU, as before.
    if settings().cuda_hidden:
        return False
    return Path("/dev/nvidia0").exists()
