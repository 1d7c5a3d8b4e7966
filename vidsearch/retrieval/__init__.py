"""Retrievers and the one step that fuses their ranked lists (docs/architecture.md, "Retrievers").

A retriever turns a query (its text and/or its vector) into scored moments of the library; the
use-case layer asks every retriever that applies and merges their lists with :func:`fuse`. Today
there is one, :class:`VectorRetriever` (FAISS over an embedding space); a transcript retriever is
one more class implementing :class:`Retriever`, passed next to it.
"""

from vidsearch.retrieval.base import GroupBy, RetrievalQuery, Retriever
from vidsearch.retrieval.fusion import RRF_K, fuse
from vidsearch.retrieval.vectors import VectorRetriever

__all__ = ["GroupBy", "RetrievalQuery", "Retriever", "RRF_K", "fuse", "VectorRetriever"]
