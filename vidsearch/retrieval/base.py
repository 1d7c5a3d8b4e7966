"""The retriever seam: what a retriever is given and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from vidsearch.search import Filters, VideoHit

__all__ = ["GroupBy", "RetrievalQuery", "Retriever", "why_matched"]

GroupBy = Literal["video", "moment"]


@dataclass(frozen=True)
class RetrievalQuery:
    """One search as every retriever sees it.

    ``text`` is the words typed (None for a clip or image query); ``vector`` is the query's
    embedding in the searched space (None when no encoder could make one). A retriever uses what
    it understands and returns nothing when the query has nothing for it (a transcript retriever
    answers no clip query).
    """

    text: str | None
    vector: np.ndarray | None
    k: int  # results wanted at most (the use case asks for its page plus look-ahead)
    group_by: GroupBy = "video"
    filters: Filters = field(default_factory=Filters)


@runtime_checkable
class Retriever(Protocol):
    """A source of scored moments: vectors today, speech transcripts next.

    ``name`` is what results list in ``matched``. :meth:`retrieve` returns at most ``query.k``
    hits, best first, after ``query.filters`` (every hit a video the filters accept), grouped as
    ``query.group_by`` asks: one hit per video, or separate moments (several per video allowed).
    Its own ``score`` scale is its business; :func:`vidsearch.retrieval.fuse` merges by rank.
    """

    name: str

    def retrieve(self, query: RetrievalQuery) -> list[VideoHit]:
        """The best ``query.k`` hits for ``query`` (empty when it does not apply)."""
        ...


# What each retriever's match means to a user: the video model sees, the transcripts hear.
_SENSE = {"vectors": "seen", "transcripts": "said"}


def why_matched(matched: tuple[str, ...] | list[str]) -> str:
    """``seen``, ``said`` or ``both`` for a result's ``matched`` retrievers ("" when none)."""
    senses = {_SENSE.get(name, name) for name in matched}
    if {"seen", "said"} <= senses:
        return "both"
    return next(iter(senses), "") if len(senses) == 1 else "+".join(sorted(senses))
