"""The InternVideo2 BERT: text layers for the contrastive feature, fusion layers for matching.

The official ``xbert.BertModel`` in two modes: ``text`` runs the embeddings and the first
``fusion_layer`` layers (their ``[CLS]`` gives the ITC text feature); ``fusion`` runs the
remaining layers on those hidden states, each adding cross-attention from the text tokens to
the vision tokens (keys/values of the vision width), for the ITM head. Parameter names are the
official ones (``bert.embeddings.*``, ``bert.encoder.layer.N.*``); the MLM head is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BertConfig", "BertTextFusion", "extended_mask"]

# xbert adds -10000 to masked logits (not finfo.min): a fully masked row stays finite
MASK_VALUE = -10000.0


@dataclass(frozen=True)
class BertConfig:
    """Sizes of the text/fusion encoder (defaults: bert-large with the Stage-2 1B fusion split).

    Attributes:
        vocab_size: word-piece vocabulary size.
        hidden: hidden width.
        layers: total layers.
        fusion_layer: index of the first cross-attention layer (= number of text-only layers).
        heads: attention heads.
        intermediate: FFN hidden size.
        max_positions: position table length.
        encoder_width: width of the vision tokens the fusion layers attend to.
        eps: LayerNorm epsilon.
    """

    vocab_size: int = 30522
    hidden: int = 1024
    layers: int = 24
    fusion_layer: int = 19
    heads: int = 16
    intermediate: int = 4096
    max_positions: int = 512
    encoder_width: int = 1408
    eps: float = 1e-12


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 1/0 ``[B, L]`` mask as the additive ``[B, 1, 1, L]`` attention bias xbert uses."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * MASK_VALUE


class Embeddings(nn.Module):
    """Word + absolute position + token type (all 0) embeddings, then LayerNorm."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(cfg.max_positions, cfg.hidden)
        self.token_type_embeddings = nn.Embedding(2, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    """Multi-head attention with biased q/k/v; keys/values may come from another width."""

    def __init__(self, cfg: BertConfig, kv_width: int) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.query = nn.Linear(cfg.hidden, cfg.hidden)
        self.key = nn.Linear(kv_width, cfg.hidden)
        self.value = nn.Linear(kv_width, cfg.hidden)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        h = self.heads
        q = self.query(x).view(b, n, h, c // h).transpose(1, 2)
        k = self.key(memory).view(b, -1, h, c // h).transpose(1, 2)
        v = self.value(memory).view(b, -1, h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return out.transpose(1, 2).reshape(b, n, c)


class AddNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)`` (BERT's ``SelfOutput`` / ``Output``)."""

    def __init__(self, width_in: int, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(width_in, cfg.hidden)
        self.LayerNorm = nn.LayerNorm(cfg.hidden, eps=cfg.eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class AttentionBlock(nn.Module):
    """Attention then its output projection, residual and LayerNorm."""

    def __init__(self, cfg: BertConfig, kv_width: int) -> None:
        super().__init__()
        self.self = SelfAttention(cfg, kv_width)
        self.output = AddNorm(cfg.hidden, cfg)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, memory, bias), x)


class Intermediate(nn.Module):
    """FFN up-projection with exact GELU."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.intermediate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    """A BERT layer; layers from ``fusion_layer`` on also cross-attend to the vision tokens."""

    def __init__(self, cfg: BertConfig, cross: bool) -> None:
        super().__init__()
        self.attention = AttentionBlock(cfg, cfg.hidden)
        self.crossattention = AttentionBlock(cfg, cfg.encoder_width) if cross else None
        self.intermediate = Intermediate(cfg)
        self.output = AddNorm(cfg.intermediate, cfg)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor,
        memory: torch.Tensor | None = None,
        memory_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.attention(x, x, bias)
        if self.crossattention is not None:
            if memory is None:
                raise ValueError("a fusion layer needs the vision tokens")
            x = self.crossattention(x, memory, memory_bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    """The stack of layers (named ``layer`` as in BERT)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(cfg, cross=i >= cfg.fusion_layer) for i in range(cfg.layers))


class BertBody(nn.Module):
    """Embeddings and the encoder stack (the official ``text_encoder.bert``)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.embeddings = Embeddings(cfg)
        self.encoder = Encoder(cfg)


class BertTextFusion(nn.Module):
    """The official ``text_encoder`` (``BertForMaskedLM`` without its MLM head)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.bert = BertBody(cfg)

    def text_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        """``mode="text"``: the embeddings and each text-only layer's output, ``fusion_layer + 1`` tensors."""
        h = self.bert.embeddings(input_ids)
        bias = extended_mask(attention_mask, h.dtype)
        states = [h]
        for layer in self.bert.encoder.layer[: self.config.fusion_layer]:
            h = layer(h, bias)
            states.append(h)
        return states

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The last text-only hidden states ``[B, L, hidden]`` (token 0 is the ITC ``[CLS]``)."""
        return self.text_states(input_ids, attention_mask)[-1]

    def fusion_states(
        self, text: torch.Tensor, attention_mask: torch.Tensor, vision: torch.Tensor
    ) -> list[torch.Tensor]:
        """``mode="fusion"``: the input and each fusion layer's output (text attending to ``vision``).

        Args:
            text: text-only hidden states ``[B, L, hidden]`` (from :meth:`encode_text`).
            attention_mask: the text's 1/0 mask ``[B, L]``.
            vision: vision tokens ``[B, N, encoder_width]``, all attended to (the official
                evaluation's all-ones memory mask adds 0).
        """
        bias = extended_mask(attention_mask, text.dtype)
        states = [text]
        h = text
        for layer in self.bert.encoder.layer[self.config.fusion_layer :]:
            h = layer(h, bias, vision.to(h.dtype), None)
            states.append(h)
        return states


def fusion_flops(cfg: BertConfig, text_len: int, vision_tokens: int) -> float:
    """FLOPs of one (caption, video) pair through the fusion layers (the ITM cost per candidate)."""
    h, n, L = cfg.hidden, vision_tokens, text_len
    self_attn = 2 * L * h * 3 * h + 2 * 2 * L * L * h + 2 * L * h * h
    cross = 2 * L * h * h + 2 * 2 * n * cfg.encoder_width * h + 2 * 2 * L * n * h + 2 * L * h * h
    ffn = 2 * 2 * L * h * cfg.intermediate
    return float((cfg.layers - cfg.fusion_layer) * (self_attn + cross + ffn))
