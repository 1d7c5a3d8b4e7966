"""Checkpoint files: read them into a flat ``{name: tensor}`` dict, read shapes, save, hash.

Layouts read:

* a flat ``.safetensors`` (the ``OpenGVLab/ViCLIP-*-hf`` repositories);
* ``torch.save`` files (``.pth``/``.pt``/``.bin``): a flat state dict, the official
  ``{"model": state_dict}``, or a full training checkpoint (``model`` or ``module`` plus
  optimizer/scheduler/scaler state and a pickled config object of the training code), in the
  zip format or the legacy one (``_use_new_zipfile_serialization=False``).

``torch.save`` files go through :mod:`vidsearch.models.unpickle` (torch's weights-only loader,
foreign classes as inert dicts; nothing from the file is run) and are memory-mapped where the
format allows, so the optimizer state of a training checkpoint is never read from disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vidsearch.errors import CheckpointError
from vidsearch.fileio import why_not_a_file
from vidsearch.models.hub import CHECKPOINT_SUFFIXES  # re-exported: torch-free
from vidsearch.models.keymemo import cache_dir  # re-exported: torch-free, shared with the key memo
from vidsearch.models.unpickle import TRUSTED_PICKLE_MODULE, RefusedGlobal, load_weights_only, to_plain
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.settings import TRUST_ENV, settings

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "TRUST_ENV",
    "error_line",
    "read_state_dict",
    "read_shapes",
    "save_checkpoint",
    "cache_dir",
    "checkpoint_hash",
]

LOG = logging.getLogger(__name__)

# Entries of a training checkpoint that hold the model's weights, in the order tried
# (InternVideo saves "model"; its DeepSpeed runs save "module").
_WRAPPERS = ("model", "module", "state_dict", "model_state")
_HASH_CACHE_FILE = "checkpoint_hashes.json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def error_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, without terminal colour codes."""
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _trust_pickles() -> bool:
    return settings().trust_checkpoint


def _load(path: Path, mmap: bool, trusted: bool) -> Any:
    if trusted:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=TRUSTED_PICKLE_MODULE, mmap=mmap)
    return load_weights_only(path, mmap=mmap)


def _torch_load(path: Path, mmap: bool) -> Any:
    """``torch.load``, weights only unless the user trusts the file; legacy-format files without mmap."""
    trusted = _trust_pickles()
    if trusted:
        LOG.warning("loading %s with full unpickling because %s=1", path, TRUST_ENV)
    try:
        return _load(path, mmap, trusted)
    except RuntimeError as exc:
        if mmap and "mmap can only be used" in str(exc):
            # A legacy (pre-zip) torch.save file cannot be mapped: read it whole.
            LOG.debug("%s is in the legacy torch.save format; reading it without mmap", path)
            return _load(path, False, trusted)
        raise


def read_state_dict(path: str | os.PathLike[str], mmap: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict (keys not yet normalized).

    Args:
        path: a ``.pth``/``.pt``/``.bin`` (``torch.save``) or ``.safetensors`` file.
        mmap: map a zip-format ``torch.save`` file instead of reading it (tensors are read
            when used; entries that are dropped, such as optimizer state, never are).

    Raises:
        CheckpointError: unreadable file, a pickle that calls something other than tensor
            and container constructors, or no state dict inside.
    """
    path = Path(path)
    why = why_not_a_file(path)
    if why:
        raise CheckpointError(f"checkpoint {path} {why}; pass the path of a downloaded checkpoint")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read safetensors checkpoint {path}: {error_line(exc)}; re-download it"
            ) from None
    try:
        obj = _torch_load(path, mmap)
    except RefusedGlobal as exc:
        raise CheckpointError(
            f"refusing to load checkpoint {path}: {exc}; vidsearch runs no code from checkpoint files "
            f"(re-save its state dict with torch.save or as .safetensors, or if you trust the file "
            f"set {TRUST_ENV}=1)"
        ) from None
    except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, EOFError)
        raise CheckpointError(
            f"cannot read checkpoint {path} ({error_line(exc)}); if the file is a truncated download fetch it again"
        ) from None
    return _unwrap(to_plain(obj), path)


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside the usual training-checkpoint wrappers."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_state_dict(obj):
            for wrapper in _WRAPPERS:
                if isinstance(obj.get(wrapper), Mapping):
                    skipped = sorted(k for k in obj if k != wrapper)
                    if skipped:
                        LOG.info("%s: using its %r entry; not reading %s", path, wrapper, ", ".join(map(str, skipped)))
                    obj = obj[wrapper]
                    break
            else:
                break
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise CheckpointError(
            f"checkpoint {path} holds no state dict (expected tensors, or a dict with a 'model' or "
            f"'module' entry); save it with vidsearch.models.weights.save_checkpoint"
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _is_state_dict(obj: Mapping[str, Any]) -> bool:
    return bool(obj) and sum(isinstance(v, torch.Tensor) for v in obj.values()) >= max(1, len(obj) // 2)


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file (8-byte little-endian length, then JSON)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ValueError("file shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > min(path.stat().st_size - 8, 100 << 20):
                raise ValueError(f"header length {n} does not fit the file")
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read safetensors checkpoint {path}: {error_line(exc)}; re-download it") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"cannot read safetensors checkpoint {path}: its header is not a JSON object")
    return header


def read_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, without reading the weights.

    A ``.safetensors`` has only its JSON header read; a ``torch.save`` file is memory-mapped
    (legacy-format files, which cannot be, are read whole).
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        header = _safetensors_header(path)
        return {
            k: tuple(int(d) for d in v["shape"])
            for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "shape" in v
        }
    return {k: tuple(v.shape) for k, v in read_state_dict(path, mmap=True).items()}


def save_checkpoint(model: ViCLIP, path: str | os.PathLike[str], config: ViCLIPConfig | None = None) -> Path:
    """Write ``model``'s weights and its config JSON, atomically.

    ``.safetensors`` gets a flat state dict; any other suffix gets the official
    ``{"model": state_dict}`` ``torch.save`` layout. ``<stem>.json`` (the
    :class:`ViCLIPConfig`) is written beside it so ``open_encoder(EncoderSpec(path))`` finds it.

    Returns:
        The checkpoint path.
    """
    path = Path(path)
    config = config or model.config
    if path.suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"checkpoint name {path} must end with one of {', '.join(CHECKPOINT_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Own every tensor (no views shared between keys) so both formats can serialize it.
    sd = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(tmp), metadata={"format": "pt", "config": json.dumps(config.to_dict())})
    else:
        torch.save({"model": sd}, tmp)
    os.replace(tmp, path)
    config.to_json(path.with_suffix(".json"))
    LOG.info("saved checkpoint %s", path)
    return path


# --------------------------------------------------------------------------- hashing


def _read_hash_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def checkpoint_hash(path: str | os.PathLike[str]) -> str:
    """Full sha256 hex digest of a file, cached by (absolute path, size, mtime_ns).

    Hashing a 1.5 GB checkpoint takes seconds, so the digest is kept in a small JSON file
    under :func:`cache_dir`, rewritten atomically. A cache that cannot be written is ignored.
    """
    path = Path(path).resolve()
    st = path.stat()
    cache_file = cache_dir() / _HASH_CACHE_FILE
    entries = _read_hash_cache(cache_file)
    hit = entries.get(str(path))
    if isinstance(hit, dict) and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
        return str(hit["sha256"])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        entries = _read_hash_cache(cache_file)  # re-read: another process may have added entries
        entries[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=_HASH_CACHE_FILE, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entries, fh, indent=1, sort_keys=True)
        os.replace(tmp, cache_file)
    except OSError as exc:
        LOG.warning("cannot write the checkpoint hash cache %s: %s", cache_file, exc)
    return sha
