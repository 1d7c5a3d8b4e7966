"""The vector retriever: FAISS over one embedding space (:mod:`vidsearch.search` does the work)."""

from __future__ import annotations

from vidsearch.retrieval.base import RetrievalQuery
from vidsearch.search import VideoHit, search_moments, search_vectors
from vidsearch.store.library import Library, SpaceInfo

__all__ = ["VectorRetriever"]


class VectorRetriever:
    """Segments nearest the query's embedding, grouped per video (with the best span) or as moments."""

    name = "vectors"

    def __init__(self, library: Library, space: SpaceInfo) -> None:
        self.library = library
        self.space = space

    def retrieve(self, query: RetrievalQuery) -> list[VideoHit]:
        """The ``query.k`` best hits for ``query.vector``; nothing when the query has no vector."""
        if query.vector is None:
            return []
        if query.group_by == "moment":
            return search_moments(self.library, self.space, query.vector, query.k, query.filters)
        return search_vectors(self.library, self.space, query.vector, query.k, query.filters)
