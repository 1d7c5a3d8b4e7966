"""InternVideo2's caption handling: the evaluation's ``pre_text`` and its BERT WordPiece tokenizer.

The official tokenizer is a copy of the old Hugging Face ``BertTokenizer`` (uncased WordPiece,
accents stripped) changed in one way: a single sequence is ``[CLS] tokens`` with **no**
trailing ``[SEP]``, so truncation keeps ``max_length - 1`` word pieces. Captions are padded
with id 0 to ``max_length``. The same pipeline is built here from Hugging Face ``tokenizers``
(normalizer, pre-tokenizer and WordPiece model of BERT; a post-processor adding ``[CLS]`` only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from vidsearch.errors import ModelError

__all__ = ["pre_text", "WordPieceTokenizer"]

_PUNCT = re.compile(r"([,.'!?\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


def pre_text(text: str, max_words: int | None = None) -> str:
    """The official evaluation's caption cleaning (``dataset/utils.pre_text``).

    Lowercases, removes ``,.'!?"()*#:;~``, turns ``-`` and ``/`` into spaces, ``<person>`` into
    ``person``, squeezes repeated whitespace and trims; keeps the first ``max_words`` words if given.
    """
    text = _PUNCT.sub("", text.lower())
    text = text.replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = _SPACES.sub(" ", text).rstrip("\n").strip(" ")
    if max_words:
        words = text.split(" ")
        if len(words) > max_words:
            text = " ".join(words[:max_words])
    return text


class WordPieceTokenizer:
    """Uncased BERT WordPiece producing the official ``[CLS] tokens`` ids, padded to ``max_length``.

    Args:
        vocab: a ``vocab.txt`` path (one token a line, index = id) or the tokens in id order.
        max_length: tokens per caption, ``[CLS]`` included.
    """

    def __init__(self, vocab: str | os.PathLike[str] | Sequence[str], max_length: int) -> None:

        if isinstance(vocab, (str, os.PathLike)):
            try:
                tokens = Path(vocab).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ModelError(f"cannot read BERT vocabulary {vocab}: {exc.strerror}; pass a vocab.txt") from None
        else:
            tokens = list(vocab)
        ids = {tok: i for i, tok in enumerate(tokens)}
        for special in ("[PAD]", "[UNK]", "[CLS]"):
            if special not in ids:
                raise ModelError(f"BERT vocabulary has no {special} token; pass bert-large-uncased's vocab.txt")
        tok = Tokenizer(WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
        # BertTokenizer(do_lower_case=True): clean text, split CJK characters, lowercase, strip accents
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", ids["[CLS]"])])
        tok.enable_truncation(max_length)
        tok.enable_padding(length=max_length, pad_id=ids["[PAD]"], pad_token="[PAD]")
        self._tok = tok
        self.max_length = max_length

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)``, both int64 ``[B, max_length]``."""
        encs = self._tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encs], dtype=torch.long).reshape(len(encs), self.max_length)
        mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long).reshape(len(encs), self.max_length)
        return ids, mask
