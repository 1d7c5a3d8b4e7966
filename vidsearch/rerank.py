"""Re-ranking text-query hits with a model's image-text matching (ITM) head.

The contrastive (ITC) vectors in FAISS pick the candidates; the model's fusion layers then
score the caption against each candidate's vision tokens and the candidates are re-ordered by
that score, as the official InternVideo2 evaluation does (its ``k_test``).

The vision tokens are **recomputed** for the candidates (decode the hit's span, run the vision
tower) instead of being stored at indexing time: a 1B segment's tokens are 1025 x 1408 values,
2.9 MB in fp16 (1.4 MB in int8) against 2 KB for its ITC vector, so storing them would make a
library some thousand times larger, while re-ranking touches only ``K`` segments per query
(docs/internvideo2.md has the measurements).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from vidsearch.errors import InputError, MediaError
from vidsearch.search import VideoHit

__all__ = [
    "RERANKERS",
    "DEFAULT_RERANK_K",
    "rerank_k_for",
    "supports_itm",
    "check_itm",
    "rerank_hits",
    "rerank_top",
]

LOG = logging.getLogger(__name__)

RERANKERS = ("itm",)
# Candidates re-ranked when --rerank-k is not given (at least -k). The official evaluation
# re-ranks 128; 16 keeps a CPU query within about a minute for the 1B model.
DEFAULT_RERANK_K = 16
VISION_BATCH = 8  # candidate clips per vision-tower call


def rerank_k_for(rerank: str | None, rerank_k: int | None, default: int) -> int | None:
    """The number of candidates to re-rank (None: no re-ranking; ``default`` when not given).

    Raises:
        InputError: an unknown re-ranker, ``--rerank-k`` without ``--rerank``, or a ``--rerank-k`` below 1.
    """
    if rerank is None:
        if rerank_k is not None:
            raise InputError("only applies together with re-ranking (itm)", argument="rerank_k")
        return None
    if rerank not in RERANKERS:
        raise InputError(
            f"{rerank}: unknown re-ranker", argument="rerank", hint=f"choose one of {', '.join(RERANKERS)}"
        )
    if rerank_k is None:
        return default
    if rerank_k < 1:
        raise InputError(f"{rerank_k}: re-rank at least 1 candidate", argument="rerank_k")
    return rerank_k


def supports_itm(encoder: Any) -> bool:
    """Whether ``encoder`` has an ITM head (``video_tokens``, ``text_states`` and ``itm_scores``)."""
    return all(callable(getattr(encoder, name, None)) for name in ("video_tokens", "text_states", "itm_scores"))


def check_itm(encoder: Any, space_key: str) -> None:
    """Raise a one-line InputError when ``encoder`` (of the space ``space_key``) has no ITM head."""
    if not supports_itm(encoder):
        raise InputError(
            f"itm needs a model with an image-text matching head (internvideo2-1b); "
            f"space {space_key} has none: search without re-ranking",
            argument="rerank",
        )


def rerank_top(encoder: Any, text: str, hits: list[VideoHit], rerank_k: int, reader: str = "auto") -> list[VideoHit]:
    """The first ``rerank_k`` hits re-ranked by ITM, then the rest in ITC order (official: -100), renumbered."""
    ranked = rerank_hits(encoder, text, hits[:rerank_k], reader=reader) + hits[rerank_k:]
    return [dataclasses.replace(h, rank=r) for r, h in enumerate(ranked, 1)]


def rerank_hits(encoder: Any, text: str, hits: list[VideoHit], reader: str = "auto") -> list[VideoHit]:
    """``hits`` re-ordered by the ITM match score of ``text`` against each hit's span.

    Each hit's frames are sampled as the indexer sampled its segment (the whole video for a
    ``video`` hit). A hit whose file can no longer be decoded keeps its place after the scored
    ones (with a warning). The returned hits carry the ITM logit as ``score`` and new ranks.
    """
    from vidsearch.media.span import read_span

    scored: list[tuple[float, VideoHit]] = []
    failed: list[VideoHit] = []
    antialias = bool(getattr(encoder, "antialias", False))
    states, mask = encoder.text_states([text])
    for i in range(0, len(hits), VISION_BATCH):
        batch, clips = [], []
        for hit in hits[i : i + VISION_BATCH]:
            whole = hit.kind == "video"
            try:
                clips.append(
                    read_span(
                        hit.path,
                        encoder.num_frames,
                        encoder.resolution,
                        None if whole else hit.start,
                        None if whole else hit.end,
                        reader=reader,
                        antialias=antialias,
                    )
                )
                batch.append(hit)
            except (MediaError, InputError) as exc:
                LOG.warning("not re-ranking %s: %s", hit.path, exc)
                failed.append(hit)
        if batch:
            scores = encoder.itm_scores(states, mask, encoder.video_tokens(np.stack(clips)))
            scored += [(float(s), h) for s, h in zip(scores, batch, strict=True)]
    scored.sort(key=lambda pair: -pair[0])  # stable: ties keep their ITC order
    ranked = [dataclasses.replace(h, score=s) for s, h in scored] + failed
    return [dataclasses.replace(h, rank=r) for r, h in enumerate(ranked, 1)]
