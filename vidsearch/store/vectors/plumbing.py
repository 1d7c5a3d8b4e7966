"""faiss ownership plumbing: building an index that takes ids, unwrapping, setting parameters.

SWIG proxies own (and delete) the C++ objects they wrap; these helpers move ownership where it
must go so that wrapping and downcasting never double-free or leak.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.errors import InputError
from vidsearch.store.vectors.policy import EXACT_SPEC, OPQ_NITER, OPQ_TRAIN

if TYPE_CHECKING:
    import faiss

__all__ = [
    "search_one_query_per_thread",
    "as_rows",
    "as_ids",
    "unwrap",
    "owned",
    "is_idmap",
    "can_remove",
    "make_index",
    "quantizer_ef",
    "apply_params",
    "ivf_ids",
]

LOG = logging.getLogger(__name__)


def as_rows(xb: Any, dim: int | None, what: str = "vectors") -> np.ndarray:
    x = np.ascontiguousarray(xb, dtype=np.float32)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise InputError(f"{what} must be a {want} float32 array, got shape {x.shape}")
    return x


def as_ids(ids: Any, n: int) -> np.ndarray:
    a = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if a.shape[0] != n:
        raise InputError(f"got {a.shape[0]} ids for {n} vectors")
    if len(np.unique(a)) != n:
        raise InputError("ids must be unique within one call")
    return a


def unwrap(index: faiss.Index) -> faiss.Index:
    """The index behind IDMap/IDMap2, downcast (else the index itself)."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return faiss.downcast_index(index.index)
    return index


def owned(raw: faiss.Index) -> faiss.Index:
    """Downcast an owning proxy, moving ownership to the downcast one (the raw proxy dies)."""
    import faiss

    index = faiss.downcast_index(raw)
    if raw.this.own():
        raw.this.disown()
        index.this.own(True)
    return index


def is_idmap(index: faiss.Index) -> bool:
    import faiss

    return isinstance(faiss.downcast_index(index), (faiss.IndexIDMap, faiss.IndexIDMap2))


def can_remove(index: faiss.Index) -> bool:
    """Probe remove_ids with an empty selection (no-op if supported, throws otherwise)."""
    try:
        index.remove_ids(np.empty(0, dtype=np.int64))
        return True
    except RuntimeError:
        return False


def make_index(dim: int, spec: str) -> tuple[faiss.Index, bool]:
    """Build an untrained index from ``spec`` that accepts ids; returns (index, removable).

    IVF indexes keep ids themselves; IDMap around IVF would break removal (IDMap renumbers its
    id map assuming the sub-index compacts, which IVF does not), so it is dropped. Everything
    else sits behind IDMap2, which also lets tombstones address rows by position.
    """
    import faiss

    try:
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except (RuntimeError, ValueError) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(
            f"invalid index spec {spec!r} ({msg[:120]}); use a faiss index_factory string such as "
            f"'{EXACT_SPEC}', 'IVF1024,Flat', 'IVF4096_HNSW32,SQ8', 'OPQ64,IVF4096,PQ64' or 'HNSW32,Flat'"
        ) from None
    index = owned(index)
    if is_idmap(index) and faiss.try_extract_index_ivf(unwrap(index)) is not None:
        index.own_fields = False  # hand the sub-index over to its python wrapper
        index = unwrap(index)
        index.this.own(True)
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            vt = faiss.downcast_VectorTransform(index.chain.at(i))
            if isinstance(vt, faiss.OPQMatrix):  # bound its training: see OPQ_NITER
                vt.niter = min(vt.niter, OPQ_NITER)
                vt.niter_pq_0 = min(vt.niter_pq_0, OPQ_NITER)
                vt.max_train_points = min(vt.max_train_points, OPQ_TRAIN)
    if faiss.try_extract_index_ivf(index) is not None and can_remove(index):
        return index, True
    if not is_idmap(index):
        inner = index
        index = faiss.IndexIDMap2(inner)
        inner.this.disown()  # the IDMap2 deletes it
        index.own_fields = True
    return index, can_remove(index)


def quantizer_ef(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantizer that must return ``nprobe`` good centroids (with slack)."""
    return max(64, 2 * nprobe)


def apply_params(index: faiss.Index, params: dict[str, float], gpu: bool = False) -> None:
    """Set tuned search parameters (nprobe, efSearch, ...) on a CPU or GPU index."""
    import faiss

    if not params:
        return
    # GpuParameterSpace also knows CPU indexes; it only exists in GPU builds of faiss
    ps = getattr(faiss, "GpuParameterSpace", faiss.ParameterSpace)() if gpu else faiss.ParameterSpace()
    target = index if gpu else unwrap(index)
    for name, val in params.items():
        try:
            ps.set_index_parameter(target, name, float(val))
        except (RuntimeError, TypeError) as e:  # a GPU index without that knob: keep its default
            LOG.log(
                logging.DEBUG if gpu else logging.WARNING,
                "cannot set %s=%s on %s: %s",
                name,
                val,
                type(target).__name__,
                str(e).strip().splitlines()[-1],
            )


def ivf_ids(index: faiss.Index) -> np.ndarray:
    """Every id held in the inverted lists of an IVF index (in list order), int64."""
    import faiss

    invlists = faiss.extract_index_ivf(index).invlists
    out = []
    for lst in range(invlists.nlist):
        size = invlists.list_size(lst)
        if size:
            ptr = invlists.get_ids(lst)
            out.append(faiss.rev_swig_ptr(ptr, size).copy())
            invlists.release_ids(lst, ptr)
    return np.concatenate(out).astype(np.int64) if out else np.empty(0, dtype=np.int64)


def search_one_query_per_thread() -> None:
    """Run each FAISS search on its caller's thread only (a server answering many at once).

    FAISS parallelizes a search with OpenMP, whose idle threads spin waiting for the next parallel
    region. A server already runs one search per request thread; there, a team of spinning
    threads per search only fights the other requests for the cores (a search of 48 vectors took
    40 ms on a busy 2-core machine). Process-wide: call it only in such a process.
    """
    import faiss

    faiss.omp_set_num_threads(1)
