"""The optimisation pieces of training: contrastive loss, learning-rate schedule, AdamW groups, autocast.

The loss is ViCLIP's video-text contrastive loss: cosine similarities divided by the learnable
temperature (logits ``sim / temp``), cross-entropy in both directions, with every clip of the
batch that shares a caption counted as a positive.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["contrastive_loss", "reversal_hinge", "neighbour_hinge", "lr_at", "build_optimizer"]


def contrastive_loss(
    video: torch.Tensor, text: torch.Tensor, temp: torch.Tensor, caption_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE of raw embeddings ``[B, D]`` with ViCLIP's temperature semantics.

    Args:
        video: video embeddings (normalized here).
        text: text embeddings, row ``i`` the caption of video ``i``.
        temp: the temperature; logits are ``cos / temp``.
        caption_ids: ``[B]`` ids; rows with equal ids are all positives of each other.

    Returns:
        Scalar loss: mean of video->text and text->video cross-entropies.
    """
    v = F.normalize(video.float(), dim=-1)
    t = F.normalize(text.float(), dim=-1)
    logits = v @ t.t() / temp.float()  # [B, B], row = video
    if caption_ids is None:
        target = torch.arange(v.shape[0], device=v.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    pos = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = pos / pos.sum(dim=1, keepdim=True)  # symmetric mask: the same for both directions
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def reversal_hinge(video: torch.Tensor, reversed_video: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``relu(cos(v, v_reversed) - margin)`` over clip pairs ``[N, D]`` (0 when ``N == 0``).

    A model that cannot tell frame order embeds a clip and its time reversal alike (cosine near
    1), and then the contrastive loss has no gradient to offer either tower for words like
    "left" and "right": the text tower learns to embed them alike too, and the pair sits at a
    symmetric point the loss leaves only slowly. This hinge pushes the two embeddings of a
    reversible clip apart until their cosine is below ``margin``, and is silent after that.
    """
    if video.shape[0] == 0:
        return video.sum() * 0.0
    cos = (F.normalize(video.float(), dim=-1) * F.normalize(reversed_video.float(), dim=-1)).sum(dim=-1)
    return F.relu(cos - margin).mean()


def neighbour_hinge(embeddings: torch.Tensor, keys: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over rows of ``relu(max cos(e_i, e_j) - margin)``, ``j`` ranging over rows of another key.

    The contrastive loss can merge two captions the video tower cannot tell apart yet (early in
    training a small model sees a circle and a square of one colour alike, so "a red circle" and
    "a red square" are pulled to the same clips); once their text embeddings coincide, the
    gradient that would teach either tower the difference vanishes, the symmetric point
    :func:`reversal_hinge` breaks for opposite directions. This hinge keeps each caption's nearest
    caption of another group (another event) in the batch below ``margin``; rows of one key
    (paraphrases) are left alone, and a row with no other key adds nothing.
    """
    e = F.normalize(embeddings.float(), dim=-1)
    other = keys[:, None] != keys[None, :]
    nearest = (e @ e.t()).masked_fill(~other, -2.0).max(dim=1).values  # -2: no row of another key
    has_other = other.any(dim=1)
    if not bool(has_other.any()):
        return e.sum() * 0.0
    return F.relu(nearest[has_other] - margin).mean()


def lr_at(step: int, total: int, base: float, warmup: float, min_ratio: float) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warmup, then cosine decay."""
    warm = max(1, int(round(warmup * total))) if warmup > 0 else 0
    if step < warm:
        return base * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def build_optimizer(
    model: torch.nn.Module, lr: float, weight_decay: float, temporal_lr_scale: float = 1.0
) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only.

    Norm weights, biases, embeddings (class, positional, token) and the temperature are not
    decayed: shrinking them has no regularising meaning and hurts (CLIP's practice). With
    ``temporal_lr_scale != 1`` the vision tower's ``temporal_positional_embedding`` gets a third
    group whose ``lr_scale`` multiplies the scheduled learning rate: frame order is learned
    only through that small tensor, so it may need bigger steps than the rest.
    """
    decay, no_decay, temporal = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if temporal_lr_scale != 1.0 and name.endswith("temporal_positional_embedding"):
            temporal.append(p)
        elif p.ndim < 2 or "embedding" in name or name == "temp":
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if temporal:
        groups.append(
            {"params": temporal, "weight_decay": 0.0, "lr_scale": temporal_lr_scale, "lr": lr * temporal_lr_scale}
        )
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
