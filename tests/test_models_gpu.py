"""GPU paths behind capability checks: their CPU fallbacks, and the shapes they guarantee."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidsearch.errors import ModelError
from vidsearch.models.gpu import (
    COMPILE_MODES,
    FixedBatchEncoder,
    PinnedPrefetcher,
    compile_towers,
    pad_batch,
    pick_compile_mode,
)


def test_pad_batch() -> None:
    x = np.arange(6).reshape(3, 2)
    padded, n = pad_batch(x, 5)
    assert n == 3 and padded.shape == (5, 2)
    np.testing.assert_array_equal(padded[3:], [[4, 5], [4, 5]])
    assert pad_batch(x, 3)[0] is x
    with pytest.raises(ValueError, match="do not fit"):
        pad_batch(x, 2)


def test_fixed_batch_encoder_sees_one_shape_and_matches(tiny_checkpoint: Path) -> None:
    from vidsearch.models import EncoderSpec, open_encoder

    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    shapes = []
    inner = enc.encode_video

    def spy(frames):
        shapes.append(np.asarray(frames).shape[0])
        return inner(frames)

    enc.encode_video = spy
    fixed = FixedBatchEncoder(enc, batch=4)
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (7, enc.num_frames, enc.resolution, enc.resolution, 3), dtype=np.uint8)
    out = fixed.encode_video(clips)
    assert shapes == [4, 4] and out.shape == (7, enc.embed_dim)
    np.testing.assert_allclose(out, inner(clips), atol=1e-5)
    assert fixed.key == enc.key  # everything else is the encoder's
    with pytest.raises(ModelError, match="at least 1"):
        FixedBatchEncoder(enc, batch=0)


def test_compile_is_skipped_on_cpu(tiny_checkpoint: Path) -> None:
    from vidsearch.models import EncoderSpec, open_encoder

    enc = open_encoder(EncoderSpec(str(tiny_checkpoint), device="cpu"))
    vision = enc.model.vision_encoder
    assert compile_towers(enc.model, torch.device("cpu"), "reduce-overhead").vision_encoder is vision
    with pytest.raises(ModelError, match="choose one of"):
        compile_towers(enc.model, torch.device("cpu"), "turbo")


def test_pick_compile_mode_takes_the_fastest() -> None:
    import time

    delays = {"default": 0.004, "reduce-overhead": 0.001, "max-autotune-no-cudagraphs": 0.008}

    def run(mode: str):
        if mode == "max-autotune-no-cudagraphs":
            raise RuntimeError("backend unavailable")
        return lambda: time.sleep(delays[mode])

    best, timings = pick_compile_mode(run, COMPILE_MODES, repeats=2)
    assert best == "reduce-overhead" and set(timings) == {"default", "reduce-overhead"}
    with pytest.raises(ModelError, match="no torch.compile mode ran"):
        pick_compile_mode(lambda m: (_ for _ in ()).throw(RuntimeError("x")), ["default"])


def test_prefetcher_cpu_fallback_yields_the_arrays() -> None:
    arrays = [np.full((2, 3), i, dtype=np.uint8) for i in range(3)]
    got = list(PinnedPrefetcher(arrays, torch.device("cpu")))
    assert [int(t[0, 0]) for t in got] == [0, 1, 2] and all(isinstance(t, torch.Tensor) for t in got)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_prefetcher_on_cuda_keeps_order_and_values() -> None:
    arrays = [np.random.default_rng(i).integers(0, 255, (4, 8), dtype=np.uint8) for i in range(4)]
    got = [t.cpu().numpy() for t in PinnedPrefetcher(arrays, torch.device("cuda"))]
    for a, b in zip(arrays, got, strict=False):
        np.testing.assert_array_equal(a, b)
