"""The one fusion step: several retrievers' ranked lists become one ranked list.

Reciprocal rank fusion (Cormack et al., 2009): a result's fused value is the sum over the
retrievers that found it of ``1 / (RRF_K + rank)``. It needs no common score scale, which
retrievers do not share (cosine similarity for vectors, BM25 for transcripts), and a result
that several retrievers find rises above one that only one finds.

What a fused result shows: the hit of the first retriever in ``lists`` that found it (its span
and its own ``score``, so a vector match keeps its cosine similarity), ``matched`` naming every
retriever that found it, best first, and the spoken words (``said``) of whichever hit quotes them. With a single retriever, fusion keeps its list as it is.

The same result: for ``group_by="video"`` the same video; for ``"moment"`` a moment of the same
video overlapping by more than ``overlap`` (temporal IoU), as :func:`vidsearch.search.search_moments`
already treats one retriever's moments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from vidsearch.metrics import temporal_iou
from vidsearch.retrieval.base import GroupBy
from vidsearch.search import VideoHit

__all__ = ["RRF_K", "fuse"]

# The constant of the original paper: ranks beyond the first few weigh nearly alike.
RRF_K = 60


def _same(a: VideoHit, b: VideoHit, group_by: GroupBy, overlap: float) -> bool:
    """Whether two hits of one video are the same result."""
    return group_by == "video" or temporal_iou((a.start, a.end), (b.start, b.end)) > overlap


def fuse(
    lists: Mapping[str, Sequence[VideoHit]], k: int, group_by: GroupBy = "video", overlap: float = 0.5
) -> list[VideoHit]:
    """The ``k`` best results over every retriever's list (``lists``: retriever name -> its hits, best first).

    The mapping's order is the retrievers' priority: it breaks ties and picks which hit stands for
    a result found by several. Returns new hits ranked 1..n with ``matched`` filled in.
    """
    fused: list[tuple[VideoHit, list[str], float]] = []  # (shown hit, matched, fused value)
    of_video: dict[int, list[int]] = {}  # video id -> its results' places in `fused`
    for name, hits in lists.items():
        for rank, hit in enumerate(hits, 1):
            value = 1.0 / (RRF_K + rank)
            places = of_video.setdefault(hit.video_id, [])
            for i in places:
                shown, matched, total = fused[i]
                if _same(shown, hit, group_by, overlap):
                    if name not in matched:
                        if shown.said is None and hit.said is not None:
                            shown = dataclasses.replace(shown, said=hit.said)  # keep the quote of what was said
                        fused[i] = (shown, [*matched, name], total + value)
                    break
            else:
                places.append(len(fused))
                fused.append((hit, [name], value))
    # stable: equal values keep the order of the higher-priority retriever's list
    fused.sort(key=lambda item: -item[2])
    return [
        dataclasses.replace(hit, rank=rank, matched=tuple(matched))
        for rank, (hit, matched, _) in enumerate(fused[:k], 1)
    ]
