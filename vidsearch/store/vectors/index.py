"""The vector index of one embedding space: a FAISS index keyed by int64 segment ids.

The index is a derived artefact: SQLite keeps every embedding, so any index can be rebuilt
from the stored vectors. Vectors are float32 rows, L2-normalized, compared by inner product
(cosine). Which index (:mod:`~vidsearch.store.vectors.policy`), how its search parameters are
tuned (:mod:`~vidsearch.store.vectors.tune`), removal where faiss cannot remove
(:mod:`~vidsearch.store.vectors.tombstones`), GPU replicas (:mod:`~vidsearch.store.vectors.gpu`)
and the file (:mod:`~vidsearch.store.vectors.fileformat`) each live in their own module; this
one ties them together behind one object.

Deletions and updates: ``add`` replaces the vector of an id already present. Flat-code and IVF
indexes remove in place (``remove_ids``; IVF keeps ids in its inverted lists, flat codes sit
behind ``IndexIDMap2``); other types get tombstones.

Concurrency: searches share a readers-writer lock and run in parallel (faiss releases the GIL);
``add``/``remove`` take it exclusively. ``build`` touches no shared state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fasteners
import numpy as np

from vidsearch.errors import InputError
from vidsearch.store.vectors import gpu as gpus
from vidsearch.store.vectors import policy, tune
from vidsearch.store.vectors.fileformat import read_header, read_index_file, serialized_size, write_index_file
from vidsearch.store.vectors.plumbing import (
    apply_params,
    as_ids,
    as_rows,
    can_remove,
    is_idmap,
    ivf_ids,
    make_index,
    quantizer_ef,
    unwrap,
)
from vidsearch.store.vectors.policy import EXACT_SPEC, MAX_TRAIN, MIN_TRAIN, TRAIN_PER_LIST, choose_spec
from vidsearch.store.vectors.tombstones import Tombstones

if TYPE_CHECKING:  # faiss costs ~0.1 s to import; CLI commands that never search skip it
    import faiss

__all__ = ["VectorIndex"]

LOG = logging.getLogger(__name__)


class VectorIndex:
    """A FAISS index over one embedding space, keyed by int64 segment ids.

    Attributes:
        dim: vector dimension.
        spec: the faiss index_factory string the index was built from.
        recall_at_10: recall@10 against exact search measured at build time (None when exact).
        params: tuned search parameters (e.g. ``{"nprobe": 16}``), reapplied on load.
        meta: free-form JSON-serializable metadata saved with the index.
        auto: whether ``spec`` came from :func:`choose_spec` (so the policy may ask for another).
        memory_budget: the budget the policy was given (None: default).
        trained_n: vectors present when the index was built and trained.
        added_since_build: vectors added after the build (drift measure).
    """

    def __init__(
        self,
        index: faiss.Index,
        *,
        dim: int,
        spec: str,
        removable: bool,
        auto: bool = False,
        memory_budget: int | None = None,
        gpu: bool = False,
    ) -> None:
        """Wrap a faiss index that accepts ids; prefer :meth:`build`, :meth:`empty`, :meth:`load`."""
        self.dim = dim
        self.spec = spec
        self.recall_at_10: float | None = None
        self.params: dict[str, float] = {}
        self.meta: dict[str, Any] = {}
        self.auto = auto
        self.memory_budget = memory_budget
        self.trained_n = 0
        self.added_since_build = 0
        self._index = index
        self._removable = removable
        self._idmap = is_idmap(index)
        self._tomb = Tombstones(index.ntotal)
        self._id_map = self._read_id_map()
        # Many concurrent searches (faiss releases the GIL), exclusive add/remove.
        self._lock = fasteners.ReaderWriterLock()
        self._gpu = gpus.GpuReplica(gpu)

    # ------------------------------------------------------------------ construction

    @classmethod
    def empty(cls, dim: int) -> VectorIndex:
        """An exact, empty index ready for :meth:`add`."""
        if dim <= 0:
            raise InputError(f"vector dimension must be positive, got {dim}")
        index, removable = make_index(dim, EXACT_SPEC)
        return cls(index, dim=dim, spec=EXACT_SPEC, removable=removable, auto=True)

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        xb: np.ndarray,
        *,
        spec: str | None = None,
        memory_budget: int | None = None,
        gpu: bool | None = None,
    ) -> VectorIndex:
        """Build, train and tune an index over ``xb`` (rows L2-normalized) keyed by ``ids``.

        Args:
            ids: int64 segment ids, one per row, unique.
            xb: float32 array (n, dim).
            spec: faiss index_factory string overriding the policy (:func:`choose_spec`).
            memory_budget: bytes the index may use (policy input); default
                :func:`default_memory_budget`.
            gpu: train/add/search on GPU; None = when available, True = prefer (falls back).

        Returns:
            The built index; ``recall_at_10`` and ``params`` hold the tuning outcome.
        """
        import faiss

        xb = as_rows(xb, None)
        n, d = xb.shape
        if d == 0:
            raise InputError("vectors must have at least one dimension")
        ids = as_ids(ids, n)
        auto = spec is None
        spec = choose_spec(n, d, memory_budget) if auto else str(spec).strip()
        index, removable = make_index(d, spec)
        use_gpu = gpus.use_gpu(gpu)
        t0 = time.perf_counter()

        exact = isinstance(unwrap(index), faiss.IndexFlat)
        rng = np.random.default_rng(0x5EED)
        perm = rng.permutation(n)
        # held-out tuning queries come first in the permutation, training points after them
        nq = 0 if exact else min(tune.TUNE_QUERIES, max(1, n // 5))
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index)
            nlist = ivf.nlist if ivf is not None else 0
            want = min(n, MAX_TRAIN, max(TRAIN_PER_LIST * nlist, MIN_TRAIN))
            if n < max(nlist, 1):
                raise InputError(
                    f"index spec {spec!r} needs at least {nlist} vectors to train, got {n}; "
                    f"use fewer IVF lists or '{EXACT_SPEC}'"
                )
            tr = perm[nq : nq + want] if n - nq >= want else perm[:want]
            xt = xb[np.sort(tr)]  # sorted rows: sequential reads of xb
            if use_gpu and ivf is not None:
                try:
                    ivf.clustering_index = gpus.clustering_index(ivf.d)
                except Exception as e:  # noqa: BLE001 - any GPU failure falls back to CPU
                    LOG.warning("GPU k-means unavailable (%s); training on CPU", e)
            try:
                index.train(xt)
            except RuntimeError as e:
                raise InputError(f"cannot train index spec {spec!r}: {str(e).splitlines()[-1][:160]}") from None
            finally:
                if ivf is not None:
                    ivf.clustering_index = None  # never saved, and frees the GPU copy
            del xt
        t_train = time.perf_counter() - t0

        obj = cls(index, dim=d, spec=spec, removable=removable, auto=auto, memory_budget=memory_budget, gpu=use_gpu)
        obj._add_built(ids, xb)
        t_add = time.perf_counter() - t0 - t_train
        if not exact:
            obj._tune(ids, xb, perm[:nq])
        obj.trained_n = n
        obj.added_since_build = 0
        LOG.info(
            "built %s over %d x %d in %.1fs (train %.1fs, add %.1fs); recall@10=%s params=%s",
            spec,
            n,
            d,
            time.perf_counter() - t0,
            t_train,
            t_add,
            "exact" if obj.recall_at_10 is None else f"{obj.recall_at_10:.3f}",
            obj.params,
        )
        return obj

    def _add_built(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add the build's vectors, on GPU when enabled (keeping the replica), else on CPU."""
        if self._gpu.active:
            try:
                gpu_index = gpus.clone_to_gpu(self._index)
                gpu_index.add_with_ids(xb, ids)
                cpu = gpus.gpu_to_cpu(gpu_index)
                self._index = cpu
                self._idmap = is_idmap(cpu)
                self._removable = can_remove(cpu)
                self._gpu.index = gpu_index
                self._sync_positions()
                return
            except Exception as e:  # noqa: BLE001 - GPU cannot hold this type: CPU fallback
                self._gpu.give_up("GPU add", self.spec, e)
        self._index.add_with_ids(xb, ids)
        self._sync_positions()

    def _sync_positions(self) -> None:
        """Grow the tombstone mask and refresh the id map after rows were added."""
        self._tomb.grow(self._index.ntotal)
        self._id_map = self._read_id_map()

    def _read_id_map(self) -> np.ndarray | None:
        import faiss

        if not self._idmap:
            return None
        return faiss.vector_to_array(faiss.downcast_index(self._index).id_map).astype(np.int64)

    # ------------------------------------------------------------------ tuning

    def _set(self, params: dict[str, float]) -> None:
        import faiss

        full = dict(params)
        ivf = faiss.try_extract_index_ivf(unwrap(self._index))
        if "nprobe" in full and ivf is not None:
            if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
                full["quantizer_efSearch"] = quantizer_ef(int(full["nprobe"]))
        self.params = full
        apply_params(self._index, full)
        self._gpu.set_params(full)

    def _tune(self, ids: np.ndarray, xb: np.ndarray, held: np.ndarray, k: int = 10) -> None:
        """Smallest search effort reaching TARGET_RECALL recall@k on held-out noisy queries."""
        xq, gt, kk = tune.tuning_queries(ids, xb, held, k)

        def measure(params: dict[str, float]) -> float:
            self._set(params)
            _, I = self._search_locked(xq, kk)
            return tune.recall_at_k(I, gt, kk)

        recall, params = tune.best_params(measure, *tune.knobs(self._index))
        self._set(params)
        self.recall_at_10 = recall
        if recall < tune.TARGET_RECALL:
            LOG.warning(
                "%s reaches recall@10=%.3f at most (target %.2f); consider a larger memory budget",
                self.spec,
                recall,
                tune.TARGET_RECALL,
            )

    # ------------------------------------------------------------------ queries

    @property
    def ntotal(self) -> int:
        """Number of live vectors (tombstoned rows excluded)."""
        return int(self._index.ntotal) - self._tomb.count

    @property
    def n_dead(self) -> int:
        """Rows removed by tombstone that still occupy the index."""
        return self._tomb.count

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best ids per query by inner product; safe to call from several threads.

        Args:
            xq: float32 queries (nq, dim), L2-normalized.
            k: neighbours per query.

        Returns:
            ``D`` (nq, k) float32 scores, higher is better, ``-inf`` where missing, and ``I``
            (nq, k) int64 ids, ``-1`` where fewer than k results exist.
        """
        xq = as_rows(xq, self.dim, "queries")
        if int(k) <= 0:
            raise InputError(f"k must be a positive number of results, got {k}")
        with self._lock.read_lock():
            return self._search_locked(xq, int(k))

    def _search_locked(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = xq.shape[0]
        if nq == 0 or self.ntotal == 0:
            return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        if self._tomb.count:
            D, I = self._tomb.search(unwrap(self._index), self._id_map, xq, k)
        else:
            # GPU indexes return at most GPU_MAX_K neighbours; deeper searches stay on the CPU
            D, I = (self._searcher() if k <= gpus.GPU_MAX_K else self._index).search(xq, k)
            short = I[:, -1] < 0
            if short.any() and self.ntotal >= k:
                D, I = self._widen_probes(xq, k, D, I, short)
        D = np.where(I < 0, np.float32(-np.inf), D).astype(np.float32, copy=False)
        return D, I.astype(np.int64, copy=False)

    def _searcher(self) -> faiss.Index:
        """The GPU replica when enabled and healthy (built lazily after mutations), else CPU."""
        return self._gpu.searcher(self._index, self.params, self.spec)

    def _widen_probes(
        self, xq: np.ndarray, k: int, D: np.ndarray, I: np.ndarray, short: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-search the queries whose probed IVF lists held fewer than k vectors with more probes.

        The tuned nprobe is right for the top 10, but a deep search (a query asking for many
        segments to group them into videos) can exhaust the few lists it probes while the index
        holds plenty more. Probes grow 4x per round, per call only (the index keeps its tuned
        setting, so concurrent searches are unaffected), up to every list.
        """
        import faiss

        index = faiss.downcast_index(self._index)
        if not isinstance(index, faiss.IndexIVF):  # OPQ/IDMap wrappers: keep what the index gave
            return D, I
        D, I = D.copy(), I.copy()
        nprobe = int(index.nprobe)
        hnsw_quantizer = isinstance(faiss.downcast_index(index.quantizer), faiss.IndexHNSW)
        while short.any() and nprobe < index.nlist:
            nprobe = min(int(index.nlist), nprobe * 4)
            params = faiss.SearchParametersIVF(nprobe=nprobe)
            if hnsw_quantizer:  # qparams stays referenced while params points at it
                qparams = faiss.SearchParametersHNSW(efSearch=quantizer_ef(nprobe))
                params.quantizer_params = qparams
            rows = np.flatnonzero(short)
            D[rows], I[rows] = index.search(xq[rows], k, params=params)
            short = I[:, -1] < 0
        return D, I

    def ids(self) -> np.ndarray:
        """Every live id in the index (int64, in index order)."""
        with self._lock.read_lock():
            return self._ids_locked()

    def _ids_locked(self) -> np.ndarray:
        if self._id_map is not None:
            return self._tomb.live_ids(self._id_map)
        return ivf_ids(self._index)

    # ------------------------------------------------------------------ mutations

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors; an id already present gets its vector replaced.

        Args:
            ids: int64 ids, unique within the call.
            xb: float32 rows (n, dim), L2-normalized.
        """
        xb = as_rows(xb, self.dim)
        ids = as_ids(ids, xb.shape[0])
        if not len(ids):
            return
        with self._lock.write_lock():
            present = ids[np.isin(ids, self._ids_locked())]
            if len(present):
                self._remove_locked(present)
            self._index.add_with_ids(xb, ids)
            self._sync_positions()
            self.added_since_build += len(ids)
            self._gpu.drop()  # stale: rebuilt at the next search

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (absent ones are ignored); returns how many vectors were removed."""
        ids = np.unique(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return 0
        with self._lock.write_lock():
            n = self._remove_locked(ids)
            if n:
                self._gpu.drop()
            return n

    def _remove_locked(self, ids: np.ndarray) -> int:
        if self._removable:
            n = int(self._index.remove_ids(ids))
            if n:
                self._tomb.reset(self._index.ntotal)
                self._id_map = self._read_id_map()
            return n
        return self._tomb.mark(self._id_map, ids)

    def needs_rebuild(self) -> bool:
        """True when a rebuild would serve better (rules: :func:`vidsearch.store.vectors.policy.needs_rebuild`)."""
        return policy.needs_rebuild(
            self.spec,
            self.dim,
            auto=self.auto,
            memory_budget=self.memory_budget,
            rows=int(self._index.ntotal),
            n_dead=self._tomb.count,
            trained_n=self.trained_n,
            added_since_build=self.added_since_build,
        )

    # ------------------------------------------------------------------ persistence

    def nbytes(self) -> int:
        """Serialized size of the faiss index, a good proxy for its memory."""
        with self._lock.read_lock():
            return serialized_size(self._index)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for ``info``: spec, size, recall, tuned params, state."""
        return {
            "spec": self.spec,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "tombstones": self._tomb.count,
            "recall_at_10": self.recall_at_10,
            "params": dict(self.params),
            "auto": self.auto,
            "gpu": self._gpu.active,
            "needs_rebuild": self.needs_rebuild(),
        }

    def _header(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "spec": self.spec,
            "recall_at_10": self.recall_at_10,
            "params": self.params,
            "meta": self.meta,
            "auto": self.auto,
            "memory_budget": self.memory_budget,
            "trained_n": self.trained_n,
            "added_since_build": self.added_since_build,
            "ntotal": self.ntotal,  # informational: lets `info` report without loading the index
        }

    def save(self, path: Path) -> None:
        """Write the index atomically (:func:`~vidsearch.store.vectors.fileformat.write_index_file`).

        Raises:
            LibraryError: the file cannot be written (the previous file, if any, is intact).
        """
        path = Path(path)
        with self._lock.read_lock():
            write_index_file(path, self._header(), self._tomb.positions(), self._index)
        LOG.debug("saved %s (%d vectors) to %s", self.spec, self.ntotal, path)

    @staticmethod
    def read_header(path: Path) -> dict[str, Any]:
        """The JSON header of a saved index (spec, recall, meta, ntotal) without loading the index.

        Raises:
            LibraryError: the file is missing or not a vidsearch vector index.
        """
        return read_header(path)

    @classmethod
    def load(cls, path: Path, gpu: bool | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`; tuned parameters are reapplied.

        Raises:
            LibraryError: the file is missing, truncated or not a vidsearch vector index.
        """
        h, dead, index = read_index_file(Path(path))
        obj = cls(
            index,
            dim=int(h["dim"]),
            spec=h["spec"],
            removable=can_remove(index),
            auto=bool(h.get("auto")),
            memory_budget=h.get("memory_budget"),
            gpu=gpus.use_gpu(gpu),
        )
        obj._tomb.load(dead)
        obj.recall_at_10 = h.get("recall_at_10")
        obj.meta = dict(h.get("meta") or {})
        obj.trained_n = int(h.get("trained_n") or 0)
        obj.added_since_build = int(h.get("added_since_build") or 0)
        obj._set(dict(h.get("params") or {}))
        return obj

    def __repr__(self) -> str:
        r = "exact" if self.recall_at_10 is None else f"recall@10={self.recall_at_10:.3f}"
        return f"VectorIndex({self.spec!r}, dim={self.dim}, ntotal={self.ntotal}, {r})"
