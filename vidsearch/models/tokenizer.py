"""CLIP BPE tokenization exactly as ViCLIP's ``CLIP_TEXT.tokenize`` does it, as torch tensors.

The tokenizer itself is :mod:`vidsearch.models.bpe` (OpenAI's ``SimpleTokenizer`` restated
without torch/open_clip/timm, token parity tested against open_clip); this module only hands
its ids to the PyTorch towers as a ``torch.long`` tensor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from vidsearch.models import bpe
from vidsearch.models.bpe import EOT_TOKEN, SOT_TOKEN

__all__ = ["tokenize", "SOT_TOKEN", "EOT_TOKEN"]

LOG = logging.getLogger(__name__)


def tokenize(texts: str | Sequence[str], context_length: int = 32) -> torch.Tensor:
    """Token ids ``[N, context_length]`` (int64), zero padded.

    A caption longer than the context is truncated and its last token replaced by the
    end-of-text token, as the official ``tokenize(..., truncate=True)`` does. (The official
    code returns int32; the values are identical.)

    Args:
        texts: one caption or a sequence of captions.
        context_length: tokens per row (ViCLIP was trained with 32).
    """
    return torch.from_numpy(bpe.tokenize(texts, context_length))
