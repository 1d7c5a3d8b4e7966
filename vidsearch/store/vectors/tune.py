"""Build-time tuning of search parameters: the least search effort that reaches a target recall.

Queries are a held-out sample of the stored vectors (disjoint from the training sample) perturbed
with noise so that a query is not trivially its own neighbour; ground truth is exact search over
all vectors; the smallest setting reaching ``TARGET_RECALL`` recall@10 wins. When no setting
reaches the target (strong PQ compression), the cheapest setting on the recall plateau is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vidsearch.store.vectors.plumbing import unwrap

if TYPE_CHECKING:
    import faiss

__all__ = [
    "TARGET_RECALL",
    "TUNE_QUERIES",
    "PLATEAU",
    "TUNE_NOISE",
    "NPROBE_GRID",
    "EF_GRID",
    "KFACTOR_GRID",
    "recall_at_k",
    "knobs",
    "tuning_queries",
    "best_params",
]

TARGET_RECALL = 0.95
TUNE_QUERIES = 500  # recall estimate std-err ~0.003 at 0.95 with k=10
PLATEAU = 0.005  # recall within this of the best counts as the same when the target is out of reach
TUNE_NOISE = 0.5  # norm of the Gaussian noise added to held-out queries
NPROBE_GRID = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)
EF_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
KFACTOR_GRID = (1, 2, 4, 8, 16, 32)


def recall_at_k(I: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    """k-recall@k: mean fraction of the true top-k ids found in the returned top-k.

    Ids are compared as sets per query, so ties ordered differently do not count as misses.
    """
    I = np.asarray(I)[:, :k]
    gt = np.asarray(gt)[:, :k]
    hits = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for a, b in zip(I, gt, strict=False))
    total = int((gt >= 0).sum())
    return hits / total if total else 1.0


def knobs(index: faiss.Index) -> tuple[str | None, tuple[int, ...], bool]:
    """(main knob, its grid, has refine k_factor) for this index type."""
    import faiss

    inner = unwrap(index)
    refine = isinstance(inner, faiss.IndexRefine)
    base = faiss.downcast_index(inner.base_index) if refine else inner
    ivf = faiss.try_extract_index_ivf(base)
    if ivf is not None:
        return "nprobe", tuple(p for p in NPROBE_GRID if p <= ivf.nlist) or (1,), refine
    if isinstance(base, faiss.IndexPreTransform):
        base = faiss.downcast_index(base.index)
    if isinstance(base, faiss.IndexHNSW):
        return "efSearch", EF_GRID, refine
    return None, (), refine


def tuning_queries(
    ids: np.ndarray, xb: np.ndarray, held: np.ndarray, k: int = 10
) -> tuple[np.ndarray, np.ndarray, int]:
    """Noisy held-out queries and their exact top-k ids.

    Args:
        ids: the ids of ``xb``'s rows.
        xb: every vector of the index.
        held: rows of ``xb`` held out of training, used as queries.
        k: neighbours per query.

    Returns:
        ``(xq, gt, k)``: queries, ground-truth ids (-1 where missing), and ``k`` capped by the size.
    """
    import faiss

    rng = np.random.default_rng(0xC0FFEE)
    xq = xb[np.sort(held)] + rng.standard_normal((len(held), xb.shape[1]), dtype=np.float32) * (
        TUNE_NOISE / math.sqrt(xb.shape[1])
    )
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    kk = min(k, len(xb))
    _, gt_pos = faiss.knn(xq, xb, kk, metric=faiss.METRIC_INNER_PRODUCT)
    gt = np.where(gt_pos >= 0, ids[np.clip(gt_pos, 0, None)], -1)
    return xq, gt, kk


def best_params(
    measure: Callable[[dict[str, float]], float], knob: str | None, grid: tuple[int, ...], refine: bool
) -> tuple[float, dict[str, float]]:
    """Walk the knob's grid upwards until ``measure`` (recall of a setting) reaches the target.

    Returns:
        ``(recall, params)`` of the chosen setting.
    """
    # IndexRefine's re-ranking depth is called k_factor_rf in ParameterSpace
    base: dict[str, float] = {"k_factor_rf": float(KFACTOR_GRID[-2])} if refine else {}
    tried: list[tuple[float, dict[str, float]]] = []
    for val in grid or (None,):
        params = dict(base) if val is None else {**base, knob: float(val)}
        tried.append((measure(params), params))
        if tried[-1][0] >= TARGET_RECALL:
            break
    top = max(r for r, _ in tried)
    # target reached: the last setting tried; out of reach (lossy codes): the cheapest setting
    # on the recall plateau, since more effort buys nothing but time
    best = tried[-1] if top >= TARGET_RECALL else next(t for t in tried if t[0] >= top - PLATEAU)
    if refine and best[0] >= TARGET_RECALL:  # then the smallest re-ranking depth that holds
        for kf in KFACTOR_GRID:
            params = {**best[1], "k_factor_rf": float(kf)}
            r = measure(params)
            if r >= TARGET_RECALL:
                best = (r, params)
                break
    return float(best[0]), best[1]
