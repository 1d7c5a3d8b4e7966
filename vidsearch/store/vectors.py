"""FAISS vector index of one embedding space: policy, tuning, deletions, GPU, atomic files.

The index is a derived artefact: SQLite keeps every embedding, so any index can be rebuilt
from the stored vectors. Vectors are float32 rows, L2-normalized, compared by inner product
(cosine); ids are arbitrary int64 segment ids.

Index policy (:func:`choose_spec`, after the faiss wiki "Guidelines to choose an index"):

====================  ==============================================================
live vectors ``n``    index_factory string
====================  ==============================================================
``n <= EXACT_MAX_N``  ``IDMap2,Flat`` -- exact; a scan of 100k x 768 costs ~10 ms
``< HNSW_QUANT_N``    ``IVF{nlist},{codes}``, flat coarse quantizer
``>= HNSW_QUANT_N``   ``IVF{nlist}_HNSW32,{codes}``, HNSW coarse quantizer (1M: IVF4096_HNSW32)
====================  ==============================================================

``nlist`` is the power of two nearest to ``4*sqrt(n)``, the low end of the guidelines'
4..16*sqrt(n) range, and never above ``n / TRAIN_PER_LIST`` so k-means gets enough points. The
low end because k-means costs ~``TRAIN_PER_LIST * nlist**2 * d`` and libraries are built on
laptops; the HNSW coarse quantizer (from 1M vectors, as the guidelines advise) keeps both the
assignment of every vector at add time and the probe choice at search time sub-linear in nlist.
``{codes}`` is the first encoding whose estimated size fits the memory budget
(default ``DEFAULT_BUDGET_FRACTION`` of physical RAM). Behind IVF: ``SQfp16`` (2*d bytes per
vector), ``SQ8`` (d bytes), then ``OPQ{m}`` + ``PQ{m}`` (m bytes, largest m dividing d that fits).
Half floats rather than ``Flat`` because scanning the probed lists is memory-bound: at 768-d,
fp16 codes scan about twice as fast per probe as float32 (measured by benchmarks/search_scale.py),
and rounding unit vectors to 11 significant bits moves inner products by ~1e-4, far below the
gaps recall@10 depends on (the build-time tuning measures recall with the codes anyway).
The exact scan (``n <= EXACT_MAX_N``) keeps float32 ``Flat``: exact means exact. With a budget
too small for that even below ``EXACT_MAX_N``, the compressed encodings are used with a full
scan (``IDMap2,SQ8`` ...).

Training uses a random sample of the stored vectors (``TRAIN_PER_LIST * nlist`` points, at
least ``MIN_TRAIN`` for PQ/SQ codebooks). Search parameters (``nprobe``, ``efSearch``,
``quantizer_efSearch``, refine ``k_factor_rf``) are tuned at build time: queries are a held-out
sample of the stored vectors (disjoint from the training sample) perturbed with noise so that a
query is not trivially its own neighbour; ground truth is exact search over all vectors; the
smallest setting reaching ``TARGET_RECALL`` recall@10 wins. The achieved recall and parameters are
saved in the index file and reapplied on load. When no setting reaches the target (strong PQ
compression), the best one is kept and the shortfall logged; ``recall_at_10`` says so honestly.

Deletions and updates: ``add`` replaces the vector of an id already present. Flat-code and IVF
indexes remove in place (``remove_ids``; IVF keeps ids in its inverted lists, flat codes sit
behind ``IndexIDMap2``). Types that cannot remove (HNSW, NSG, ...) sit behind ``IndexIDMap2``
and get a tombstone filter: removed rows are marked dead by internal position, searches over-fetch
and drop them. Positions, not ids, are marked, so a removed id can be added again. When dead
rows exceed ``TOMBSTONE_MAX_FRACTION``, :meth:`VectorIndex.needs_rebuild` says so; it also does
when the live size calls for another index family or nlist (policy-chosen indexes only), or when
more vectors were added after training than the index was trained with (drift).

GPU: with a faiss GPU build and ``faiss.get_num_gpus() > 0`` (or ``gpu=True``), IVF k-means runs
on all GPUs, vectors are added on GPU and searches use a GPU replica (``index_cpu_to_all_gpus``,
sharded over several GPUs). The CPU index stays the master copy that is saved; a mutation drops
the replica, which is rebuilt at the next search. Types the GPU cannot hold fall back to CPU.

Concurrency: searches share a readers-writer lock and run in parallel (faiss releases the GIL);
``add``/``remove`` take it exclusively. ``build`` touches no shared state.

File format (one file, written to ``.tmp`` then ``os.replace``): ``MAGIC``, a JSON header
(spec, dim, recall, tuned params, meta, policy state), the dead positions, then the faiss index.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.errors import InputError, LibraryError

if TYPE_CHECKING:  # faiss costs ~0.1 s to import; CLI commands that never search skip it
    import faiss

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

LOG = logging.getLogger(__name__)

EXACT_SPEC = "IDMap2,Flat"
EXACT_MAX_N = 100_000  # exact below this: one query scans <= 300 MB at 768-d, ~10 ms
HNSW_QUANT_N = 1_000_000  # guidelines: HNSW coarse quantizer from 1M vectors on
TRAIN_PER_LIST = 40  # k-means points per list; faiss warns below 39
MIN_TRAIN = 10_000  # PQ/SQ codebooks (256 centroids per sub-quantizer) need ~39*256 points
# faiss trains OPQ with 50 rotation updates (40 k-means iterations in the first) on up to 65536
# points: minutes at 768-d on 2 cores. The gain flattens early, so training is capped.
OPQ_NITER = 10
OPQ_TRAIN = 32_768
MAX_TRAIN = 1_000_000  # past this, more training points buy nothing but time
TARGET_RECALL = 0.95
TUNE_QUERIES = 500  # recall estimate std-err ~0.003 at 0.95 with k=10
PLATEAU = 0.005  # recall within this of the best counts as the same when the target is out of reach
TUNE_NOISE = 0.5  # norm of the Gaussian noise added to held-out queries
TOMBSTONE_MAX_FRACTION = 0.10  # dead rows slow searches (over-fetch) and waste memory
DRIFT_FACTOR = 1.0  # rebuild when vectors added after training exceed this x the trained size
DEFAULT_BUDGET_FRACTION = 0.25  # of physical RAM, for the vectors of one index
GPU_MAX_K = 2048  # faiss GPU k-selection limit
_ID_BYTES = 8
_MAGIC = b"VSIDX1\n"
_FORMAT_VERSION = 1
_NPROBE_GRID = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048)
_EF_GRID = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
_KFACTOR_GRID = (1, 2, 4, 8, 16, 32)


def gpu_available() -> bool:
    """True when faiss was built with GPU support and sees at least one device."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a hard dependency
        return False
    if not hasattr(faiss, "StandardGpuResources"):
        return False
    try:
        return faiss.get_num_gpus() > 0
    except RuntimeError:  # driver missing or broken: CPU is the clean fallback
        return False


def _use_gpu(gpu: bool | None) -> bool:
    """Resolve a ``gpu`` argument: None means "when available"; True falls back with a warning."""
    if gpu is False:
        return False
    if gpu_available():
        return True
    if gpu:
        LOG.warning("GPU requested but faiss sees no GPU (faiss-cpu build or no device); using CPU")
    return False


def default_memory_budget() -> int:
    """Bytes the vectors of one index may take: ``DEFAULT_BUDGET_FRACTION`` of physical RAM."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # non-POSIX: assume a 16 GiB machine
        ram = 16 << 30
    return int(ram * DEFAULT_BUDGET_FRACTION)


def _pow2_near(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def _nlist_for(n: int) -> int:
    """Power of two near 4*sqrt(n), capped by the training size."""
    nlist = _pow2_near(4 * math.sqrt(n))
    while nlist > 1 and nlist * TRAIN_PER_LIST > n:
        nlist //= 2
    return nlist


def _code_bytes(codes: str, dim: int) -> int:
    if codes == "Flat":
        return 4 * dim
    if codes == "SQ8":
        return dim
    if codes == "SQfp16":
        return 2 * dim
    if codes.startswith("PQ"):
        return int(codes[2:].split("x")[0])
    raise ValueError(codes)


def estimate_bytes(n: int, dim: int, codes: str = "Flat", nlist: int = 0, hnsw: bool = False) -> int:
    """Estimated memory of an index: codes and ids per vector, plus centroids (and their graph).

    Args:
        n: number of vectors.
        dim: vector dimension.
        codes: ``Flat``, ``SQfp16``, ``SQ8`` or ``PQ{m}``.
        nlist: IVF lists (0 for a flat scan).
        hnsw: whether the coarse quantizer is HNSW32 (adds 64 links of 4 bytes per centroid).
    """
    per_list = 4 * dim + (2 * 32 * 4 if hnsw else 0)
    return n * (_code_bytes(codes, dim) + _ID_BYTES) + nlist * per_list


def _pq_m_choices(dim: int) -> list[int]:
    """Sub-quantizer counts for PQ, largest first: divisors of dim with >= 2 dims each."""
    return [m for m in range(dim // 2, 3, -1) if dim % m == 0 and m % 4 == 0]


def choose_spec(n: int, dim: int, memory_budget: int | None = None) -> str:
    """The documented index policy (see the module docstring): a faiss index_factory string.

    Args:
        n: number of live vectors to index.
        dim: vector dimension.
        memory_budget: bytes the index may use; default :func:`default_memory_budget`.

    Returns:
        An ``index_factory`` string for inner-product search.
    """
    if n < 0 or dim <= 0:
        raise InputError(f"cannot choose an index for n={n} vectors of dimension {dim}")
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    flat_scan = n <= EXACT_MAX_N
    nlist = 0 if flat_scan else _nlist_for(n)
    hnsw = n >= HNSW_QUANT_N
    coarse = "" if flat_scan else f"IVF{nlist}{'_HNSW32' if hnsw else ''},"

    for codes in ("Flat", "SQ8") if flat_scan else ("SQfp16", "SQ8"):
        if estimate_bytes(n, dim, codes, nlist, hnsw) <= budget:
            return f"IDMap2,{codes}" if flat_scan else f"{coarse}{codes}"
    choices = _pq_m_choices(dim) or [dim]
    m = next((m for m in choices if estimate_bytes(n, dim, f"PQ{m}", nlist, hnsw) <= budget), None)
    if m is None:
        m = choices[-1]
        LOG.warning(
            "%d vectors of dimension %d do not fit a %d-byte budget even with PQ%d; using it anyway",
            n, dim, budget, m,
        )
    # OPQ rotates the space so that PQ sub-vectors carry balanced variance (better recall).
    return f"IDMap2,OPQ{m},PQ{m}" if flat_scan else f"OPQ{m},{coarse}PQ{m}"


def _family(spec: str) -> tuple[str, int]:
    """(family, nlist) of a spec string: family is "exact", "scan", "ivf" or "other"."""
    parts = [p for p in spec.replace(" ", "").split(",") if p]
    ivf = next((p for p in parts if p.startswith("IVF")), None)
    if ivf:
        digits = ""
        for ch in ivf[3:]:
            if not ch.isdigit():
                break
            digits += ch
        return "ivf", int(digits) if digits else 0
    if parts and parts[-1] == "Flat" and all(p in ("IDMap", "IDMap2", "Flat") for p in parts):
        return "exact", 0
    return "other", 0


def recall_at_k(I: np.ndarray, gt: np.ndarray, k: int = 10) -> float:
    """k-recall@k: mean fraction of the true top-k ids found in the returned top-k.

    Ids are compared as sets per query, so ties ordered differently do not count as misses.
    """
    I = np.asarray(I)[:, :k]
    gt = np.asarray(gt)[:, :k]
    hits = sum(len(np.intersect1d(a[a >= 0], b[b >= 0])) for a, b in zip(I, gt))
    total = int((gt >= 0).sum())
    return hits / total if total else 1.0


class _RWLock:
    """Readers-writer lock: many concurrent searches, exclusive mutations."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


def _as_rows(xb: Any, dim: int | None, what: str = "vectors") -> np.ndarray:
    x = np.ascontiguousarray(xb, dtype=np.float32)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise InputError(f"{what} must be a {want} float32 array, got shape {x.shape}")
    return x


def _as_ids(ids: Any, n: int) -> np.ndarray:
    a = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if a.shape[0] != n:
        raise InputError(f"got {a.shape[0]} ids for {n} vectors")
    if len(np.unique(a)) != n:
        raise InputError("ids must be unique within one call")
    return a


def _unwrap(index: "faiss.Index") -> "faiss.Index":
    """The index behind IDMap/IDMap2, downcast (else the index itself)."""
    import faiss

    index = faiss.downcast_index(index)
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return faiss.downcast_index(index.index)
    return index


def _owned(raw: "faiss.Index") -> "faiss.Index":
    """Downcast an owning proxy, moving ownership to the downcast one (the raw proxy dies)."""
    import faiss

    index = faiss.downcast_index(raw)
    if raw.this.own():
        raw.this.disown()
        index.this.own(True)
    return index


def _is_idmap(index: "faiss.Index") -> bool:
    import faiss

    return isinstance(faiss.downcast_index(index), (faiss.IndexIDMap, faiss.IndexIDMap2))


def _can_remove(index: "faiss.Index") -> bool:
    """Probe remove_ids with an empty selection (no-op if supported, throws otherwise)."""
    try:
        index.remove_ids(np.empty(0, dtype=np.int64))
        return True
    except RuntimeError:
        return False


def _make_index(dim: int, spec: str) -> tuple["faiss.Index", bool]:
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
    index = _owned(index)
    if _is_idmap(index) and faiss.try_extract_index_ivf(_unwrap(index)) is not None:
        index.own_fields = False  # hand the sub-index over to its python wrapper
        index = _unwrap(index)
        index.this.own(True)
    if isinstance(index, faiss.IndexPreTransform):
        for i in range(index.chain.size()):
            vt = faiss.downcast_VectorTransform(index.chain.at(i))
            if isinstance(vt, faiss.OPQMatrix):  # bound its training: see OPQ_NITER
                vt.niter = min(vt.niter, OPQ_NITER)
                vt.niter_pq_0 = min(vt.niter_pq_0, OPQ_NITER)
                vt.max_train_points = min(vt.max_train_points, OPQ_TRAIN)
    if faiss.try_extract_index_ivf(index) is not None and _can_remove(index):
        return index, True
    if not _is_idmap(index):
        inner = index
        index = faiss.IndexIDMap2(inner)
        inner.this.disown()  # the IDMap2 deletes it
        index.own_fields = True
    return index, _can_remove(index)


def _clone_to_gpu(index: "faiss.Index") -> "faiss.Index":
    """A GPU replica of a CPU index on all GPUs (sharded when several, so memory adds up)."""
    import faiss

    co = faiss.GpuMultipleClonerOptions()
    co.shard = faiss.get_num_gpus() > 1
    return faiss.index_cpu_to_all_gpus(index, co=co)


def _gpu_to_cpu(index: "faiss.Index") -> "faiss.Index":
    import faiss

    return faiss.index_gpu_to_cpu(index)


def _gpu_clustering_index(d: int) -> "faiss.Index":
    """A flat L2 index on all GPUs for IVF k-means assignment (spherical centroids: L2 == IP)."""
    import faiss

    return faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(d))


def _quantizer_ef(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantizer that must return ``nprobe`` good centroids (with slack)."""
    return max(64, 2 * nprobe)


def _apply_params(index: "faiss.Index", params: dict[str, float], gpu: bool = False) -> None:
    """Set tuned search parameters (nprobe, efSearch, ...) on a CPU or GPU index."""
    import faiss

    if not params:
        return
    # GpuParameterSpace also knows CPU indexes; it only exists in GPU builds of faiss
    ps = getattr(faiss, "GpuParameterSpace", faiss.ParameterSpace)() if gpu else faiss.ParameterSpace()
    target = index if gpu else _unwrap(index)
    for name, val in params.items():
        try:
            ps.set_index_parameter(target, name, float(val))
        except (RuntimeError, TypeError) as e:  # a GPU index without that knob: keep its default
            LOG.log(logging.DEBUG if gpu else logging.WARNING, "cannot set %s=%s on %s: %s",
                    name, val, type(target).__name__, str(e).strip().splitlines()[-1])


class _CountingWriter:
    """Callback for faiss.PyCallbackIOWriter that counts bytes without keeping them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, buf: bytes) -> int:
        self.n += len(buf)
        return len(buf)


def _read_header(f: Any, path: Path, hint: str) -> dict[str, Any]:
    """Read the magic and the JSON header of an open index file."""
    if f.read(len(_MAGIC)) != _MAGIC:
        raise LibraryError(f"{path} is not a vidsearch vector index; {hint}")
    (hlen,) = struct.unpack("<Q", f.read(8))
    h = json.loads(f.read(hlen).decode())
    if h.get("format") != _FORMAT_VERSION:
        raise LibraryError(f"{path} has unsupported index format {h.get('format')}; {hint}")
    return h


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
        index: "faiss.Index",
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
        self._idmap = _is_idmap(index)
        self._dead = np.zeros(index.ntotal, dtype=bool)  # tombstones by internal position
        self._n_dead = 0
        self._id_map = self._read_id_map()
        self._lock = _RWLock()
        self._gpu = gpu
        self._gpu_index: faiss.Index | None = None
        self._gpu_failed = False
        self._gpu_lock = threading.Lock()

    # ------------------------------------------------------------------ construction

    @classmethod
    def empty(cls, dim: int) -> "VectorIndex":
        """An exact, empty index ready for :meth:`add`."""
        if dim <= 0:
            raise InputError(f"vector dimension must be positive, got {dim}")
        index, removable = _make_index(dim, EXACT_SPEC)
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
    ) -> "VectorIndex":
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

        xb = _as_rows(xb, None)
        n, d = xb.shape
        if d == 0:
            raise InputError("vectors must have at least one dimension")
        ids = _as_ids(ids, n)
        auto = spec is None
        spec = choose_spec(n, d, memory_budget) if auto else str(spec).strip()
        index, removable = _make_index(d, spec)
        use_gpu = _use_gpu(gpu)
        t0 = time.perf_counter()

        exact = isinstance(_unwrap(index), faiss.IndexFlat)
        rng = np.random.default_rng(0x5EED)
        perm = rng.permutation(n)
        # held-out tuning queries come first in the permutation, training points after them
        nq = 0 if exact else min(TUNE_QUERIES, max(1, n // 5))
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
                    ivf.clustering_index = _gpu_clustering_index(ivf.d)
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

        obj = cls(index, dim=d, spec=spec, removable=removable, auto=auto,
                  memory_budget=memory_budget, gpu=use_gpu)
        obj._add_built(ids, xb)
        t_add = time.perf_counter() - t0 - t_train
        if not exact:
            obj._tune(ids, xb, perm[:nq])
        obj.trained_n = n
        obj.added_since_build = 0
        LOG.info(
            "built %s over %d x %d in %.1fs (train %.1fs, add %.1fs); recall@10=%s params=%s",
            spec, n, d, time.perf_counter() - t0, t_train, t_add,
            "exact" if obj.recall_at_10 is None else f"{obj.recall_at_10:.3f}", obj.params,
        )
        return obj

    def _add_built(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add the build's vectors, on GPU when enabled (keeping the replica), else on CPU."""
        if self._gpu and not self._gpu_failed:
            try:
                gpu_index = _clone_to_gpu(self._index)
                gpu_index.add_with_ids(xb, ids)
                cpu = _gpu_to_cpu(gpu_index)
                self._index = cpu
                self._idmap = _is_idmap(cpu)
                self._removable = _can_remove(cpu)
                self._gpu_index = gpu_index
                self._sync_positions()
                return
            except Exception as e:  # noqa: BLE001 - GPU cannot hold this type: CPU fallback
                LOG.warning("GPU add failed for %s (%s); using CPU", self.spec, e)
                self._gpu_failed = True
        self._index.add_with_ids(xb, ids)
        self._sync_positions()

    def _sync_positions(self) -> None:
        """Grow the tombstone mask and refresh the id map after rows were added."""
        grow = self._index.ntotal - len(self._dead)
        if grow > 0:
            self._dead = np.concatenate([self._dead, np.zeros(grow, dtype=bool)])
        self._id_map = self._read_id_map()

    def _read_id_map(self) -> np.ndarray | None:
        import faiss

        if not self._idmap:
            return None
        return faiss.vector_to_array(faiss.downcast_index(self._index).id_map).astype(np.int64)

    # ------------------------------------------------------------------ tuning

    def _knobs(self) -> tuple[str | None, tuple[int, ...], bool]:
        """(main knob, its grid, has refine k_factor) for this index type."""
        import faiss

        inner = _unwrap(self._index)
        refine = isinstance(inner, faiss.IndexRefine)
        base = faiss.downcast_index(inner.base_index) if refine else inner
        ivf = faiss.try_extract_index_ivf(base)
        if ivf is not None:
            return "nprobe", tuple(p for p in _NPROBE_GRID if p <= ivf.nlist) or (1,), refine
        if isinstance(base, faiss.IndexPreTransform):
            base = faiss.downcast_index(base.index)
        if isinstance(base, faiss.IndexHNSW):
            return "efSearch", _EF_GRID, refine
        return None, (), refine

    def _set(self, params: dict[str, float]) -> None:
        import faiss

        full = dict(params)
        ivf = faiss.try_extract_index_ivf(_unwrap(self._index))
        if "nprobe" in full and ivf is not None:
            if isinstance(faiss.downcast_index(ivf.quantizer), faiss.IndexHNSW):
                full["quantizer_efSearch"] = _quantizer_ef(int(full["nprobe"]))
        self.params = full
        _apply_params(self._index, full)
        if self._gpu_index is not None:
            _apply_params(self._gpu_index, full, gpu=True)

    def _tune(self, ids: np.ndarray, xb: np.ndarray, held: np.ndarray, k: int = 10) -> None:
        """Smallest search effort reaching TARGET_RECALL recall@k on held-out noisy queries."""
        import faiss

        rng = np.random.default_rng(0xC0FFEE)
        xq = xb[np.sort(held)] + rng.standard_normal((len(held), xb.shape[1]), dtype=np.float32) * (
            TUNE_NOISE / math.sqrt(xb.shape[1])
        )
        xq /= np.linalg.norm(xq, axis=1, keepdims=True)
        kk = min(k, len(xb))
        _, gt_pos = faiss.knn(xq, xb, kk, metric=faiss.METRIC_INNER_PRODUCT)
        gt = np.where(gt_pos >= 0, ids[np.clip(gt_pos, 0, None)], -1)

        def measure(params: dict[str, float]) -> float:
            self._set(params)
            _, I = self._search_locked(xq, kk)
            return recall_at_k(I, gt, kk)

        knob, grid, refine = self._knobs()
        # IndexRefine's re-ranking depth is called k_factor_rf in ParameterSpace
        base: dict[str, float] = {"k_factor_rf": float(_KFACTOR_GRID[-2])} if refine else {}
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
            for kf in _KFACTOR_GRID:
                params = {**best[1], "k_factor_rf": float(kf)}
                r = measure(params)
                if r >= TARGET_RECALL:
                    best = (r, params)
                    break
        self._set(best[1])
        self.recall_at_10 = float(best[0])
        if best[0] < TARGET_RECALL:
            LOG.warning(
                "%s reaches recall@10=%.3f at most (target %.2f); consider a larger memory budget",
                self.spec, best[0], TARGET_RECALL,
            )

    # ------------------------------------------------------------------ queries

    @property
    def ntotal(self) -> int:
        """Number of live vectors (tombstoned rows excluded)."""
        return int(self._index.ntotal) - self._n_dead

    @property
    def n_dead(self) -> int:
        """Rows removed by tombstone that still occupy the index."""
        return self._n_dead

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best ids per query by inner product; safe to call from several threads.

        Args:
            xq: float32 queries (nq, dim), L2-normalized.
            k: neighbours per query.

        Returns:
            ``D`` (nq, k) float32 scores, higher is better, ``-inf`` where missing, and ``I``
            (nq, k) int64 ids, ``-1`` where fewer than k results exist.
        """
        xq = _as_rows(xq, self.dim, "queries")
        if int(k) <= 0:
            raise InputError(f"k must be a positive number of results, got {k}")
        self._lock.acquire_read()
        try:
            return self._search_locked(xq, int(k))
        finally:
            self._lock.release_read()

    def _search_locked(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = xq.shape[0]
        if nq == 0 or self.ntotal == 0:
            return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        if self._n_dead:
            D, I = self._search_tombstoned(xq, k)
        else:
            # GPU indexes return at most GPU_MAX_K neighbours; deeper searches stay on the CPU
            D, I = (self._searcher() if k <= GPU_MAX_K else self._index).search(xq, k)
            short = I[:, -1] < 0
            if short.any() and self.ntotal >= k:
                D, I = self._widen_probes(xq, k, D, I, short)
        D = np.where(I < 0, np.float32(-np.inf), D).astype(np.float32, copy=False)
        return D, I.astype(np.int64, copy=False)

    def _searcher(self) -> "faiss.Index":
        """The GPU replica when enabled and healthy (built lazily after mutations), else CPU."""
        if not self._gpu or self._gpu_failed:
            return self._index
        replica = self._gpu_index
        if replica is not None:
            return replica
        with self._gpu_lock:
            if self._gpu_index is None and not self._gpu_failed:
                try:
                    replica = _clone_to_gpu(self._index)
                    _apply_params(replica, self.params, gpu=True)
                    self._gpu_index = replica
                except Exception as e:  # noqa: BLE001 - type not on GPU: search on CPU
                    LOG.warning("cannot search %s on GPU (%s); using CPU", self.spec, e)
                    self._gpu_failed = True
            return self._gpu_index if self._gpu_index is not None else self._index

    def _widen_probes(self, xq: np.ndarray, k: int, D: np.ndarray, I: np.ndarray, short: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
                qparams = faiss.SearchParametersHNSW(efSearch=_quantizer_ef(nprobe))
                params.quantizer_params = qparams
            rows = np.flatnonzero(short)
            D[rows], I[rows] = index.search(xq[rows], k, params=params)
            short = I[:, -1] < 0
        return D, I

    def _search_tombstoned(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search the rows behind IDMap2 by position, over-fetching to make up for dead rows."""
        inner = _unwrap(self._index)
        rows = int(inner.ntotal)
        kk = min(rows, k + min(self._n_dead, 2 * k + 16))
        while True:
            D, P = inner.search(xq, kk)
            alive = P >= 0
            alive[alive] = ~self._dead[P[alive]]
            short = alive.sum(axis=1) < k
            # a row whose raw list is not full has exhausted what the index can return
            if not (short & (P[:, -1] >= 0)).any() or kk >= rows:
                break
            kk = min(rows, kk * 4)
        order = np.argsort(~alive, axis=1, kind="stable")[:, :k]  # live hits first, in rank order
        D = np.take_along_axis(D, order, axis=1)
        P = np.take_along_axis(P, order, axis=1)
        ok = np.take_along_axis(alive, order, axis=1)
        I = np.where(ok, self._id_map[np.where(ok, P, 0)], -1)
        if I.shape[1] < k:  # fewer rows than k in the whole index
            pad = k - I.shape[1]
            I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
            D = np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf)
        return D, I

    def ids(self) -> np.ndarray:
        """Every live id in the index (int64, in index order)."""
        self._lock.acquire_read()
        try:
            return self._ids_locked()
        finally:
            self._lock.release_read()

    def _ids_locked(self) -> np.ndarray:
        import faiss

        if self._id_map is not None:
            return self._id_map[~self._dead] if self._n_dead else self._id_map.copy()
        ivf = faiss.extract_index_ivf(self._index)
        invlists = ivf.invlists
        out = []
        for l in range(ivf.nlist):
            size = invlists.list_size(l)
            if size:
                ptr = invlists.get_ids(l)
                out.append(faiss.rev_swig_ptr(ptr, size).copy())
                invlists.release_ids(l, ptr)
        return np.concatenate(out).astype(np.int64) if out else np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ mutations

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors; an id already present gets its vector replaced.

        Args:
            ids: int64 ids, unique within the call.
            xb: float32 rows (n, dim), L2-normalized.
        """
        xb = _as_rows(xb, self.dim)
        ids = _as_ids(ids, xb.shape[0])
        if not len(ids):
            return
        self._lock.acquire_write()
        try:
            present = ids[np.isin(ids, self._ids_locked())]
            if len(present):
                self._remove_locked(present)
            self._index.add_with_ids(xb, ids)
            self._sync_positions()
            self.added_since_build += len(ids)
            self._gpu_index = None  # stale: rebuilt at the next search
        finally:
            self._lock.release_write()

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (absent ones are ignored); returns how many vectors were removed."""
        ids = np.unique(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1))
        if not len(ids):
            return 0
        self._lock.acquire_write()
        try:
            n = self._remove_locked(ids)
            if n:
                self._gpu_index = None
            return n
        finally:
            self._lock.release_write()

    def _remove_locked(self, ids: np.ndarray) -> int:
        if self._removable:
            n = int(self._index.remove_ids(ids))
            if n:
                self._dead = np.zeros(self._index.ntotal, dtype=bool)
                self._id_map = self._read_id_map()
            return n
        hit = np.isin(self._id_map, ids) & ~self._dead
        n = int(hit.sum())
        self._dead |= hit
        self._n_dead += n
        return n

    # ------------------------------------------------------------------ policy

    def needs_rebuild(self) -> bool:
        """True when a rebuild would serve better (see the module docstring for the rules)."""
        rows = int(self._index.ntotal)
        if rows and self._n_dead / rows > TOMBSTONE_MAX_FRACTION:
            return True
        family, nlist = _family(self.spec)
        if family not in ("exact",) and self.trained_n and (
            self.added_since_build > DRIFT_FACTOR * self.trained_n
        ):
            return True  # centroids/codebooks were trained on a much smaller library
        if not self.auto:
            return False
        n = self.ntotal
        want_family, want_nlist = _family(choose_spec(n, self.dim, self.memory_budget))
        if family == "ivf" and want_family != "ivf" and n >= EXACT_MAX_N // 2:
            return False  # hysteresis: do not flip back to a flat scan at the threshold
        if family != want_family:
            return True
        if family == "ivf" and nlist and want_nlist and max(nlist, want_nlist) >= 4 * min(nlist, want_nlist):
            return True
        return self._codes() != _codes_of(choose_spec(n, self.dim, self.memory_budget))

    def _codes(self) -> str:
        return _codes_of(self.spec)

    # ------------------------------------------------------------------ persistence

    def nbytes(self) -> int:
        """Serialized size of the faiss index, a good proxy for its memory."""
        import faiss

        counter = _CountingWriter()
        self._lock.acquire_read()
        try:
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(counter))
        finally:
            self._lock.release_read()
        return counter.n

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for ``info``: spec, size, recall, tuned params, state."""
        return {
            "spec": self.spec,
            "dim": self.dim,
            "ntotal": self.ntotal,
            "tombstones": self._n_dead,
            "recall_at_10": self.recall_at_10,
            "params": dict(self.params),
            "auto": self.auto,
            "gpu": bool(self._gpu and not self._gpu_failed),
            "needs_rebuild": self.needs_rebuild(),
        }

    def _header(self) -> dict[str, Any]:
        return {
            "format": _FORMAT_VERSION,
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
        """Write the index atomically (``.tmp`` then ``os.replace``): header, tombstones, faiss.

        Raises:
            LibraryError: the file cannot be written (the previous file, if any, is intact).
        """
        import faiss

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self._lock.acquire_read()
        try:
            try:
                header = json.dumps(self._header()).encode()
            except (TypeError, ValueError) as e:
                raise LibraryError(f"index metadata for {path} is not JSON-serializable: {e}") from None
            dead = np.flatnonzero(self._dead).astype("<i8")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as f:
                    f.write(_MAGIC)
                    f.write(struct.pack("<Q", len(header)))
                    f.write(header)
                    f.write(struct.pack("<Q", len(dead)))
                    f.write(dead.tobytes())
                    faiss.write_index(self._index, faiss.PyCallbackIOWriter(f.write))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except (OSError, RuntimeError) as e:
                tmp.unlink(missing_ok=True)
                reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                raise LibraryError(f"cannot write vector index {path}: {reason}") from None
        finally:
            self._lock.release_read()
        LOG.debug("saved %s (%d vectors) to %s", self.spec, self.ntotal, path)

    @staticmethod
    def read_header(path: Path) -> dict[str, Any]:
        """The JSON header of a saved index (spec, recall, meta, ntotal) without loading the index.

        Raises:
            LibraryError: the file is missing or not a vidsearch vector index.
        """
        path = Path(path)
        try:
            with open(path, "rb") as f:
                return _read_header(f, path, "rebuild it with `vidsearch reindex`")
        except (OSError, ValueError, struct.error) as e:
            raise LibraryError(f"cannot read vector index {path}: {e}") from None

    @classmethod
    def load(cls, path: Path, gpu: bool | None = None) -> "VectorIndex":
        """Read an index written by :meth:`save`; tuned parameters are reapplied.

        Raises:
            LibraryError: the file is missing, truncated or not a vidsearch vector index.
        """
        import faiss

        path = Path(path)
        hint = "rebuild it with `vidsearch reindex`"
        try:
            with open(path, "rb") as f:
                h = _read_header(f, path, hint)
                (ndead,) = struct.unpack("<Q", f.read(8))
                raw = f.read(8 * ndead)
                if len(raw) != 8 * ndead:
                    raise LibraryError(f"{path} is truncated; {hint}")
                dead = np.frombuffer(raw, dtype="<i8").astype(np.int64)
                index = _owned(faiss.read_index(faiss.PyCallbackIOReader(f.read)))
        except LibraryError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError, struct.error, UnicodeDecodeError) as e:
            reason = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
            raise LibraryError(f"cannot read vector index {path}: {reason}; {hint}") from None
        if index.d != h["dim"] or (len(dead) and int(dead.max()) >= index.ntotal):
            raise LibraryError(f"vector index {path} is inconsistent; {hint}")
        obj = cls(index, dim=int(h["dim"]), spec=h["spec"], removable=_can_remove(index),
                  auto=bool(h.get("auto")), memory_budget=h.get("memory_budget"), gpu=_use_gpu(gpu))
        obj._dead[dead] = True
        obj._n_dead = len(dead)
        obj.recall_at_10 = h.get("recall_at_10")
        obj.meta = dict(h.get("meta") or {})
        obj.trained_n = int(h.get("trained_n") or 0)
        obj.added_since_build = int(h.get("added_since_build") or 0)
        obj._set(dict(h.get("params") or {}))
        return obj

    def __repr__(self) -> str:
        r = "exact" if self.recall_at_10 is None else f"recall@10={self.recall_at_10:.3f}"
        return f"VectorIndex({self.spec!r}, dim={self.dim}, ntotal={self.ntotal}, {r})"


def _codes_of(spec: str) -> str:
    """The vector encoding of a spec (last component, e.g. ``Flat``, ``SQ8``, ``PQ64``)."""
    parts = [p for p in spec.replace(" ", "").split(",") if p]
    return parts[-1] if parts else ""
