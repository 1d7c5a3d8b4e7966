"""Retrieval agreement of every CPU precision with fp32 on the trained tiny model (issue 16, part 1).

The recommended tiny ViCLIP (:data:`vidsearch.testing.synthetic.TINY_CONFIG`) is trained briefly
(50 steps) on synthetic clips rendered in memory: the 20 colour x shape actions, 4 renders each.
Other renders of the same actions (80 clips) and their 20 captions are then encoded at fp32 and
at each precision this CPU has (int8 through ONNX Runtime; bf16 only with native bf16), and:

* every clip and caption embedding has cosine >= 0.999 with fp32's (the tolerance of
  tests/test_precision.py and the README);
* the top-10 set of every query (text->video and video->text) overlaps fp32's by >= 0.98 on
  average (the issue's R@10 agreement).

Why 20 actions and not all 80: a model this briefly trained has not learnt motion direction, so
the captions that differ only in it ("... moving left" / "... moving right") embed almost alike
(rank-10/11 gaps of ~1e-4 in video->text), and their order flips under any perturbation, bf16's
(cosine 0.99999) included: top-k agreement measures the eval set's ties there, not the precision.
On the 20 actions the model tells apart, the gaps are ~3e-3 (text->video) and ~1e-2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidsearch.precision import cpu_has_native_bf16
from vidsearch.testing import synthetic as S

MIN_OVERLAP = 0.98  # mean |top10(p) & top10(fp32)| / 10 per query
MIN_COSINE = 0.999  # per clip and per caption
TOP = 10
RENDERS = 4  # clips per action
EPOCHS, LR = 10, 1e-3  # 50 steps of 16 clips: ~15 CPU-seconds on one thread
SIZE, FRAMES = S.TINY_CONFIG["input_resolution"], 8


def _precisions(*int8_marks: pytest.MarkDecorator) -> list:
    """int8 (with ``int8_marks``) and bf16, each skipped with the reason where this machine lacks it."""
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401

        int8 = pytest.param("int8", marks=list(int8_marks))
    except ImportError:
        int8 = pytest.param(
            "int8", marks=pytest.mark.skip(reason="ONNX Runtime/onnxscript not installed (pip install -e '.[fast]')")
        )
    bf16 = pytest.param(
        "bf16",
        marks=pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX)"),
    )
    return [int8, bf16]


def _render(actions: list[S.Action], seed: int) -> np.ndarray:
    """uint8 ``[N, FRAMES, SIZE, SIZE, 3]`` clips of ``actions``, each from its own seeded generator."""
    return np.stack(
        [
            S.render_clip(a, np.random.default_rng([seed, i]), size=SIZE, num_frames=FRAMES)
            for i, a in enumerate(actions)
        ]
    )


def _actions() -> list[S.Action]:
    """The 20 colour x shape actions, each with one direction (what a briefly trained model tells apart)."""
    directions = list(S.DIRECTIONS)
    return [S.Action(c, s, directions[(i + j) % 4]) for i, c in enumerate(S.COLOURS) for j, s in enumerate(S.SHAPES)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A briefly trained tiny checkpoint, and held-out clips and the captions of its actions."""
    from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
    from vidsearch.models.weights import save_checkpoint
    from vidsearch.train.data import Clip, build_frame_cache
    from vidsearch.train.loop import TrainConfig, Trainer

    tmp = tmp_path_factory.mktemp("agreement")
    actions = _actions()
    train_actions = [a for a in actions for _ in range(RENDERS)]
    frames = _render(train_actions, seed=1)
    videos = [tmp / f"train{i:03d}.mp4" for i in range(len(train_actions))]  # names only: frames come from `decode`
    row = {v: i for i, v in enumerate(videos)}
    cache = build_frame_cache(
        videos,
        tmp / "cache.npy",
        cache_frames=FRAMES,
        resolution=SIZE,
        max_bytes=10**9,
        decode=lambda path, count, res: frames[row[Path(path)]],
    )
    clips = [Clip(v, a.caption) for v, a in zip(videos, train_actions, strict=False)]
    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig(**S.TINY_CONFIG))
    cfg = TrainConfig(
        epochs=EPOCHS, lr=LR, batch_size=16, num_frames=S.TINY_CONFIG["num_frames"], temp_init=0.07, warmup=0.1
    )
    history = Trainer(model, cfg, clips, cache).fit()
    assert history[-1].loss < history[0].loss  # it did learn something
    ckpt = save_checkpoint(model.eval(), tmp / "trained.pth", model.config)
    # The same actions, other renders, at the model's 4 frames spread over the clip (as the index samples).
    held_out = _render(train_actions, seed=2)[:, :: FRAMES // S.TINY_CONFIG["num_frames"]]
    return {
        "checkpoint": str(ckpt),
        "clips": held_out,
        "owner": np.repeat(np.arange(len(actions)), RENDERS),
        "captions": [a.caption for a in actions],
    }


def _encode(checkpoint: str, precision: str, clips: np.ndarray, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from vidsearch.models import EncoderSpec, open_encoder

    enc = open_encoder(EncoderSpec(checkpoint, device="cpu", precision=precision))
    assert enc.key.endswith("" if precision == "fp32" else f"+{precision}")
    return enc.encode_video(clips), enc.encode_text(captions)


def _top_sets(q: np.ndarray, x: np.ndarray) -> list[set[int]]:
    order = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :TOP]
    return [set(r.tolist()) for r in order]


def _overlap(a: list[set[int]], b: list[set[int]]) -> float:
    return float(np.mean([len(x & y) / TOP for x, y in zip(a, b, strict=False)]))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def encoded(trained: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``precision -> (clip embeddings, caption embeddings)``, fp32 first; each precision encoded once."""
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(precision: str) -> tuple[np.ndarray, np.ndarray]:
        if precision not in cache:
            cache[precision] = _encode(trained["checkpoint"], precision, trained["clips"], trained["captions"])
        return cache[precision]

    return get  # type: ignore[return-value]


def test_the_trained_model_retrieves(trained: dict, encoded) -> None:
    v32, t32 = encoded("fp32")
    # Far above chance (TOP of 80 clips hold 4 relevant ones 12.5% of the time): the sets compared carry structure.
    hits = np.mean(
        [
            len(s & set(np.flatnonzero(trained["owner"] == i).tolist())) / RENDERS
            for i, s in enumerate(_top_sets(t32, v32))
        ]
    )
    assert hits >= 2 * TOP / len(v32), hits


@pytest.mark.parametrize("precision", _precisions())
def test_embeddings_within_tolerance_of_fp32(encoded, precision: str) -> None:
    (v32, t32), (v, t) = encoded("fp32"), encoded(precision)
    assert v.dtype == np.float32 and v.shape == v32.shape and t.shape == t32.shape
    assert _cos(v, v32).min() >= MIN_COSINE and _cos(t, t32).min() >= MIN_COSINE, (
        _cos(v, v32).min(),
        _cos(t, t32).min(),
    )


# int8 passes here because the quantizer keeps the patch embedding and the output projection
# fp32 (vidsearch.models.onnx_text.edge_matmuls); quantizing every MatMul gave text->video 0.975.
@pytest.mark.parametrize("precision", _precisions())
def test_top10_sets_agree_with_fp32(encoded, precision: str) -> None:
    (v32, t32), (v, t) = encoded("fp32"), encoded(precision)
    t2v, v2t = _overlap(_top_sets(t, v), _top_sets(t32, v32)), _overlap(_top_sets(v, t), _top_sets(v32, t32))
    assert t2v >= MIN_OVERLAP and v2t >= MIN_OVERLAP, (t2v, v2t)
