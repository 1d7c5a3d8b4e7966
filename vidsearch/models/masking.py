"""Training-time token masking of the vision tower: random (ViCLIP's) or guided by motion."""

from __future__ import annotations

import torch

__all__ = ["keep_tokens", "patch_motion"]


def keep_tokens(
    x: torch.Tensor, masking_prob: float, motion: torch.Tensor | None = None, motion_share: float = 0.0
) -> torch.Tensor:
    """Keep a ``1 - masking_prob`` share of the tokens of each sample (training only).

    Without ``motion`` the kept tokens are drawn at random (ViCLIP's masking). With it, a
    ``motion_share`` of them are the tokens of highest motion (``[B, L]``, see
    :func:`patch_motion`) and the rest are drawn at random from the others: a small moving
    object covers a few patches of mostly static frames, and random masking drops it from
    about as many frames as it keeps (token selection by temporal change, as EVEREST does
    for masked video pre-training). Kept tokens stay in their order.
    """
    B, L, D = x.shape
    keep = L - int(masking_prob * L)
    score = torch.rand(B, L, device=x.device)  # ascending: the first ``keep`` are kept
    n_motion = int(motion_share * keep) if motion is not None else 0
    if n_motion > 0 and motion is not None:
        top = motion.float().argsort(dim=1, descending=True)[:, :n_motion]
        score.scatter_(1, top, -1.0)  # before every random score
    idx = score.argsort(dim=1)[:, :keep].sort(dim=1).values
    return x.gather(1, idx.unsqueeze(-1).expand(B, keep, D))


def patch_motion(patches: torch.Tensor) -> torch.Tensor:
    """How much each patch changes over the clip: ``[B, T, L, P]`` pixels -> ``[B, T * L]``.

    The mean absolute difference of a patch from the same patch averaged over the clip's
    frames: high where something moves through it, ~0 on static background (and on noise, in
    proportion to its strength). Token order is frame-major, as the vision tower's.
    """
    B, T, L, _ = patches.shape
    return (patches - patches.mean(dim=1, keepdim=True)).abs().mean(dim=-1).reshape(B, T * L)
