"""FAISS vector indexes of the library's embedding spaces, one module per job.

- :mod:`.policy`: which index a space gets (``choose_spec``) and when to rebuild it;
- :mod:`.tune`: build-time tuning of search parameters to a target recall;
- :mod:`.plumbing`: faiss object ownership, id-taking indexes, setting parameters;
- :mod:`.gpu`: GPU detection, replicas and k-means;
- :mod:`.tombstones`: removal where faiss cannot remove;
- :mod:`.fileformat`: the index file (header, tombstones, faiss bytes), written atomically;
- :mod:`.index`: :class:`VectorIndex`, which ties them together (its readers-writer lock,
  many searches or one add/remove at a time, is `fasteners`');
- :mod:`.ondisk`: IVF lists in a memory-mapped file (``reindex --on-disk``), with an in-RAM delta.
"""

from __future__ import annotations

from vidsearch.store.vectors.gpu import gpu_available
from vidsearch.store.vectors.index import VectorIndex
from vidsearch.store.vectors.policy import (
    DEFAULT_BUDGET_FRACTION,
    EXACT_MAX_N,
    EXACT_SPEC,
    HNSW_QUANT_N,
    TOMBSTONE_MAX_FRACTION,
    choose_spec,
    default_memory_budget,
    estimate_bytes,
)
from vidsearch.store.vectors.tune import TARGET_RECALL, recall_at_k

__all__ = [
    "VectorIndex",
    "choose_spec",
    "default_memory_budget",
    "estimate_bytes",
    "gpu_available",
    "recall_at_k",
    "EXACT_SPEC",
    "EXACT_MAX_N",
    "HNSW_QUANT_N",
    "TARGET_RECALL",
    "TOMBSTONE_MAX_FRACTION",
    "DEFAULT_BUDGET_FRACTION",
]
