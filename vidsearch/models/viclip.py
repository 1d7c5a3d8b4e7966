"""ViCLIP (InternVid's video-text CLIP): an exact, faster port of the official model.

The official code lives in OpenGVLab/InternVideo, ``Data/InternVid/viclip/``. This port keeps
every parameter name and shape (so the published checkpoints load with ``strict=True``) and the
same maths, but computes it faster:

* attention through :func:`torch.nn.functional.scaled_dot_product_attention` on batch-first
  tensors instead of ``nn.MultiheadAttention`` on sequence-first ones;
* the 3D patch embedding (temporal kernel 1) as one matrix multiply over unfolded patches;
* only the ``[CLS]`` token goes through the last vision block's query, MLP and ``ln_post``
  (the output is the projected ``[CLS]`` token, so the other rows of the last block are unused);
* text sequences are cut after the last end-of-text token of the batch (attention is causal,
  so the padding after it cannot change the pooled token);
* without autograd, blocks update the residual stream in place with the residual adds, biases
  and QuickGELU's scale folded into the GEMMs (:meth:`ResidualAttentionBlock.forward_inplace`).

Token order inside the vision transformer is frame-major (``t, n``) where the official code is
patch-major (``n, t``). With no attention mask and all positions added as embeddings, attention
is permutation invariant, so only float rounding differs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from vidsearch.errors import ModelError
from vidsearch.fileio import atomic_write_text
from vidsearch.models.catalog import PRESETS as CATALOG_PRESETS
from vidsearch.models.masking import keep_tokens, patch_motion

__all__ = [
    "ViCLIPConfig",
    "ViCLIP",
    "VisionTransformer",
    "TextTransformer",
    "PRESETS",
    "resize_temporal_embedding",
    "read_json_object",
    "vision_flops",
]

LOG = logging.getLogger(__name__)


@dataclass
class ViCLIPConfig:
    """Architecture of a ViCLIP model (the vision and text towers and the joint space)."""

    input_resolution: int  # square input side in pixels (224 for the published models)
    patch_size: int  # spatial patch side (16 for B/16, 14 for L/14)
    vision_width: int  # vision transformer width
    vision_layers: int  # number of vision residual blocks
    vision_heads: int  # vision attention heads (head_dim = width / heads, not always 64)
    embed_dim: int  # joint embedding size: vision `proj` and `text_projection` output
    num_frames: int  # frames per clip: length of `temporal_positional_embedding`
    text_width: int  # text transformer width
    text_layers: int  # number of text residual blocks
    text_heads: int  # text attention heads
    context_length: int = 32  # text tokens per caption (ViCLIP's `max_txt_l`)
    vocab_size: int = 49408  # CLIP BPE vocabulary

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ModelError(f"ViCLIPConfig.{f.name} must be a positive integer, got {value!r}")
        if self.input_resolution % self.patch_size:
            raise ModelError(
                f"ViCLIPConfig: input_resolution {self.input_resolution} is not a multiple of "
                f"patch_size {self.patch_size}; pick sizes that divide"
            )
        for tower in ("vision", "text"):
            width, heads = getattr(self, f"{tower}_width"), getattr(self, f"{tower}_heads")
            if width % heads:
                raise ModelError(f"ViCLIPConfig: {tower}_width {width} is not divisible by {tower}_heads {heads}")

    @classmethod
    def preset(cls, name: str) -> ViCLIPConfig:
        """Return a fresh copy of a named preset (``viclip-b16`` or ``viclip-l14``).

        Raises:
            ModelError: for an unknown name; the message lists the presets.
        """
        try:
            fields = PRESETS[name]
        except KeyError:
            raise ModelError(f"unknown ViCLIP preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}") from None
        return cls(**fields)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ViCLIPConfig:
        """Build a config from a dict, rejecting unknown or missing fields with one line."""
        if isinstance(data.get("model_cfg"), dict):  # tolerate a wrapped config
            data = data["model_cfg"]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(
                f"{source}: unknown ViCLIP config field(s) {', '.join(unknown)}; "
                f"valid fields: {', '.join(sorted(names))}"
            )
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise ModelError(f"{source}: missing ViCLIP config field(s) {', '.join(missing)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ViCLIPConfig:
        """Read a config written by :meth:`to_json` (or by hand)."""
        return cls.from_dict(read_json_object(path, "ViCLIP config"), source=str(path))

    def to_dict(self) -> dict[str, int]:
        """The fields as a plain dict (JSON-serializable)."""
        return dataclasses.asdict(self)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the config as JSON, atomically (``.tmp`` then ``os.replace``)."""

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def preset_name(self) -> str | None:
        """The name of the preset this config equals, if any."""
        for name, fields in PRESETS.items():
            if self.to_dict() == ViCLIPConfig(**fields).to_dict():
                return name
        return None


def read_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """Read a JSON object from ``path``; ``what`` names the file in the one-line errors."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} {path} does not exist; pass an existing JSON file") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {what} {path}: {exc}; fix or remove the file") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what} {path} must hold a JSON object")
    return data


def resize_temporal_embedding(embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Fit a temporal embedding ``[1, T_old, D]`` to ``num_frames`` as the official loader does.

    InternVideo's ``load_temp_embed_with_mismatch(..., add_zero=False)``: a longer target is
    linearly interpolated (``F.interpolate(mode="linear")``, ``align_corners=False``), a shorter
    one keeps the first ``num_frames`` rows, an equal one is unchanged.
    """
    old = embed.shape[1]
    if num_frames == old:
        return embed
    if num_frames < old:
        return embed[:, :num_frames]
    # [1, T, D] -> [1, D, T] -> interpolate -> [1, D, T'] -> [1, T', D]
    out = F.interpolate(embed.transpose(1, 2).float(), size=num_frames, mode="linear", align_corners=False)
    return out.transpose(1, 2).to(embed.dtype)


_GELU_SCALE = 1.702  # QuickGELU's sigmoid slope


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation CLIP and ViCLIP were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(_GELU_SCALE * x)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input dtype (as the official text tower does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        return super().forward(x.float()).to(x.dtype)


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, batch first.

    Keeps ``in_proj_weight``/``in_proj_bias``/``out_proj`` so official checkpoints load, and runs
    the softmax through the fused ``scaled_dot_product_attention`` kernel.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.width, self.heads = width, heads
        self.head_dim = width // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The same initialisation as ``nn.MultiheadAttention``."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # [B, N, D] -> [B, H, N, hd]
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def attend(self, x: torch.Tensor, causal: bool = False, n_query: int | None = None) -> torch.Tensor:
        """Multi-head attention of ``x [B, N, D]`` before ``out_proj``: ``[B, Nq, D]``.

        With ``n_query`` only the first ``n_query`` rows are queries (keys/values use all rows).
        """
        B, N, D = x.shape
        if n_query is None:
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [B, N, 3D]
            # [B, N, 3, H, hd] -> [3, B, H, N, hd]
            q, k, v = qkv.view(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            w_q, w_kv = self.in_proj_weight.split([D, 2 * D])
            b_q, b_kv = self.in_proj_bias.split([D, 2 * D])
            q = self._heads(F.linear(x[:, :n_query], w_q, b_q))  # [B, H, n_query, hd]
            kv = F.linear(x, w_kv, b_kv)  # [B, N, 2D]
            k, v = kv.view(B, N, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # [B, H, Nq, hd]
        # The CPU/CUDA kernels allocate [B, Nq, H, hd], so this transpose is usually free.
        return out.transpose(1, 2).flatten(2)  # [B, Nq, D]

    def attend_inplace(self, x: torch.Tensor, causal: bool = False, n_query: int | None = None) -> torch.Tensor:
        """:meth:`attend` for inference: plain GEMMs with the biases added in place."""
        B, N, D = x.shape
        x2 = x.reshape(B * N, D)
        if n_query is None:
            qkv = torch.mm(x2, self.in_proj_weight.t()).add_(self.in_proj_bias)  # [B*N, 3D]
            q, k, v = qkv.view(B, N, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            w_q, w_kv = self.in_proj_weight.split([D, 2 * D])
            b_q, b_kv = self.in_proj_bias.split([D, 2 * D])
            q = self._heads(torch.matmul(x[:, :n_query], w_q.t()).add_(b_q))  # [B, H, n_query, hd]
            kv = torch.mm(x2, w_kv.t()).add_(b_kv)  # [B*N, 2D]
            k, v = kv.view(B, N, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # [B, H, Nq, hd]
        return out.transpose(1, 2).flatten(2)  # [B, Nq, D]

    def forward(self, x: torch.Tensor, causal: bool = False, n_query: int | None = None) -> torch.Tensor:
        """``out_proj(attend(x))``: ``[B, N, D]`` (or ``[B, n_query, D]``)."""
        return self.out_proj(self.attend(x, causal=causal, n_query=n_query))


class Mlp(nn.Module):
    """``c_fc -> QuickGELU -> c_proj`` with the official parameter names."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int, layer_norm: type[nn.LayerNorm] = nn.LayerNorm) -> None:
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = layer_norm(width)
        self.mlp = Mlp(width, width * 4)
        self.ln_2 = layer_norm(width)

    def forward(self, x: torch.Tensor, causal: bool = False, n_query: int | None = None) -> torch.Tensor:
        """``x [B, N, D] -> [B, N, D]`` (or ``[B, n_query, D]`` when only the first rows are needed)."""
        if n_query is None:
            x = x + self.attn(self.ln_1(x), causal=causal)
        else:
            x = x[:, :n_query] + self.attn(self.ln_1(x), causal=causal, n_query=n_query)
        return x + self.mlp(self.ln_2(x))

    def forward_inplace(self, x: torch.Tensor, causal: bool = False, n_query: int | None = None) -> torch.Tensor:
        """The same maths for inference, updating the contiguous residual stream ``x`` in place.

        On a CPU the elementwise passes around the GEMMs cost as much as a fifth of a forward
        (profiled), so this path keeps one pass wherever the maths allows:

        * biases are added in place after a plain GEMM (``addmm`` with a bias first copies the
          broadcast bias into its output, a slow strided copy), and the residual adds are
          accumulated by the projection GEMMs themselves (``addmm_`` into ``x``);
        * QuickGELU ``h * sigmoid(1.702 h)`` is computed as ``silu(1.702 h) / 1.702``: the 1.702
          goes into ``ln_2``'s affine parameters (vectors, so free), the ``1 / 1.702`` into the
          ``c_proj`` GEMM's ``alpha``, which leaves one in-place ``silu`` pass.
        """
        D = x.shape[-1]
        a = self.attn.attend_inplace(_layer_norm(x, self.ln_1), causal=causal, n_query=n_query)  # [B, Nq, D]
        if n_query is not None:
            x = x[:, :n_query].contiguous()  # [B, Nq, D]
        x2 = x.view(-1, D)  # [B*Nq, D], shares storage with x
        x2.add_(self.attn.out_proj.bias).addmm_(a.reshape(-1, D), self.attn.out_proj.weight.t())
        c_fc, c_proj = self.mlp.c_fc, self.mlp.c_proj
        h = torch.mm(_layer_norm(x, self.ln_2, _GELU_SCALE).view(-1, D), c_fc.weight.t())  # [B*Nq, 4D]
        h.add_(c_fc.bias, alpha=_GELU_SCALE)
        F.silu(h, inplace=True)  # = 1.702 * QuickGELU(c_fc(ln_2(x)))
        x2.add_(c_proj.bias).addmm_(h, c_proj.weight.t(), alpha=1.0 / _GELU_SCALE)
        return x


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (the argument is new in torch 2.4)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _layer_norm(x: torch.Tensor, ln: nn.LayerNorm, scale: float = 1.0) -> torch.Tensor:
    """``scale * ln(x)`` with the scale folded into the affine vectors (fp32 maths for fp16 input)."""
    w, b = ln.weight, ln.bias
    if scale != 1.0:
        w, b = w * scale, b * scale
    if x.dtype in (torch.float16, torch.bfloat16):
        return F.layer_norm(x.float(), ln.normalized_shape, w.float(), b.float(), ln.eps).to(x.dtype)
    return F.layer_norm(x, ln.normalized_shape, w, b, ln.eps)


class Transformer(nn.Module):
    """A stack of residual blocks (``resblocks.{i}``), batch first."""

    def __init__(self, width: int, layers: int, heads: int, layer_norm: type[nn.LayerNorm] = nn.LayerNorm) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, layer_norm) for _ in range(layers))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, causal: bool = False, last_n_query: int | None = None) -> torch.Tensor:
        """Run every block; ``last_n_query`` keeps only the first rows through the last block."""
        last = len(self.resblocks) - 1
        if not torch.is_grad_enabled() and not _autocast_enabled(x.device.type):
            # Inference: one private copy of the stream, then every block updates it in place.
            x = x.contiguous().clone()
            for i, blk in enumerate(self.resblocks):
                x = blk.forward_inplace(x, causal=causal, n_query=last_n_query if i == last else None)
            return x
        use_ckpt = self.grad_checkpointing and self.training
        for i, blk in enumerate(self.resblocks):
            n_query = last_n_query if i == last else None
            if use_ckpt:
                x = checkpoint(blk, x, causal, n_query, use_reentrant=False)
            else:
                x = blk(x, causal=causal, n_query=n_query)
        return x


class VisionTransformer(nn.Module):
    """ViCLIP's video ViT: per-frame patches, spatial + temporal position embeddings, joint attention."""

    def __init__(
        self,
        input_resolution: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        num_frames: int,
    ) -> None:
        super().__init__()
        self.input_resolution, self.patch_size = input_resolution, patch_size
        self.width, self.num_frames, self.output_dim = width, num_frames, output_dim
        # Temporal kernel 1 (the official `kernel_size=1`): a 2D patch embedding per frame.
        self.conv1 = nn.Conv3d(3, width, (1, patch_size, patch_size), (1, patch_size, patch_size), bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        grid = input_resolution // patch_size
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, num_frames, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def temporal_embedding(self, t: int) -> torch.Tensor:
        """The temporal embedding ``[1, t, D]`` used for ``t`` frames.

        ``t == 1`` (images) adds the mean over frames, as the official forward does; another
        ``t`` gets the embedding a model built for ``t`` frames would hold after the official
        loader resized the checkpoint's (see :func:`resize_temporal_embedding`).
        """
        embed = self.temporal_positional_embedding
        if t == 1:
            return embed.mean(1, keepdim=True)
        return resize_temporal_embedding(embed, t)

    def forward(self, x: torch.Tensor, masking_prob: float = 0.0, masking_motion: float = 0.0) -> torch.Tensor:
        """Encode normalized frames ``[B, T, C, H, W]`` into ``[B, output_dim]``.

        Args:
            x: float frames, already normalized, ``H == W == input_resolution``.
            masking_prob: fraction of patch tokens to drop at random (the official training
                trick); ``0`` at inference.
            masking_motion: share of the kept tokens chosen by motion instead of at random
                (see :func:`vidsearch.models.masking.keep_tokens`); only with ``masking_prob > 0`` and ``T > 1``.
        """
        B, T, C, H, W = x.shape
        if C != 3 or H != self.input_resolution or W != self.input_resolution:
            raise ValueError(
                f"ViCLIP vision tower expects [B, T, 3, {self.input_resolution}, "
                f"{self.input_resolution}] frames, got {tuple(x.shape)}; resize them first"
            )
        p, g = self.patch_size, H // self.patch_size
        # Patch embedding as one GEMM: [B, T, C, g, p, g, p] -> [B, T, g, g, C, p, p] -> [B*T*g*g, C*p*p]
        patches = x.reshape(B, T, C, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(B * T * g * g, C * p * p)
        weight = self.conv1.weight.reshape(self.width, C * p * p)  # [D, C*p*p], same (c, kh, kw) order
        x = (patches @ weight.t()).view(B, T, g * g, self.width)  # [B, T, L, D]
        dtype = x.dtype
        # Spatial position per patch, then temporal position per frame (broadcast over patches).
        x = x + self.positional_embedding[1:].to(dtype)  # [B, T, L, D]
        x = x + self.temporal_embedding(T).to(dtype).unsqueeze(2)  # [1, T, 1, D]
        x = x.reshape(B, T * g * g, self.width)  # [B, T*L, D]
        if masking_prob > 0.0:
            motion = patch_motion(patches.view(B, T, g * g, -1)) if masking_motion > 0.0 and T > 1 else None
            x = keep_tokens(x, masking_prob, motion, masking_motion)
        cls = (self.class_embedding + self.positional_embedding[0]).to(dtype)
        x = torch.cat([cls.expand(B, 1, -1), x], dim=1)  # [B, 1 + T*L, D]
        x = self.ln_pre(x)
        x = self.transformer(x, last_n_query=1)  # [B, 1, D]: only [CLS] is needed after the last block
        x = self.ln_post(x[:, 0])  # [B, D]
        return x @ self.proj.to(x.dtype)  # [B, output_dim]


class TextTransformer(nn.Module):
    """ViCLIP's text tower (CLIP's causal text transformer, pooled at the end-of-text token)."""

    def __init__(
        self, embed_dim: int, context_length: int, vocab_size: int, width: int, heads: int, layers: int
    ) -> None:
        super().__init__()
        self.context_length, self.vocab_size, self.width = context_length, vocab_size, width
        self.transformer = Transformer(width, layers, heads, layer_norm=LayerNorm)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        # CLIP's initialisation (the official module leaves these uninitialised).
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """Encode tokens ``[B, L]`` (``L <= context_length``) into ``[B, embed_dim]``."""
        if text.ndim != 2 or text.shape[1] > self.context_length:
            raise ValueError(f"ViCLIP text tower expects tokens [B, <= {self.context_length}], got {tuple(text.shape)}")
        eot = text.argmax(dim=-1)  # the end-of-text token has the highest id in each row
        # Causal attention: positions after the batch's last EOT cannot affect any pooled token.
        n = int(eot.max()) + 1 if text.numel() else text.shape[1]
        text = text[:, :n]
        x = self.token_embedding(text) + self.positional_embedding[:n]  # [B, n, D]
        x = self.transformer(x, causal=True)  # [B, n, D]
        x = x[torch.arange(x.shape[0], device=x.device), eot]  # [B, D]
        x = self.ln_final(x)
        return x @ self.text_projection.to(x.dtype)  # [B, embed_dim]


class ViCLIP(nn.Module):
    """ViCLIP: a video ViT and a CLIP text transformer projected into one space.

    ``state_dict()`` keys and shapes equal the official model's (``vision_encoder.*``,
    ``text_encoder.*``, ``temp``).
    """

    def __init__(self, config: ViCLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_encoder = VisionTransformer(
            input_resolution=config.input_resolution,
            patch_size=config.patch_size,
            width=config.vision_width,
            layers=config.vision_layers,
            heads=config.vision_heads,
            output_dim=config.embed_dim,
            num_frames=config.num_frames,
        )
        self.text_encoder = TextTransformer(
            embed_dim=config.embed_dim,
            context_length=config.context_length,
            vocab_size=config.vocab_size,
            width=config.text_width,
            heads=config.text_heads,
            layers=config.text_layers,
        )
        self.temp = nn.Parameter(torch.ones([]) / 100.0)  # contrastive temperature (training)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward (training only; never used at inference)."""
        self.vision_encoder.transformer.grad_checkpointing = enable
        self.text_encoder.transformer.grad_checkpointing = enable

    def encode_video(self, x: torch.Tensor, masking_prob: float = 0.0, masking_motion: float = 0.0) -> torch.Tensor:
        """Raw (unnormalized) embeddings ``[B, embed_dim]`` of normalized videos or images.

        Args:
            x: ``[B, T, C, H, W]`` videos or ``[B, C, H, W]`` images (run as ``T = 1``).
            masking_prob: share of patch tokens dropped at random (training only).
            masking_motion: share of the kept tokens chosen by motion (training only; see
                :func:`vidsearch.models.masking.keep_tokens`).
        """
        if x.ndim == 4:
            x = x.unsqueeze(1)  # [B, C, H, W] -> [B, 1, C, H, W]
        elif x.ndim != 5:
            raise ValueError(f"encode_video expects [B, T, C, H, W] or [B, C, H, W], got {tuple(x.shape)}")
        return self.vision_encoder(x, masking_prob=masking_prob, masking_motion=masking_motion)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalized) embeddings ``[B, embed_dim]`` of token ids ``[B, L]``."""
        return self.text_encoder(tokens)

    def forward(self, video: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both towers at once: ``(video_embeds, text_embeds)``, unnormalized."""
        return self.encode_video(video), self.encode_text(tokens)


# The published architectures, declared with their weights in vidsearch.models.catalog.
PRESETS: dict[str, dict[str, int]] = {
    name: dict(preset.architecture) for name, preset in CATALOG_PRESETS.items() if preset.family == "viclip"
}


def vision_flops(config: ViCLIPConfig, num_frames: int | None = None, cls_only_last: bool = False) -> float:
    """FLOPs (2 per multiply-add) of one clip through the vision tower's GEMMs and attention.

    Args:
        config: the architecture.
        num_frames: frames per clip (default ``config.num_frames``).
        cls_only_last: count what this port executes (the last block only for ``[CLS]``)
            instead of the official full forward.
    """
    t = num_frames or config.num_frames
    d, g = config.vision_width, config.input_resolution // config.patch_size
    n = t * g * g + 1
    patch = 2 * t * g * g * 3 * config.patch_size**2 * d

    def block(nq: int) -> int:
        qkv = 2 * nq * d * d + 2 * n * d * 2 * d
        attn = 2 * 2 * nq * n * d  # scores and weighted sum
        return qkv + attn + 2 * nq * d * d + 2 * 2 * nq * d * 4 * d  # + out_proj + MLP

    blocks = (config.vision_layers - 1) * block(n) + block(1 if cls_only_last else n)
    return float(patch + blocks + 2 * d * config.embed_dim)
