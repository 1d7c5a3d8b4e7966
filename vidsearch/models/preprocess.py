"""Frame preprocessing exactly as ViCLIP's test transform does it.

The official transform resizes the uint8 frames to (res, res) with bicubic antialiased
interpolation (torchvision ``Resize`` on a uint8 tensor: computed in float, rounded and
clamped back to uint8), then divides by 255 and normalizes with the ImageNet mean/std.
Splitting it in two lets decoding workers do the resize (so they ship small uint8 frames
between processes) while the encoder does the normalization on its device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "resize_frames", "resize_clips", "normalize_frames", "preprocess_frames"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_frames(frames: np.ndarray | torch.Tensor, resolution: int) -> np.ndarray:
    """Resize uint8 frames ``[N, H, W, C]`` to ``[N, resolution, resolution, C]`` (uint8).

    Frames already at the target size are returned unchanged.
    """
    x = torch.as_tensor(np.asarray(frames))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got shape {tuple(x.shape)}")
    if x.shape[1] == resolution and x.shape[2] == resolution:
        return x.numpy()
    x = x.permute(0, 3, 1, 2).float()  # NHWC -> NCHW
    x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=True)
    x = x.clamp_(0, 255).round_().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def resize_clips(clips: np.ndarray, resolution: int) -> np.ndarray:
    """Resize uint8 clips ``[B, T, H, W, C]`` to ``[B, T, resolution, resolution, C]`` (unchanged if there)."""
    B, T, H, W, C = clips.shape
    if H == resolution and W == resolution:
        return clips
    return resize_frames(clips.reshape(B * T, H, W, C), resolution).reshape(B, T, resolution, resolution, C)


def normalize_frames(frames: torch.Tensor) -> torch.Tensor:
    """Turn uint8 ``[..., H, W, C]`` frames into normalized float ``[..., C, H, W]``."""
    x = frames.to(torch.float32).div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device)
    x = (x - mean) / std
    return x.movedim(-1, -3)


def preprocess_frames(frames: np.ndarray | torch.Tensor, resolution: int) -> torch.Tensor:
    """The full official test transform: uint8 ``[T, H, W, C]`` -> float ``[T, C, res, res]``."""
    return normalize_frames(torch.from_numpy(resize_frames(frames, resolution)))
