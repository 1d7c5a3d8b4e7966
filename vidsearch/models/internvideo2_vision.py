"""The InternVideo2 vision tower (``PretrainInternVideo2`` of the official Stage-2 model), inference only.

A ViT over 3D patches (tubelet 1) with a class token, learned position embeddings (one table
for videos, another for single images), pre-norm RMSNorm blocks whose queries and keys are
RMS-normalized over the full width (all heads jointly), LayerScale on both branches and exact
GELU, **no final norm**, and an attention-pooling head whose query is the mean token. Module and
parameter names are the official ones so that checkpoints load key for key.

Returns both the raw token stream (the ITM cross-attention memory) and the pooled feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VisionConfig", "InternVideo2Vision"]


@dataclass(frozen=True)
class VisionConfig:
    """Sizes of the vision tower (defaults: the Stage-2 1B model at 224 px, 4 frames).

    Attributes:
        img_size: square input side.
        patch_size: spatial patch side.
        num_frames: frames the video position table covers.
        width: token width ``d_model``.
        depth: number of blocks.
        heads: attention heads per block.
        mlp_hidden: MLP hidden size (officially ``int(width * 48 / 11)``).
        pool_heads: heads of the attention-pooling head.
        pool_dim: pooled output size (``clip_embed_dim``).
    """

    img_size: int = 224
    patch_size: int = 14
    num_frames: int = 4
    width: int = 1408
    depth: int = 40
    heads: int = 16
    mlp_hidden: int = 6144
    pool_heads: int = 16
    pool_dim: int = 768

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.img_size // self.patch_size


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 (as the official non-fused ``RMSNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class LayerScale(nn.Module):
    """Per-channel scale, multiplied in fp32 (the official ``force_fp32=True``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() * self.gamma.float()).type_as(x)


class PatchEmbed(nn.Module):
    """Conv3d patches ``[B, C, T, H, W]`` -> ``[B, T, H*W/p^2, width]``."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        p = cfg.patch_size
        self.proj = nn.Conv3d(3, cfg.width, kernel_size=(1, p, p), stride=(1, p, p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(3).permute(0, 2, 3, 1)


class Attention(nn.Module):
    """Self-attention without qkv bias; q and k RMS-normalized over all heads together."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_norm = RMSNorm(dim)
        self.k_norm = RMSNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        # the norms see the full width before the heads are split (internvideo2.py:189-192)
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(b, n, self.heads, c // self.heads).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear -> exact GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.heads)
        self.ls1 = LayerScale(cfg.width)
        self.norm2 = RMSNorm(cfg.width)
        self.mlp = Mlp(cfg.width, cfg.mlp_hidden)
        self.ls2 = LayerScale(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class CrossAttention(nn.Module):
    """The pooling head's attention: bias-free q/k/v weights plus separate bias vectors."""

    def __init__(self, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, nq, c = q.shape
        h = self.heads
        qh = F.linear(q, self.q.weight, self.q_bias).view(b, nq, h, c // h).transpose(1, 2)
        kh = F.linear(k, self.k.weight, self.k_bias).view(b, -1, h, c // h).transpose(1, 2)
        vh = F.linear(v, self.v.weight, self.v_bias).view(b, -1, h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh)
        return self.proj(out.transpose(1, 2).reshape(b, nq, c))


class AttentionPool(nn.Module):
    """Attention pooling with the mean of all tokens (class token included) as the query."""

    def __init__(self, dim: int, heads: int, out_dim: int) -> None:
        super().__init__()
        self.norm1_q = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_k = nn.LayerNorm(dim, eps=1e-5)
        self.norm1_v = nn.LayerNorm(dim, eps=1e-5)
        self.cross_attn = CrossAttention(dim, heads, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(query, self.norm1_k(x), self.norm1_v(x)).squeeze(1)


class InternVideo2Vision(nn.Module):
    """The vision tower: ``[B, C, T, H, W]`` -> (tokens ``[B, 1+T*L, width]``, pooled ``[B, pool_dim]``)."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.config = cfg
        tokens = cfg.grid**2
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_frames * tokens, cfg.width))
        self.img_pos_embed = nn.Parameter(torch.zeros(1, 1 + tokens, cfg.width))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.clip_projector = AttentionPool(cfg.width, cfg.pool_heads, cfg.pool_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with the class token first (T-major) plus the position table of T."""
        patches = self.patch_embed(x.to(self.patch_embed.proj.weight.dtype))
        b, t, n, c = patches.shape
        cls = self.cls_token.expand(b, -1, -1)
        tokens = torch.cat([cls, patches.reshape(b, t * n, c)], dim=1)
        pos = self.img_pos_embed if t == 1 else self.pos_embed
        if pos.shape[1] != tokens.shape[1]:
            raise ValueError(
                f"InternVideo2 takes {self.config.num_frames} frames (or 1) of "
                f"{self.config.img_size}x{self.config.img_size}, got {t} of {tuple(x.shape[-2:])}"
            )
        return tokens + pos

    def forward(self, x: torch.Tensor, return_blocks: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens of the last block (no final norm) and their attention-pooled feature.

        Args:
            x: normalized frames ``[B, C, T, H, W]``.
            return_blocks: return every block's output stacked ``[depth, B, N, width]`` as the
                tokens (for parity checks) instead of the last one.
        """
        h = self.embed(x)
        outs = []
        for blk in self.blocks:
            h = blk(h)
            if return_blocks:
                outs.append(h)
        pooled = self.clip_projector(h)
        return (torch.stack(outs) if return_blocks else h), pooled


def vision_flops(cfg: VisionConfig, num_frames: int | None = None) -> float:
    """FLOPs (2 per multiply-add) of one clip through the tower's GEMMs and attention, pooling included."""
    t = num_frames or cfg.num_frames
    d, p = cfg.width, cfg.patch_size
    n = 1 + t * cfg.grid**2
    patch = 2 * t * cfg.grid**2 * 3 * p * p * d
    block = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * cfg.mlp_hidden
    pool = 2 * 2 * n * d * d + 2 * d * d + 2 * 2 * n * d + 2 * d * cfg.pool_dim
    return float(patch + cfg.depth * block + pool)
