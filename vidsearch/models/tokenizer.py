"""CLIP BPE tokenization exactly as ViCLIP's ``CLIP_TEXT.tokenize`` does it.

The official tokenizer is OpenAI's ``SimpleTokenizer`` (ftfy fix, HTML unescape, whitespace
collapse, lower case, byte-level BPE over ``bpe_simple_vocab_16e6``). open_clip ships the same
tokenizer and vocabulary file, so we use it rather than vendor a copy. It is imported on first
use only: open_clip pulls in timm and torchvision, which the CLI should not pay for at start-up.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["tokenize", "SOT_TOKEN", "EOT_TOKEN"]

LOG = logging.getLogger(__name__)

SOT_TOKEN = 49406  # <|startoftext|>
EOT_TOKEN = 49407  # <|endoftext|>


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from open_clip.tokenizer import SimpleTokenizer

    # clean="lower" is the original CLIP cleaning: ftfy + html unescape + whitespace + lower().
    return SimpleTokenizer(context_length=None, clean="lower")


def tokenize(texts: str | Sequence[str], context_length: int = 32) -> torch.Tensor:
    """Token ids ``[N, context_length]`` (int64), zero padded.

    A caption longer than the context is truncated and its last token replaced by the
    end-of-text token, as the official ``tokenize(..., truncate=True)`` does. (The official
    code returns int32; the values are identical.)

    Args:
        texts: one caption or a sequence of captions.
        context_length: tokens per row (ViCLIP was trained with 32).
    """
    if isinstance(texts, str):
        texts = [texts]
    if context_length < 2:
        raise ValueError(f"context_length must be at least 2, got {context_length}")
    tok = _tokenizer()
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [SOT_TOKEN, *tok.encode(text)][: context_length - 1] + [EOT_TOKEN]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out
