"""embed_text's fast path: one torch thread for the caption on the CPU, restored afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidsearch import search
from vidsearch.errors import InputError


class _Encoder:
    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.threads: list[int] = []

    def encode_text(self, texts):
        self.threads.append(torch.get_num_threads())
        return np.ones((len(texts), 4), np.float32) / 2.0


def test_embed_text_encodes_on_one_thread() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        enc = _Encoder("cpu")
        xq = search.embed_text(enc, " a dog ")
        assert enc.threads == [1] and torch.get_num_threads() == 2
        assert xq.shape == (4,)
        with pytest.raises(InputError, match="empty"):
            search.embed_text(enc, "  ")
    finally:
        torch.set_num_threads(before)
