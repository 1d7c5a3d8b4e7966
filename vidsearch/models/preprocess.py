"""Frame preprocessing exactly as ViCLIP's test transform does it: the model's half.

The official transform resizes the uint8 frames to (res, res) with bicubic interpolation
(torchvision ``Resize`` on a uint8 tensor: computed in float, rounded and clamped back to
uint8; without antialiasing in torchvision 0.15.2, which the published models used, see
:mod:`vidsearch.media.resize`), then divides by 255 and normalizes with the ImageNet mean/std.
Splitting it in two lets decoding workers do the resize (so they ship small uint8 frames
between processes; :func:`vidsearch.media.resize.resize_frames`) while the encoder does the
normalization here, on its device.
"""

from __future__ import annotations

import numpy as np
import torch

from vidsearch.media.resize import OFFICIAL_ANTIALIAS, resize_frames

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalize_frames", "preprocess_frames"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Turn uint8 ``[..., H, W, C]`` frames into normalized float ``[..., C, H, W]``."""
    x = frames.to(torch.float32).div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device)
    x = (x - mean) / std
    return x.movedim(-1, -3)


def preprocess_frames(
    frames: np.ndarray | torch.Tensor, resolution: int, antialias: bool = OFFICIAL_ANTIALIAS
) -> torch.Tensor:
    """The full official test transform: uint8 ``[T, H, W, C]`` -> float ``[T, C, res, res]``
    (the media resize, without antialiasing unless asked, then :func:`normalize_frames`)."""
    return normalize_frames(torch.from_numpy(resize_frames(frames, resolution, antialias)))
