"""The frame resize ViCLIP's test transform does, on uint8 frames, where frames are decoded.

ViCLIP's test transform resizes uint8 frames to ``(res, res)`` with torchvision ``Resize``
(bicubic, computed in float, rounded and clamped back to uint8), then normalizes. The published
models were trained and evaluated with torchvision 0.15.2 (the official ``viclip.yaml``), whose
``Resize`` on a uint8 tensor does NOT antialias (antialias defaulted to off for tensors until
torchvision 0.17); newer torchvision antialiases. Both are here: ``antialias=False``
(:data:`OFFICIAL_ANTIALIAS`, the frames the published models saw) and ``antialias=True``. Which
one a library used is part of its embedding space's sampling record
(:class:`vidsearch.media.sampling.SamplingConfig`), so one library never mixes both.

The resize lives here, with decoding, so that decoding workers ship small uint8 frames between
processes; the normalization is the model's (:mod:`vidsearch.models.preprocess`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.media.sampling import OFFICIAL_ANTIALIAS

__all__ = ["OFFICIAL_ANTIALIAS", "resize_frames", "resize_clips"]


def resize_frames(
    frames: np.ndarray | torch.Tensor, resolution: int, antialias: bool = OFFICIAL_ANTIALIAS
) -> np.ndarray:
    """Resize uint8 frames ``[N, H, W, C]`` to ``[N, resolution, resolution, C]`` (uint8).

    Bicubic (``align_corners=False``) in float, clamped to [0, 255] and rounded, as torchvision
    ``Resize`` does on uint8 tensors. Frames already at the target size are returned unchanged.

    Args:
        frames: uint8 ``[N, H, W, 3]``.
        resolution: output side.
        antialias: antialias when downscaling (torchvision >= 0.17); the default, off, is what
            torchvision 0.15.2 did and the published ViCLIP models saw.

    Raises:
        ValueError: ``frames`` is not ``[N, H, W, 3]``.
    """
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got shape {tuple(x.shape)}")
    if x.shape[1] == resolution and x.shape[2] == resolution:
        return x.numpy()
    x = x.permute(0, 3, 1, 2).float()  # NHWC -> NCHW
    x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=bool(antialias))
    x = x.clamp_(0, 255).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def resize_clips(clips: np.ndarray, resolution: int, antialias: bool = OFFICIAL_ANTIALIAS) -> np.ndarray:
    """Resize uint8 clips ``[B, T, H, W, C]`` to ``[B, T, resolution, resolution, C]`` (unchanged if there).

    Raises:
        ValueError: ``clips`` is not ``[B, T, H, W, 3]``.
    """
    if clips.ndim != 5:
        raise ValueError(f"expected uint8 clips [B, T, H, W, 3], got shape {tuple(clips.shape)}")
    B, T, H, W, C = clips.shape
    if H == resolution and W == resolution:
        return clips
    return resize_frames(clips.reshape(B * T, H, W, C), resolution, antialias).reshape(B, T, resolution, resolution, C)
