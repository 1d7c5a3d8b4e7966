"""Which FAISS index a space gets, and when it should get another.

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

Rebuild rules (:func:`needs_rebuild`): dead rows over ``TOMBSTONE_MAX_FRACTION``; more vectors
added after training than it was trained with (drift, ``DRIFT_FACTOR``); and, for policy-chosen
indexes only, a live size that calls for another family, nlist (4x off) or encoding.
"""

from __future__ import annotations

import logging
import math
import os

from vidsearch.errors import InputError

__all__ = [
    "EXACT_SPEC",
    "EXACT_MAX_N",
    "HNSW_QUANT_N",
    "TRAIN_PER_LIST",
    "MIN_TRAIN",
    "OPQ_NITER",
    "OPQ_TRAIN",
    "MAX_TRAIN",
    "TOMBSTONE_MAX_FRACTION",
    "DRIFT_FACTOR",
    "DEFAULT_BUDGET_FRACTION",
    "default_memory_budget",
    "nlist_for",
    "estimate_bytes",
    "pq_m_choices",
    "choose_spec",
    "family",
    "codes_of",
    "needs_rebuild",
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
TOMBSTONE_MAX_FRACTION = 0.10  # dead rows slow searches (over-fetch) and waste memory
DRIFT_FACTOR = 1.0  # rebuild when vectors added after training exceed this x the trained size
DEFAULT_BUDGET_FRACTION = 0.25  # of physical RAM, for the vectors of one index
_ID_BYTES = 8


def default_memory_budget() -> int:
    """Bytes the vectors of one index may take: ``DEFAULT_BUDGET_FRACTION`` of physical RAM."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # non-POSIX: assume a 16 GiB machine
        ram = 16 << 30
    return int(ram * DEFAULT_BUDGET_FRACTION)


def _pow2_near(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def nlist_for(n: int) -> int:
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


def pq_m_choices(dim: int) -> list[int]:
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
    nlist = 0 if flat_scan else nlist_for(n)
    hnsw = n >= HNSW_QUANT_N
    coarse = "" if flat_scan else f"IVF{nlist}{'_HNSW32' if hnsw else ''},"

    for codes in ("Flat", "SQ8") if flat_scan else ("SQfp16", "SQ8"):
        if estimate_bytes(n, dim, codes, nlist, hnsw) <= budget:
            return f"IDMap2,{codes}" if flat_scan else f"{coarse}{codes}"
    choices = pq_m_choices(dim) or [dim]
    m = next((m for m in choices if estimate_bytes(n, dim, f"PQ{m}", nlist, hnsw) <= budget), None)
    if m is None:
        m = choices[-1]
        LOG.warning(
            "%d vectors of dimension %d do not fit a %d-byte budget even with PQ%d; using it anyway",
            n,
            dim,
            budget,
            m,
        )
    # OPQ rotates the space so that PQ sub-vectors carry balanced variance (better recall).
    return f"IDMap2,OPQ{m},PQ{m}" if flat_scan else f"OPQ{m},{coarse}PQ{m}"


def family(spec: str) -> tuple[str, int]:
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


def codes_of(spec: str) -> str:
    """The vector encoding of a spec (last component, e.g. ``Flat``, ``SQ8``, ``PQ64``)."""
    parts = [p for p in spec.replace(" ", "").split(",") if p]
    return parts[-1] if parts else ""


def needs_rebuild(
    spec: str,
    dim: int,
    *,
    auto: bool,
    memory_budget: int | None,
    rows: int,
    n_dead: int,
    trained_n: int,
    added_since_build: int,
) -> bool:
    """Whether an index in this state would be better rebuilt (see the module docstring).

    Args:
        spec: the index's factory string.
        dim: vector dimension.
        auto: whether the policy chose ``spec`` (only then may it ask for another).
        memory_budget: the budget the policy was given (None: default).
        rows: rows in the index, dead ones included.
        n_dead: tombstoned rows.
        trained_n: vectors present when it was built and trained.
        added_since_build: vectors added since.
    """
    if rows and n_dead / rows > TOMBSTONE_MAX_FRACTION:
        return True
    fam, nlist = family(spec)
    if fam not in ("exact",) and trained_n and added_since_build > DRIFT_FACTOR * trained_n:
        return True  # centroids/codebooks were trained on a much smaller library
    if not auto:
        return False
    n = rows - n_dead
    want = choose_spec(n, dim, memory_budget)
    want_family, want_nlist = family(want)
    if fam == "ivf" and want_family != "ivf" and n >= EXACT_MAX_N // 2:
        return False  # hysteresis: do not flip back to a flat scan at the threshold
    if fam != want_family:
        return True
    if fam == "ivf" and nlist and want_nlist and max(nlist, want_nlist) >= 4 * min(nlist, want_nlist):
        return True
    return codes_of(spec) != codes_of(want)
