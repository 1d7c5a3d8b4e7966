"""The torch-free CLIP tokenizer: exact token parity with the official tokenization.

Ground truth is the parity fixture (the official ViCLIP tokenization, context 32) and open_clip's
``SimpleTokenizer(clean="lower")`` on a seeded fuzzed corpus: unicode of many scripts, mojibake
that ftfy repairs, HTML entities, punctuation runs, odd whitespace, contractions, long strings.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidsearch.errors import ModelError
from vidsearch.models import bpe

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "viclip"

# Pieces the fuzzer glues together; each stresses one stage of the cleaning or the BPE.
PIECES = [
    "a",
    "dog",
    "Catching",
    "FRISBEE",
    "basketball",
    "don't",
    "it's",
    "we'll",
    "they're",
    "I'm",
    "you've",
    "he'd",
    "'s",
    "'T",
    "''",
    "café",
    "naïve",
    "Ünïcödé",
    "straße",
    "Æsir",
    "İstanbul",
    "ǅ",
    "ﬁne",
    "Ⅻ",
    "²",
    "½",
    "٣",
    "一个人在打篮球",
    "東京タワー",
    "한국어",
    "Ελληνικά",
    "русский",
    "עברית",
    "العربية",
    "हिन्दी",
    "ไทย",
    "🙂",
    "👍🏽",
    "🏳️‍🌈",
    "e\u0301",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\u00ad",
    "\u2028",
    "cafÃ©",
    "Ã¼ber",
    "â€œquotedâ€\x9d",
    "donâ€™t",  # mojibake ftfy repairs
    "&amp;",
    "&lt;b&gt;",
    "&#39;",
    "&#x27;",
    "&nbsp;",
    "&amp;amp;",
    "&quot;hi&quot;",
    "&copy;",
    "&bogus;",
    "!!!",
    "...",
    "?!",
    "--",
    "(x)",
    "[y]",
    "{z}",
    "#tag",
    "@user",
    "$5.99",
    "100%",
    "3.14",
    "1,000",
    "a/b",
    "<html>",
    "_",
    "__init__",
    "~",
    "`",
    "^",
    "|",
    "\\",
    '"',
    "«»",
    "—",
    "…",
    "·",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u00a0",
    "\u3000",
    "\u2003",
    "<start_of_text>",
    "<end_of_text>",
    "<|endoftext|>",
    "0",
    "12345678901234567890",
    "x" * 60,
    "supercalifragilisticexpialidocious",
    "ab" * 40,
]


def _fuzz_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    corpus = ["", " ", "\n\t ", "A", "hello world", "  leading and trailing  "]
    for _ in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 20, 60])
        parts = [rng.choice(PIECES) for _ in range(k)]
        glue = rng.choice(["", " ", " ", "\t", "-"])
        text = glue.join(parts)
        if rng.random() < 0.2:  # random code points, kept valid for UTF-8 (no lone surrogates)
            text += "".join(
                chr(
                    rng.choice(
                        [rng.randrange(32, 0x2FF), rng.randrange(0x3000, 0x9FFF), rng.randrange(0x1F300, 0x1FAFF)]
                    )
                )
                for _ in range(rng.randrange(1, 12))
            )
        corpus.append(text)
    return corpus


@pytest.fixture(scope="module")
def official():
    open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")
    return open_clip_tokenizer.SimpleTokenizer(context_length=None, clean="lower")


def _official_rows(tok, texts: list[str], context_length: int) -> np.ndarray:
    out = np.zeros((len(texts), context_length), dtype=np.int64)
    for i, text in enumerate(texts):
        ids = [tok.sot_token_id, *tok.encode(text)][: context_length - 1] + [tok.eot_token_id]
        out[i, : len(ids)] = ids
    return out


@pytest.mark.skipif(not (FIXTURES / "tiny_expected.pth").is_file(), reason=f"parity fixtures not found at {FIXTURES}")
def test_fixture_tokens_match_the_official_tokenization() -> None:
    torch = pytest.importorskip("torch")
    expected = torch.load(FIXTURES / "tiny_expected.pth", map_location="cpu", weights_only=False)
    got = bpe.tokenize(expected["captions"], context_length=32)
    assert got.dtype == np.int64 and got.shape == (6, 32)
    np.testing.assert_array_equal(got, expected["tokens"].numpy())


def test_fuzzed_corpus_matches_open_clip(official) -> None:
    corpus = _fuzz_corpus(1500)
    tok = bpe.BPETokenizer()
    # Untruncated ids first (long strings, every merge), then the padded rows at two contexts.
    for text in corpus:
        assert tok.encode(text) == official.encode(text), repr(text)
    for context_length in (32, 77):
        np.testing.assert_array_equal(tok(corpus, context_length), _official_rows(official, corpus, context_length))


def test_vocabulary_and_special_tokens(official) -> None:
    tok = bpe.BPETokenizer()
    assert tok.vocab_size == 49408 == official.vocab_size
    assert tok.encoder == official.encoder
    row = bpe.tokenize("", context_length=4)
    np.testing.assert_array_equal(row, [[bpe.SOT_TOKEN, bpe.EOT_TOKEN, 0, 0]])
    long = bpe.tokenize("word " * 100, context_length=8)
    assert long[0, -1] == bpe.EOT_TOKEN and (long[0] != 0).all()
    with pytest.raises(ValueError, match="context_length"):
        bpe.tokenize("x", context_length=1)


def test_vocab_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(bpe.VOCAB_ENV, str(tmp_path / "missing.txt.gz"))
    with pytest.raises(ModelError, match=bpe.VOCAB_ENV):
        bpe.vocab_path()
    bad = tmp_path / "bad.txt.gz"
    bad.write_bytes(b"not gzip")
    monkeypatch.setenv(bpe.VOCAB_ENV, str(bad))
    with pytest.raises(ModelError, match="cannot read the BPE vocabulary"):
        bpe.BPETokenizer()


def test_tokenizing_imports_neither_torch_nor_open_clip() -> None:
    code = (
        "import sys\n"
        "from vidsearch.models.bpe import tokenize\n"
        "tokenize(['a dog'])\n"
        "bad = sorted(m for m in ('torch', 'open_clip', 'timm', 'ftfy') if m in sys.modules)  # ftfy: plain ASCII needs none\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
