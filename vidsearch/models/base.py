"""The encoder interface every model implements (:class:`Encoder`)."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.media.resize import OFFICIAL_ANTIALIAS, resize_clips
from vidsearch.models.precision import autocast_for
from vidsearch.precision import space_key

__all__ = ["Encoder", "l2_normalized"]


class Encoder(abc.ABC):
    """A video/text encoder into one L2-normalized embedding space.

    Attributes:
        key: stable name of the embedding space, ``<name>@<12 hex of the checkpoint sha256>``.
        num_frames: frames per clip the model was trained with.
        resolution: square frame side the model takes.
        embed_dim: embedding size ``D``.
        device: where the model runs.
        model: the underlying ``nn.Module`` (for fine-tuning).
        spec: JSON-serializable fields of the :class:`~vidsearch.models.spec.EncoderSpec` that
            rebuilds this encoder (``open_encoder(EncoderSpec.from_dict(spec))``).
        precision: the resolved precision it runs at (``fp32``, ``bf16``, ``fp16``, ``int8``),
            given when it is built; it is the key's suffix.
        checkpoint_hash: full sha256 of the checkpoint file.
        antialias: the model's own frame-resize choice, for new embedding spaces and frames
            not already at ``resolution`` (ViCLIP: off, as torchvision 0.15.2 resized for the
            published models; see :mod:`vidsearch.media.resize`).
    """

    key: str
    num_frames: int
    resolution: int
    embed_dim: int
    device: torch.device
    model: torch.nn.Module
    spec: dict[str, Any]
    precision: str = "fp32"
    checkpoint_hash: str
    antialias: bool = OFFICIAL_ANTIALIAS

    def set_source(
        self,
        name: str,
        checkpoint: Any,
        sha256: str,
        spec: dict[str, Any],
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        """Record where the weights came from and the precision the encoder is built at (in its constructor).

        ``key`` = ``<name>@<12 hex of sha256>`` plus the precision's suffix; ``spec`` records the precision.
        """
        self.device = device
        self.checkpoint = checkpoint
        self.checkpoint_hash = sha256
        self.precision = precision
        self.key = space_key(f"{name}@{sha256[:12]}", precision)
        self.spec = {**spec, "precision": precision}

    @abc.abstractmethod
    def encode_video(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embed uint8 clips ``[B, T, H, W, C]`` into float32 numpy ``[B, D]``, L2-normalized."""

    @abc.abstractmethod
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions into float32 numpy ``[B, D]``, L2-normalized."""

    @property
    def temperature(self) -> float | None:
        """The contrastive temperature the model was trained with (logits = cosine / T), if any."""
        return None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast of this encoder's precision on its device (a no-op context for fp32)."""
        return autocast_for(self.device, self.precision)

    @staticmethod
    def check_frames(frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """``frames`` as a uint8 numpy array ``[B, T, H, W, 3]``, or a ValueError naming the shape."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().cpu().numpy()
        frames = np.asarray(frames)
        if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"encode_video expects uint8 frames [B, T, H, W, 3], got {frames.dtype} {frames.shape}")
        return frames

    def frames_tensor(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, H, W, C]`` at any size -> uint8 ``[B, T, res, res, C]`` on the device."""
        frames = resize_clips(self.check_frames(frames), self.resolution, self.antialias)
        return torch.from_numpy(np.ascontiguousarray(frames)).to(self.device, non_blocking=True)

    @staticmethod
    def check_texts(texts: Sequence[str]) -> list[str]:
        """``texts`` as a list, or a ValueError when one string was passed instead of a sequence."""
        if isinstance(texts, str):
            raise ValueError("encode_text expects a sequence of strings, not one string; wrap it in a list")
        return list(texts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, device={self.device})"


def l2_normalized(x: torch.Tensor) -> np.ndarray:
    """L2-normalize the last axis in fp32 and return a float32 numpy array."""
    return F.normalize(x.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)
