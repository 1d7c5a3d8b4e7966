"""Retrieval and recognition metrics, computed the way video-text papers report them.

All functions take a similarity matrix ``sims`` of shape ``[n_texts, n_videos]`` (rows are
captions, columns are videos; a larger value means a better match) and the ground truth
``text_to_video``: for each caption, the column of its video. Several captions may share one
video (MSR-VTT full, VATEX: multi-caption ground truth), and there may be columns that no
caption points to (distractor videos), so the matrix may be rectangular either way.

Ranks are 1-based (rank 1 is a hit at the top), as in CLIP4Clip and the papers that follow it.
Recall@K is a percentage, MdR is the median rank (``numpy.median``: the mean of the two middle
ranks for an even count) and MnR the mean rank.

**Text to video.** Each caption ranks all videos; its rank is the position of its one video.

**Video to text.** Each video ranks all captions; its rank is the position of the *best-ranked*
of its own captions (the first correct caption in the list). This is the ViCLIP/UMT evaluation
convention: every other caption counts individually. (CLIP4Clip's multi-sentence code instead
ranks *groups* of captions by their best member, which can only give smaller ranks; it gives
the same result when each video has one caption.) Videos without any caption have no v2t rank
and are left out of the v2t metrics.

**Ties are pessimistic.** A candidate with exactly the same score as the correct item is
counted as ranked ahead of it: the rank is the number of wrong candidates scoring ``>=`` the
correct one, plus one. A sort-based evaluation (``argsort`` then "where is the correct
index") breaks ties by position, which silently favours whichever item happens to come first;
a model that outputs constant similarities would then score R@1 = 100 on a diagonal ground
truth. Here it scores the worst possible rank instead. Ties among a video's *own* captions do
not hurt it: they are all correct.

**DSL** (dual softmax, Cheng et al., "Improving Video-Text Retrieval by Multi-Stream Corpus
Alignment and Dual Softmax Loss", arXiv 2109.04290, used at inference by CLIP4Clip follow-ups
and InternVideo): each similarity is multiplied by a prior, the softmax of the temperature-scaled
similarities taken along the *other* axis, so that a video that matches every caption well is
discounted. For text->video ranking the prior of ``sims[t, v]`` is the softmax over captions
(``axis=0``) of ``temperature * sims[:, v]``; for video->text ranking it is the softmax over
videos (``axis=1``) of ``temperature * sims[t, :]``. The reference implementations multiply by a
constant (the matrix length) as well, which changes no ranking and is left out here. With
cosine similarities the usual temperature is 100 (CLIP's logit scale).

**Open set.** :func:`auroc` is the probability that a random known video scores above a random
unknown one, ties counting one half (the threshold-free open-set figure of the literature).

**Localization**, Charades-STA style (:func:`localization_metrics`): R@K at IoU m is the share of
queries with a top-K span of temporal IoU (:func:`temporal_iou`) >= m with the ground truth; mIoU
is the mean IoU of the top-1 span.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from vidsearch.errors import InputError

__all__ = [
    "text_to_video_ranks",
    "video_to_text_ranks",
    "rank_metrics",
    "retrieval_metrics",
    "dual_softmax",
    "topk_accuracy",
    "softmax",
    "logsumexp",
    "auroc",
    "open_set_macro_f1",
    "temporal_iou",
    "localization_metrics",
    "DEFAULT_KS",
    "DSL_TEMPERATURE",
    "IOU_THRESHOLDS",
]

LOG = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DSL_TEMPERATURE = 100.0  # CLIP's logit scale: cosine similarities live in [-1, 1]
IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)  # Charades-STA's IoU thresholds m


def _check(sims: np.ndarray, text_to_video: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sims = np.asarray(sims)
    gt = np.asarray(text_to_video)
    if sims.ndim != 2:
        raise ValueError(f"sims must be a 2-D [n_texts, n_videos] matrix, got shape {sims.shape}")
    if gt.ndim != 1 or gt.shape[0] != sims.shape[0]:
        raise ValueError(f"text_to_video must have one entry per row of sims ({sims.shape[0]}), got shape {gt.shape}")
    if gt.size and not np.issubdtype(gt.dtype, np.integer):
        raise ValueError(f"text_to_video must hold integer column indices, got dtype {gt.dtype}")
    if gt.size and (gt.min() < 0 or gt.max() >= sims.shape[1]):
        raise ValueError(f"text_to_video has indices outside [0, {sims.shape[1]})")
    if np.isnan(sims).any():
        # NaN compares false with everything, which would silently give perfect ranks
        raise ValueError("sims contains NaN")
    if not np.issubdtype(sims.dtype, np.floating):
        sims = sims.astype(np.float64)
    return sims, gt.astype(np.int64)


def text_to_video_ranks(sims: np.ndarray, text_to_video: Sequence[int] | np.ndarray) -> np.ndarray:
    """1-based rank of each caption's video among all videos (ties pessimistic).

    Args:
        sims: ``[n_texts, n_videos]`` similarities.
        text_to_video: ``[n_texts]`` column of each caption's video.

    Returns:
        int64 ``[n_texts]``: the number of videos scoring ``>=`` the correct one (itself included).
    """
    sims, gt = _check(sims, text_to_video)
    correct = sims[np.arange(sims.shape[0]), gt]
    # >= counts the correct video itself once, so this is already "wrong ones ahead or tied, + 1"
    return (sims >= correct[:, None]).sum(axis=1).astype(np.int64)


def video_to_text_ranks(sims: np.ndarray, text_to_video: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of each video's best-ranked own caption among all captions (ties pessimistic).

    Args:
        sims: ``[n_texts, n_videos]`` similarities.
        text_to_video: ``[n_texts]`` column of each caption's video.

    Returns:
        ``(ranks, videos)``: int64 ranks for the videos that have at least one caption, and
        those videos' column indices (ascending).
    """
    sims, gt = _check(sims, text_to_video)
    n_texts, n_videos = sims.shape
    videos = np.unique(gt)
    if videos.size == 0:
        return np.zeros(0, np.int64), videos
    # best score of each video's own captions
    best = np.full(n_videos, -np.inf, dtype=np.float64)
    np.maximum.at(best, gt, sims[np.arange(n_texts), gt].astype(np.float64))
    ge = sims >= best[None, :].astype(sims.dtype)  # [n_texts, n_videos]
    ahead = ge.sum(axis=0)
    # own captions that reach the best score are correct, not competitors
    own_ahead = np.bincount(gt, weights=ge[np.arange(n_texts), gt], minlength=n_videos)
    ranks = ahead - own_ahead.astype(np.int64) + 1
    return ranks[videos].astype(np.int64), videos


def rank_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """R@K (percent), median and mean rank of 1-based ranks.

    Returns:
        ``{"R@1": ..., "R@5": ..., "R@10": ..., "MdR": ..., "MnR": ..., "count": n}`` (for the
        given ``ks``). With no ranks every value is NaN and ``count`` is 0.
    """
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    if ranks.size == 0:
        out.update({f"R@{k}": float("nan") for k in ks})
        out.update({"MdR": float("nan"), "MnR": float("nan"), "count": 0})
        return out
    for k in ks:
        out[f"R@{k}"] = float(100.0 * np.mean(ranks <= k))
    out["MdR"] = float(np.median(ranks))
    out["MnR"] = float(np.mean(ranks))
    out["count"] = int(ranks.size)
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)  # a new array: the caller's logits stay untouched
    np.exp(z, out=z)
    z /= z.sum(axis=axis, keepdims=True)
    return z


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable ``log(sum(exp(x)))`` along ``axis`` (the axis is removed)."""
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def dual_softmax(sims: np.ndarray, temperature: float = DSL_TEMPERATURE) -> tuple[np.ndarray, np.ndarray]:
    """Dual-softmax (DSL) re-weighted similarities for each retrieval direction.

    Args:
        sims: ``[n_texts, n_videos]`` similarities (cosine similarities for the default temperature).
        temperature: multiplier of the similarities inside the softmax prior.

    Returns:
        ``(t2v, v2t)``, both ``[n_texts, n_videos]`` float64: ``t2v = sims * softmax(temperature *
        sims, axis=0)`` ranks videos for each caption, ``v2t = sims * softmax(temperature * sims,
        axis=1)`` ranks captions for each video.
    """
    s = np.asarray(sims, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"sims must be 2-D, got shape {s.shape}")
    t2v = s * softmax(temperature * s, axis=0)
    v2t = s * softmax(temperature * s, axis=1)
    return t2v, v2t


def retrieval_metrics(
    sims: np.ndarray,
    text_to_video: Sequence[int] | np.ndarray,
    *,
    dsl: bool = False,
    temperature: float = DSL_TEMPERATURE,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, dict[str, float]]:
    """Text->video and video->text metrics of one similarity matrix.

    Args:
        sims: ``[n_texts, n_videos]`` similarities.
        text_to_video: ``[n_texts]`` column of each caption's video.
        dsl: re-weight with :func:`dual_softmax` first.
        temperature: DSL temperature.
        ks: the K of R@K.

    Returns:
        ``{"t2v": rank_metrics(...), "v2t": rank_metrics(...)}``.
    """
    if dsl:
        s_t2v, s_v2t = dual_softmax(sims, temperature)
    else:
        s_t2v = s_v2t = sims
    t2v = text_to_video_ranks(s_t2v, text_to_video)
    v2t, _ = video_to_text_ranks(s_v2t, text_to_video)
    return {"t2v": rank_metrics(t2v, ks), "v2t": rank_metrics(v2t, ks)}


def topk_accuracy(
    scores: np.ndarray, labels: Sequence[int] | np.ndarray, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Top-K classification accuracy in percent, ties pessimistic.

    A sample is correct at K when at most ``K - 1`` wrong classes score ``>=`` its true class.

    Args:
        scores: ``[n_samples, n_classes]``.
        labels: ``[n_samples]`` true class indices.
        ks: the K of top-K.

    Returns:
        ``{"top1": ..., "top5": ..., "count": n}`` (one ``topK`` per K).
    """
    ranks = text_to_video_ranks(scores, labels)  # same computation: rows rank columns
    out = {f"top{k}": (float(100.0 * np.mean(ranks <= k)) if ranks.size else float("nan")) for k in ks}
    out["count"] = int(ranks.size)
    return out


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(known score > unknown score) + P(tie) / 2 (the Mann-Whitney U statistic, normalized).

    Raises:
        InputError: either set is empty.
    """
    k = np.asarray(known, dtype=np.float64).ravel()
    u = np.asarray(unknown, dtype=np.float64).ravel()
    if k.size == 0 or u.size == 0:
        raise InputError("AUROC needs at least one known and one unknown video")
    u_sorted = np.sort(u)
    below = np.searchsorted(u_sorted, k, side="left")  # unknown strictly below each known
    ties = np.searchsorted(u_sorted, k, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (k.size * u.size))


def open_set_macro_f1(predicted: np.ndarray, truth: np.ndarray, n_classes: int) -> float:
    """Macro F1 in percent over ``n_classes`` known classes plus "unknown" (index ``n_classes``).

    ``predicted`` holds a class index or ``n_classes`` for a sample judged unknown; ``truth`` holds
    the true class, ``n_classes`` for samples of unknown classes. Each of the ``n_classes + 1``
    classes counts equally (a class absent from both arrays has F1 0: it is still a class).
    """
    p = np.asarray(predicted, np.int64).ravel()
    t = np.asarray(truth, np.int64).ravel()
    if p.shape != t.shape or p.size == 0:
        raise InputError("macro F1 needs one prediction per sample and at least one sample")
    k = n_classes + 1
    tp = np.bincount(t[p == t], minlength=k)[:k].astype(np.float64)
    fp = np.bincount(p, minlength=k)[:k] - tp
    fn = np.bincount(t, minlength=k)[:k] - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(100.0 * f1.mean())


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time spans ``(start, end)`` (0 when disjoint or empty)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return float(inter / union) if union > 0 else 0.0


def localization_metrics(
    predictions: Sequence[Sequence[tuple[float, float]]],
    truths: Sequence[tuple[float, float]],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """R@K at IoU m (percent) and mIoU of the top-1 span (percent), Charades-STA style.

    Args:
        predictions: per query, its spans best first (may be empty: counts as a miss, IoU 0).
        truths: per query, the ground-truth span.
        thresholds: IoU thresholds m.
        ks: K values.

    Returns:
        ``{"R@1,IoU=0.5": ..., "mIoU": ..., "count": n}``.

    Raises:
        InputError: no queries.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} ground truths")
    n = len(truths)
    if n == 0:
        raise InputError("no queries to evaluate")
    ious = [[temporal_iou(tuple(p), tuple(t)) for p in preds] for preds, t in zip(predictions, truths, strict=False)]
    out: dict[str, float] = {}
    for k in ks:
        for m in thresholds:
            hits = sum(1 for row in ious if any(v >= m - 1e-9 for v in row[:k]))
            out[f"R@{k},IoU={m:g}"] = 100.0 * hits / n
    out["mIoU"] = 100.0 * float(np.mean([row[0] if row else 0.0 for row in ious]))
    out["count"] = float(n)
    return out
