"""CLIP's byte-level BPE tokenizer in plain Python + numpy: no torch, open_clip or timm.

A text query must not pay for torch and timm just to turn a caption into 32 token ids, so this
module restates OpenAI's ``SimpleTokenizer`` as open_clip ships it (``open_clip.tokenizer``,
``clean="lower"``): ``ftfy.fix_text``, HTML unescaped twice, whitespace collapsed, lower case,
the CLIP pre-tokenizer regex, then byte-level BPE over ``bpe_simple_vocab_16e6.txt.gz``.
Token parity with open_clip is tested on the parity fixtures and on a fuzzed corpus.

The vocabulary file is read from the installed open_clip package *without importing it*
(``importlib.util.find_spec`` only locates the folder), or from ``VIDSEARCH_BPE_VOCAB``.

One deliberate detail: like open_clip (and unlike OpenAI's original, whose pattern matches
``<|startoftext|>``), the literal strings ``<start_of_text>``/``<end_of_text>`` in a caption are
matched as the special tokens, since that is what the models were queried with so far.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidsearch.errors import ModelError
from vidsearch.settings import VOCAB_ENV, settings

__all__ = ["BPETokenizer", "tokenize", "vocab_path", "SOT_TOKEN", "EOT_TOKEN", "VOCAB_ENV"]

LOG = logging.getLogger(__name__)

SOT_TOKEN = 49406  # <start_of_text>
EOT_TOKEN = 49407  # <end_of_text>
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
# The vocabulary is 256 bytes, the same 256 with an end-of-word mark, 48,894 merges and the two
# special tokens: 49,408 ids, ViCLIPConfig.vocab_size.
N_MERGES = 49152 - 256 - 2
_SPECIALS = ("<start_of_text>", "<end_of_text>")
_PATTERN = "|".join(_SPECIALS) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def vocab_path() -> Path:
    """The BPE merges file: ``VIDSEARCH_BPE_VOCAB``, else the copy inside the open_clip package.

    Raises:
        ModelError: neither exists (names both and what to install).
    """
    env = settings().bpe_vocab
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ModelError(f"{VOCAB_ENV}={env} is not a file; point it at {VOCAB_FILE} or unset it")
        return path
    spec = importlib.util.find_spec("open_clip")  # locates the package, runs none of its code
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise ModelError(f"CLIP's BPE vocabulary {VOCAB_FILE} was not found: install open_clip_torch or set {VOCAB_ENV}")


@functools.lru_cache(maxsize=1)
def _byte_alphabet() -> dict[int, str]:
    """Byte -> printable unicode character, CLIP's reversible byte-to-unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=False))


def _needs_ftfy(text: str) -> bool:
    """False where ``ftfy.fix_text`` is the identity: printable ASCII without ``&``.

    Every ftfy fix acts on non-ASCII text, control characters, ``\\r`` or HTML entities, so a
    plain typed query skips importing ftfy (~0.1 s of a cold query); the fuzzed parity test
    covers both branches.
    """
    return not (text.isascii() and text.isprintable() and "&" not in text)


def _clean(text: str) -> str:
    """open_clip's ``clean="lower"``: ftfy, HTML unescaped twice, whitespace collapsed, lower case."""
    if _needs_ftfy(text):
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


def _read_merges(path: Path) -> list[str]:
    """The merge lines (``"first second"``) of the gzipped vocabulary, in rank order.

    Only the first 48,894 lines are merges the model uses, about an eighth of the file, so the
    stream is decompressed only that far.
    """
    inflate = zlib.decompressobj(wbits=31)  # gzip container
    chunks: list[bytes] = []
    newlines = 0
    with open(path, "rb") as f:
        while newlines <= N_MERGES and (block := f.read(1 << 16)):
            chunks.append(inflate.decompress(block))
            newlines += chunks[-1].count(b"\n")
    lines = b"".join(chunks).decode("utf-8").split("\n", N_MERGES + 1)
    if len(lines) < N_MERGES + 2:
        raise ValueError(f"{len(lines) - 1} merges where {N_MERGES} were expected")
    return lines[1 : N_MERGES + 1]


class BPETokenizer:
    """CLIP's byte-level BPE (the official ``SimpleTokenizer``'s ``encode``), numpy output.

    Args:
        path: the gzipped merges file (default: :func:`vocab_path`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        import regex

        path = Path(path) if path is not None else vocab_path()
        try:
            merges = _read_merges(path)
        except (OSError, UnicodeDecodeError, ValueError, zlib.error) as exc:
            raise ModelError(f"cannot read the BPE vocabulary {path}: {exc}; reinstall open_clip_torch") from None
        self.byte_encoder = _byte_alphabet()
        alphabet = list(self.byte_encoder.values())
        vocab = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in merges] + list(_SPECIALS)
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        # Ranks keyed by the merge line itself ("first second"): symbols never hold a space (the
        # byte alphabet maps it to another character), and the lines need no further splitting.
        self.bpe_ranks: dict[str, int] = {m: i for i, m in enumerate(merges)}
        self.cache: dict[str, str] = {t: t for t in _SPECIALS}
        self.pattern = regex.compile(_PATTERN, regex.IGNORECASE)
        self.vocab_size = len(self.encoder)

    def bpe(self, token: str) -> str:
        """Merge one pre-token (already byte-mapped) into space-separated BPE symbols."""
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        ranks = self.bpe_ranks
        while len(word) > 1:
            pairs = {(a, b): f"{a} {b}" for a, b in zip(word, word[1:], strict=False)}
            bigram = min(pairs, key=lambda p: ranks.get(pairs[p], N_MERGES))
            if pairs[bigram] not in ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of one caption, without the start/end tokens."""
        ids: list[int] = []
        for piece in self.pattern.findall(_clean(text)):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[sym] for sym in self.bpe(mapped).split(" "))
        return ids

    def __call__(self, texts: str | Sequence[str], context_length: int = 32) -> np.ndarray:
        """Token ids ``[N, context_length]`` (int64), zero padded; see :func:`tokenize`."""
        if isinstance(texts, str):
            texts = [texts]
        if context_length < 2:
            raise ValueError(f"context_length must be at least 2, got {context_length}")
        out = np.zeros((len(texts), context_length), dtype=np.int64)
        for i, text in enumerate(texts):
            # Truncation keeps the end-of-text token last, as the official truncate=True does.
            ids = [SOT_TOKEN, *self.encode(text)][: context_length - 1] + [EOT_TOKEN]
            out[i, : len(ids)] = ids
        return out


@functools.lru_cache(maxsize=1)
def _default() -> BPETokenizer:
    return BPETokenizer()


def tokenize(texts: str | Sequence[str], context_length: int = 32) -> np.ndarray:
    """Token ids ``[N, context_length]`` (int64 numpy), zero padded, as ViCLIP tokenizes.

    A caption longer than the context is truncated and its last token replaced by the
    end-of-text token (the official ``tokenize(..., truncate=True)``).

    Args:
        texts: one caption or a sequence of captions.
        context_length: tokens per row (ViCLIP was trained with 32).
    """
    return _default()(texts, context_length)
