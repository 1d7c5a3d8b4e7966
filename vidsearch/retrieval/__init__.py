"""Retrievers and the one step that fuses their ranked lists (docs/architecture.md, "Retrievers").

A retriever turns a query (its text and/or its vector) into scored moments of the library; the
use-case layer asks every retriever that applies and merges their lists with :func:`fuse`. Today
there are two: :class:`VectorRetriever` (FAISS over an embedding space: what is seen) and
:class:`~vidsearch.retrieval.transcripts.TranscriptRetriever` (SQLite FTS5 over the transcripts:
what is said).
"""

from vidsearch.retrieval.base import GroupBy, RetrievalQuery, Retriever, why_matched
from vidsearch.retrieval.fusion import RRF_K, fuse
from vidsearch.retrieval.vectors import VectorRetriever

__all__ = ["GroupBy", "RetrievalQuery", "Retriever", "RRF_K", "fuse", "VectorRetriever", "why_matched"]
