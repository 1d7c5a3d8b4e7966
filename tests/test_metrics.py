"""Metrics on hand-computed cases: ties, multi-caption, rectangular matrices, DSL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidsearch.metrics import (
    dual_softmax,
    localization_metrics,
    logsumexp,
    rank_metrics,
    retrieval_metrics,
    softmax,
    temporal_iou,
    text_to_video_ranks,
    topk_accuracy,
    video_to_text_ranks,
)


def test_square_single_caption():
    sims = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.85], [0.5, 0.4, 0.6]], np.float32)
    gt = [0, 1, 2]
    assert text_to_video_ranks(sims, gt).tolist() == [1, 2, 1]
    ranks, videos = video_to_text_ranks(sims, gt)
    assert videos.tolist() == [0, 1, 2]
    assert ranks.tolist() == [1, 1, 2]
    m = retrieval_metrics(sims, gt)
    assert m["t2v"]["R@1"] == pytest.approx(200 / 3)
    assert m["t2v"]["R@5"] == 100.0
    assert m["t2v"]["MdR"] == 1.0
    assert m["t2v"]["MnR"] == pytest.approx(4 / 3)
    assert m["v2t"]["R@1"] == pytest.approx(200 / 3)
    assert m["v2t"]["count"] == 3


def test_ties_are_pessimistic():
    # a constant model must get the worst rank, not the best
    sims = np.full((4, 4), 0.25, np.float32)
    assert text_to_video_ranks(sims, [0, 1, 2, 3]).tolist() == [4, 4, 4, 4]
    assert video_to_text_ranks(sims, [0, 1, 2, 3])[0].tolist() == [4, 4, 4, 4]
    m = retrieval_metrics(sims, [0, 1, 2, 3])
    assert m["t2v"]["R@1"] == 0.0 and m["v2t"]["R@1"] == 0.0
    # one wrong video tied with the correct one: rank 2 whichever comes first
    row = np.array([[0.5, 0.5, 0.1]])
    assert text_to_video_ranks(row, [0]).tolist() == [2]
    assert text_to_video_ranks(row, [1]).tolist() == [2]
    assert text_to_video_ranks(row, [2]).tolist() == [3]


def test_multi_caption():
    # captions 0-2 describe video 0, captions 3-4 video 1
    sims = np.array(
        [
            [0.9, 0.2],
            [0.3, 0.4],
            [0.5, 0.7],
            [0.1, 0.7],
            [0.6, 0.7],
        ]
    )
    gt = [0, 0, 0, 1, 1]
    assert text_to_video_ranks(sims, gt).tolist() == [1, 2, 2, 1, 1]
    ranks, videos = video_to_text_ranks(sims, gt)
    # video 0: its best caption (0.9) is first. video 1: own best 0.7 (captions 3 and 4, tied with
    # each other, which is no harm) ties with the wrong caption 2 -> rank 2
    assert videos.tolist() == [0, 1]
    assert ranks.tolist() == [1, 2]
    m = retrieval_metrics(sims, gt)
    assert m["t2v"]["R@1"] == pytest.approx(60.0)
    assert m["t2v"]["MdR"] == 1.0 and m["t2v"]["MnR"] == pytest.approx(7 / 5)
    assert m["v2t"]["R@1"] == 50.0 and m["v2t"]["MdR"] == 1.5 and m["v2t"]["MnR"] == 1.5


def test_v2t_counts_captions_individually():
    # video 0 has one caption scoring 0.5 for it; video 1's three captions all score higher
    # on video 0: three wrong captions ahead -> rank 4 (not 2 as a per-video grouping would say)
    sims = np.array([[0.5, 0.0], [0.6, 0.9], [0.7, 0.9], [0.8, 0.9]])
    ranks, _ = video_to_text_ranks(sims, [0, 1, 1, 1])
    assert ranks.tolist() == [4, 1]


def test_rectangular_more_videos_than_captions():
    # 2 captions, 4 videos (videos 1 and 3 are distractors without captions)
    sims = np.array([[0.1, 0.2, 0.9, 0.3], [0.4, 0.5, 0.45, 0.0]])
    gt = [2, 0]
    assert text_to_video_ranks(sims, gt).tolist() == [1, 3]
    ranks, videos = video_to_text_ranks(sims, gt)
    assert videos.tolist() == [0, 2]
    assert ranks.tolist() == [1, 1]
    m = retrieval_metrics(sims, gt)
    assert m["t2v"]["count"] == 2 and m["v2t"]["count"] == 2
    assert m["t2v"]["R@1"] == 50.0 and m["t2v"]["MnR"] == 2.0


def test_rank_metrics_even_median_and_empty():
    m = rank_metrics(np.array([1, 2, 7, 20]), ks=(1, 5, 10))
    assert m == {"R@1": 25.0, "R@5": 50.0, "R@10": 75.0, "MdR": 4.5, "MnR": 7.5, "count": 4}
    empty = rank_metrics(np.array([], np.int64))
    assert empty["count"] == 0 and math.isnan(empty["R@1"])


def _dsl_by_definition(sims: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    n_t, n_v = sims.shape
    t2v = np.zeros_like(sims, dtype=np.float64)
    v2t = np.zeros_like(sims, dtype=np.float64)
    for t in range(n_t):
        for v in range(n_v):
            col = sum(math.exp(temperature * sims[u, v]) for u in range(n_t))
            row = sum(math.exp(temperature * sims[t, w]) for w in range(n_v))
            t2v[t, v] = sims[t, v] * math.exp(temperature * sims[t, v]) / col
            v2t[t, v] = sims[t, v] * math.exp(temperature * sims[t, v]) / row
    return t2v, v2t


def test_dsl_matches_definition_on_rectangular_matrix():
    rng = np.random.default_rng(0)
    sims = rng.uniform(-0.2, 0.5, size=(7, 5))
    for temperature in (1.0, 10.0, 100.0):
        t2v, v2t = dual_softmax(sims, temperature)
        ref_t2v, ref_v2t = _dsl_by_definition(sims, temperature)
        np.testing.assert_allclose(t2v, ref_t2v, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(v2t, ref_v2t, rtol=1e-9, atol=1e-12)
    gt = [0, 1, 2, 3, 4, 0, 1]
    ref_t2v, ref_v2t = _dsl_by_definition(sims, 100.0)
    got = retrieval_metrics(sims, gt, dsl=True, temperature=100.0)
    assert got["t2v"] == rank_metrics(text_to_video_ranks(ref_t2v, gt))
    assert got["v2t"] == rank_metrics(video_to_text_ranks(ref_v2t, gt)[0])


def test_dsl_discounts_a_hub_video():
    # video 0 is a hub: both captions like it. Caption 0 belongs to video 1.
    sims = np.array([[0.30, 0.28], [0.31, 0.10]])
    gt = [1, 0]
    assert text_to_video_ranks(sims, gt).tolist() == [2, 1]
    t2v, _ = dual_softmax(sims, 100.0)
    # prior of (caption 0, video 0) = softmax over captions of [30, 31] -> 1 / (1 + e)
    assert t2v[0, 0] == pytest.approx(0.30 / (1 + math.e))
    assert t2v[0, 1] == pytest.approx(0.28 / (1 + math.exp(-18)))
    assert text_to_video_ranks(t2v, gt).tolist() == [1, 1]
    assert retrieval_metrics(sims, gt, dsl=True)["t2v"]["R@1"] == 100.0


def test_topk_accuracy_pessimistic():
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # label 0: top-1
            [0.3, 0.3, 0.1],  # label 1: tied with class 0 -> not top-1, top-2
            [0.5, 0.6, 0.4],  # label 2: last
        ]
    )
    acc = topk_accuracy(scores, [0, 1, 2], ks=(1, 2, 3))
    assert acc["top1"] == pytest.approx(100 / 3)
    assert acc["top2"] == pytest.approx(200 / 3)
    assert acc["top3"] == 100.0 and acc["count"] == 3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        text_to_video_ranks(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(ValueError, match="outside"):
        text_to_video_ranks(np.zeros((1, 2)), [2])
    with pytest.raises(ValueError, match="one entry per row"):
        video_to_text_ranks(np.zeros((2, 2)), [0])


def test_agrees_with_sort_based_ranks_when_there_are_no_ties():
    # the usual argsort evaluation (ViCLIP/UMT style: v2t takes the best of a video's captions)
    rng = np.random.default_rng(1)
    n_videos = 40
    gt = np.concatenate([np.arange(n_videos), rng.integers(0, n_videos, 25)])  # multi-caption
    sims = rng.normal(size=(gt.size, n_videos + 5))  # 5 distractor videos; continuous: no ties
    t2v_sorted = np.array([1 + np.flatnonzero(np.argsort(-row) == g)[0] for row, g in zip(sims, gt, strict=False)])
    v2t_sorted = []
    for v in range(n_videos):
        order = np.argsort(-sims[:, v])
        v2t_sorted.append(1 + min(np.flatnonzero(np.isin(order, np.flatnonzero(gt == v)))))
    assert text_to_video_ranks(sims, gt).tolist() == t2v_sorted.tolist()
    ranks, videos = video_to_text_ranks(sims, gt)
    assert videos.tolist() == list(range(n_videos))
    assert ranks.tolist() == v2t_sorted


def test_temporal_iou_by_hand() -> None:
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((2, 4), (2, 4)) == 1.0
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou((0, 4), (1, 2)) == pytest.approx(0.25)


def test_localization_metrics_by_hand() -> None:
    truths = [(0.0, 10.0), (10.0, 20.0), (0.0, 4.0), (5.0, 6.0)]
    preds = [
        [(0.0, 10.0)],  # IoU 1
        [(12.0, 20.0), (10.0, 20.0)],  # top-1 IoU 0.8, top-2 exact
        [(1.0, 5.0)],  # IoU 3/5 = 0.6
        [],  # nothing: a miss with IoU 0
    ]
    m = localization_metrics(preds, truths)
    assert m["R@1,IoU=0.3"] == pytest.approx(75.0)
    assert m["R@1,IoU=0.5"] == pytest.approx(75.0)
    assert m["R@1,IoU=0.7"] == pytest.approx(50.0)
    assert m["R@5,IoU=0.7"] == pytest.approx(50.0) and m["R@5,IoU=0.5"] == pytest.approx(75.0)
    assert m["mIoU"] == pytest.approx(100 * (1.0 + 0.8 + 0.6 + 0.0) / 4)
    with pytest.raises(ValueError):
        localization_metrics(preds[:2], truths)


def test_softmax_and_logsumexp_are_stable() -> None:
    x = np.array([[1000.0, 1000.0, 999.0], [-5.0, 0.0, 5.0]])
    p = softmax(x, axis=1)
    assert np.allclose(p.sum(axis=1), 1.0) and p[0, 0] == pytest.approx(p[0, 1])
    assert np.allclose(np.log(p), x - logsumexp(x, axis=1)[:, None])
    assert logsumexp(x, axis=1)[0] == pytest.approx(1000.0 + math.log(2.0 + math.exp(-1.0)))
    assert x[0, 0] == 1000.0  # the input is left untouched
