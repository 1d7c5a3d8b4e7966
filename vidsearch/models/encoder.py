"""The encoder interface, the ViCLIP encoder, and the registry that builds encoders by name.

``model`` names understood by :func:`load_encoder` / :func:`model_key`:

* a preset: ``viclip-b16``, ``viclip-l14`` (weights: explicit path, ``VIDSEARCH_CHECKPOINT``,
  Hugging Face cache/hub);
* ``openclip:<arch>``: any open_clip image-text architecture with a local checkpoint;
* a ViCLIP checkpoint path (``.pth``/``.pt``/``.bin``/``.safetensors``), its config from
  ``config=``, ``<stem>.json`` or ``config.json`` beside it.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import ModelError
from vidsearch.models.preprocess import normalize_frames, resize_clips

__all__ = ["Encoder", "ViCLIPEncoder", "list_models", "model_key", "load_encoder", "resolve_device"]

LOG = logging.getLogger(__name__)

OPENCLIP_PREFIX = "openclip:"
TEXT_CHUNK = 64  # captions per text-tower call inside encode_text (sorted by length)


class Encoder(abc.ABC):
    """A video/text encoder into one L2-normalized embedding space.

    Attributes:
        key: stable name of the embedding space, ``<name>@<12 hex of the checkpoint sha256>``.
        num_frames: frames per clip the model was trained with.
        resolution: square frame side the model takes.
        embed_dim: embedding size ``D``.
        device: where the model runs.
        model: the underlying ``nn.Module`` (for fine-tuning).
        spec: JSON-serializable kwargs: ``load_encoder(**spec)`` rebuilds this encoder.
        checkpoint_hash: full sha256 of the checkpoint file.
    """

    key: str
    num_frames: int
    resolution: int
    embed_dim: int
    device: torch.device
    model: torch.nn.Module
    spec: dict[str, Any]
    checkpoint_hash: str

    @abc.abstractmethod
    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` into float32 numpy ``[B, D]``, L2-normalized."""

    @abc.abstractmethod
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into float32 numpy ``[B, D]``, L2-normalized."""

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 (or fp16 where bf16 is unsupported) autocast on CUDA; nothing on CPU."""
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    @staticmethod
    def check_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """``frames`` as a uint8 numpy array ``[B, T, H, W, 3]``, or a ValueError naming the shape."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"encode_video expects uint8 frames [B, T, H, W, 3], got {frames.dtype} {frames.shape}")
        return frames

    def _frames_tensor(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, H, W, C]`` at any size -> uint8 ``[B, T, res, res, C]`` on the device."""
        frames = resize_clips(self.check_frames(frames), self.resolution)
        return torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, device={self.device})"


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    """L2-normalize in fp32 and return a float32 numpy array."""
    return F.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)


class ViCLIPEncoder(Encoder):
    """A :class:`~vidsearch.models.viclip.ViCLIP` with the official preprocessing around it."""

    def __init__(self, model: Any, *, name: str, checkpoint: Path, sha256: str, spec: dict[str, Any], device: torch.device) -> None:
        from vidsearch.models.tokenizer import tokenize

        self._tokenize = tokenize
        self.model = model.eval().to(device)
        cfg = model.config
        self.config = cfg
        self.num_frames, self.resolution, self.embed_dim = cfg.num_frames, cfg.input_resolution, cfg.embed_dim
        self.context_length = cfg.context_length
        self.device = device
        self.checkpoint = checkpoint
        self.checkpoint_hash = sha256
        self.key = f"{name}@{sha256[:12]}"
        self.spec = spec

    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` (any ``H, W, T``) into float32 ``[B, D]``.

        Frames not at ``resolution`` are resized with the official transform; ``T`` other than
        ``num_frames`` uses the temporal embedding a ``T``-frame model would get from the
        official loader (``T = 1`` is the image path).
        """
        x = self._frames_tensor(frames)
        with torch.inference_mode(), self.autocast():
            video = normalize_frames(x)  # [B, T, C, H, W] float32
            return _to_numpy(self.model.encode_video(video))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions (tokenized to ``context_length`` tokens) into float32 ``[B, D]``."""
        if isinstance(texts, str):
            raise ValueError("encode_text expects a sequence of strings, not one string; wrap it in a list")
        tokens = self._tokenize(list(texts), context_length=self.context_length)
        # The text tower cuts each batch after its longest caption, so captions of similar
        # length are encoded together (same results, less padding in mixed batches).
        order = torch.argsort(tokens.argmax(dim=-1), stable=True)
        out = torch.empty(len(tokens), self.embed_dim)
        with torch.inference_mode(), self.autocast():
            for idx in order.split(TEXT_CHUNK):
                out[idx] = self.model.encode_text(tokens[idx].to(self.device)).float().cpu()
        return _to_numpy(out)


# --------------------------------------------------------------------------- registry


def list_models() -> list[str]:
    """The names ``load_encoder`` accepts besides checkpoint paths."""
    from vidsearch.models.viclip import PRESETS

    return sorted(PRESETS) + [f"{OPENCLIP_PREFIX}<arch>"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    return dev


def _is_checkpoint_path(model: str) -> bool:
    from vidsearch.models.weights import CHECKPOINT_SUFFIXES

    return model.endswith(CHECKPOINT_SUFFIXES) or os.path.sep in model or os.path.isfile(model)


def _unknown(model: str) -> ModelError:
    return ModelError(
        f"unknown model {model!r}; choose one of {', '.join(list_models())} or a checkpoint path "
        f"(.pth, .pt, .bin, .safetensors)"
    )


def _viclip_target(
    model: str, checkpoint: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None, download: bool
) -> tuple[str, Path, Any, Path | None]:
    """Resolve (name, checkpoint path, ViCLIPConfig, config path) without building the model."""
    from vidsearch.models.viclip import PRESETS, ViCLIPConfig
    from vidsearch.models.weights import resolve_checkpoint, resolve_config

    if model in PRESETS:
        path = resolve_checkpoint(model, checkpoint, download=download)
        if config is not None:
            cfg_path = Path(config).expanduser().resolve()
            cfg = ViCLIPConfig.from_json(cfg_path)
        else:
            cfg, cfg_path = ViCLIPConfig.preset(model), None
    elif _is_checkpoint_path(model):
        path = Path(model).expanduser()
        if checkpoint is not None and Path(checkpoint).expanduser().resolve() != path.resolve():
            raise ModelError(
                f"model {model} is a checkpoint path but checkpoint={checkpoint} names another file; pass only one"
            )
        path = resolve_checkpoint("", path)
        cfg, cfg_path = resolve_config(path, config)
    else:
        raise _unknown(model)
    return _config_name(cfg), path, cfg, cfg_path


def _config_name(cfg: Any) -> str:
    """The preset's name, or ``viclip-custom-<8 hex of the config>`` for any other architecture."""
    preset = cfg.preset_name()
    if preset:
        return preset
    blob = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    return f"viclip-custom-{hashlib.sha256(blob).hexdigest()[:8]}"


def _openclip_name(arch: str) -> str:
    return "openclip-" + re.sub(r"[^A-Za-z0-9._-]+", "_", arch)


def model_key(
    model: str, checkpoint: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> str:
    """The ``key`` :func:`load_encoder` would give, without building the model or reading weights.

    Only the checkpoint's hash is needed (cached by path, size and mtime); a checkpoint path
    without a config JSON has its tensor shapes read (memory-mapped) to find its preset.
    """
    from vidsearch.models.weights import checkpoint_hash

    if model.startswith(OPENCLIP_PREFIX):
        from vidsearch.models.openclip import resolve_openclip

        arch, path, _ = resolve_openclip(model[len(OPENCLIP_PREFIX) :], checkpoint, config)
        return f"{_openclip_name(arch)}@{checkpoint_hash(path)[:12]}"
    name, path, _, _ = _viclip_target(model, checkpoint, config, download=True)
    return f"{name}@{checkpoint_hash(path)[:12]}"


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
        ModelError: unknown name or unusable config (lists the valid choices).
        CheckpointError: unreadable checkpoint or one that does not fit.
        WeightsNotFoundError: no weights locally and none downloadable.
    """
    dev = resolve_device(device)
    if model.startswith(OPENCLIP_PREFIX):
        from vidsearch.models.openclip import OpenCLIPEncoder

        return OpenCLIPEncoder.load(model[len(OPENCLIP_PREFIX) :], checkpoint, config, dev)
    from vidsearch.models.viclip import ViCLIP
    from vidsearch.models.weights import checkpoint_hash, load_viclip_checkpoint

    name, path, cfg, cfg_path = _viclip_target(model, checkpoint, config, download=True)
    sha = checkpoint_hash(path)
    with _default_device("meta"):
        net = ViCLIP(cfg)  # no memory for the random init: the checkpoint overwrites every tensor
    net = net.to_empty(device="cpu")
    load_viclip_checkpoint(net, path)
    spec = {"model": model if not _is_checkpoint_path(model) else str(path), "checkpoint": str(path),
            "config": str(cfg_path) if cfg_path else None}
    LOG.info("loaded %s from %s on %s", name, path, dev)
    return ViCLIPEncoder(net, name=name, checkpoint=path, sha256=sha, spec=spec, device=dev)


@contextlib.contextmanager
def _default_device(device: str) -> Iterator[None]:
    with torch.device(device):
        yield
