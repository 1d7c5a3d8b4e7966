"""IVF indexes whose inverted lists live in a file: libraries larger than RAM still answer.

An IVF index is a coarse quantizer (``nlist`` centroids, small) plus inverted lists (every
vector's code and id, large). faiss's ``OnDiskInvertedLists`` keeps the lists in one
memory-mapped ``.ivfdata`` file, so only the quantizer and the lists' offsets live in RAM and a
search touches only the ``nprobe`` lists it scans (the operating system's page cache keeps the
hot ones). This is the shape of faiss ``contrib/ondisk.py`` and its "indexing 1G vectors" demo:

1. train the IVF (quantizer, codebooks) on a sample that fits in RAM;
2. add the vectors shard by shard, each shard a separate small index written to a temporary
   file (RAM holds one shard at a time);
3. merge every shard's lists into one ``.ivfdata`` file (``merge_ondisk``, which reads the
   shards memory-mapped, so the total may exceed RAM).

The index file records the ``.ivfdata`` by its base name and is read with
``IO_FLAG_ONDISK_SAME_DIR``, so the pair can be moved together (a library folder can move).
Both files are written under temporary names and renamed at the end: a crash leaves the old
pair, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.errors import InputError, LibraryError
from vidsearch.fileio import atomic_write
from vidsearch.store.vectors.plumbing import ivf_ids

if TYPE_CHECKING:
    import faiss

__all__ = ["IVFDATA_SUFFIX", "OnDiskIVF", "OnDiskVectorIndex", "build_ondisk", "build_from_stream"]

LOG = logging.getLogger(__name__)

IVFDATA_SUFFIX = ".ivfdata"
# Training rows sampled from a stream (k-means and codebooks need far fewer than a library holds).
MAX_TRAIN = 131_072
# Removed ids are filtered out of on-disk results; a search fetches this many extra at most.
MAX_OVERFETCH = 1000
# Past this share of the on-disk size, the delta and removals deserve a `reindex --on-disk`.
DELTA_WARN_FRACTION = 0.1


@contextlib.contextmanager
def _c_stdout_to_stderr() -> Iterator[None]:
    """faiss's on-disk lists ``printf`` progress to stdout; keep stdout for ``--json`` output."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _ivfdata_path(path: Path) -> Path:
    return path.with_name(path.name + IVFDATA_SUFFIX)


def _trained_ivf(dim: int, spec: str, train: np.ndarray) -> faiss.Index:
    import faiss

    try:
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise InputError(
            f"{spec!r} is not a faiss index_factory string: {str(e).splitlines()[-1][:120]}", argument="index_spec"
        ) from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        raise InputError(f"needs an IVF index spec (e.g. 'IVF4096,PQ64'), got {spec!r}", argument="on_disk")
    if isinstance(index, faiss.IndexIVFPQR):
        raise InputError(
            f"cannot hold {spec!r} (IVFPQR has no on-disk lists)", argument="on_disk", hint="drop the refinement"
        )
    if len(train) < ivf.nlist:
        raise InputError(f"index spec {spec!r} needs at least {ivf.nlist} vectors to train, got {len(train)}")
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    return index


def build_ondisk(
    path: Path | str,
    dim: int,
    spec: str,
    train: np.ndarray,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    nprobe: int = 16,
) -> OnDiskIVF:
    """Build an IVF index at ``path`` whose lists live in ``<path>.ivfdata``.

    Args:
        path: the index file to write (its ``.ivfdata`` sits next to it).
        dim: vector dimension.
        spec: faiss index_factory string of an IVF index (``"IVF4096,PQ64"``, ``"OPQ32,IVF65536_HNSW32,PQ32"``).
        train: float32 ``[nt, dim]`` training sample (L2-normalized rows).
        chunks: ``(ids, xb)`` pairs, int64 ``[n]`` and float32 ``[n, dim]``; each is one shard,
            so a chunk's size bounds the RAM the add step needs.
        nprobe: lists scanned per query, saved with the index.

    Returns:
        The index, opened from the files written.

    Raises:
        InputError: ``spec`` is not an IVF spec faiss can build on disk, or too few training rows.
    """
    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    trained = _trained_ivf(dim, spec, train)
    t_train = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="ondisk-", dir=path.parent) as tmp:
        blank = faiss.serialize_index(trained)
        shards: list[str] = []
        for k, (ids, xb) in enumerate(chunks):
            shard = faiss.deserialize_index(blank)
            shard.add_with_ids(np.ascontiguousarray(xb, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
            name = os.path.join(tmp, f"shard{k:05d}.index")
            faiss.write_index(shard, name)
            shards.append(name)
            del shard
        t_add = time.perf_counter() - t0 - t_train
        final_data = _ivfdata_path(path)
        tmp_data = Path(tmp) / final_data.name
        if shards:
            with _c_stdout_to_stderr():
                merge_ondisk(trained, shards, str(tmp_data))
        else:  # an empty library: empty lists in a file of their own
            ivf = faiss.extract_index_ivf(trained)
            lists = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp_data))
            ivf.replace_invlists(lists, True)
            lists.this.disown()
        ivf = faiss.extract_index_ivf(trained)
        ivf.nprobe = int(nprobe)
        # Record the data file by the name it will have, read relative to the index's folder.
        faiss.downcast_InvertedLists(ivf.invlists).filename = final_data.name
        tmp_index = os.path.join(tmp, path.name)
        faiss.write_index(trained, tmp_index)
        del trained
        os.replace(tmp_data, final_data)
        os.replace(tmp_index, path)
    LOG.info(
        "built on-disk %s at %s in %.1fs (train %.1fs, add %.1fs)", spec, path, time.perf_counter() - t0, t_train, t_add
    )
    return OnDiskIVF.load(path, spec=spec)


def build_from_stream(
    path: Path | str,
    dim: int,
    spec: str,
    stream: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    n: int,
    nprobe: int = 16,
    seed: int = 0,
) -> OnDiskIVF:
    """:func:`build_ondisk` over vectors read twice from ``stream()`` (never all in RAM).

    The first pass keeps a uniform random sample of about :data:`MAX_TRAIN` rows for training,
    the second adds every chunk as a shard.

    Args:
        stream: returns a fresh iterator of ``(ids, xb)`` chunks on each call (e.g. the store's
            chunked read of a space).
        n: how many vectors ``stream`` yields (for the sampling rate).
    """
    rng = np.random.default_rng(seed)
    rate = min(1.0, MAX_TRAIN / max(1, n))
    sample = [xb[rng.random(len(xb)) < rate] for _, xb in stream()]
    train = np.concatenate(sample) if sample else np.zeros((0, dim), dtype=np.float32)
    return build_ondisk(path, dim, spec, train, stream(), nprobe=nprobe)


class OnDiskIVF:
    """An IVF index with memory-mapped inverted lists (see the module docstring).

    Attributes:
        path: the index file; the lists are in ``path + ".ivfdata"``.
        spec: the index_factory string (informational).
        dim: vector dimension.
    """

    def __init__(self, index: faiss.Index, path: Path, spec: str) -> None:
        """Wrap a loaded index; use :meth:`load` or :func:`build_ondisk`."""
        import faiss

        self.index = index
        self.path = path
        self.spec = spec
        self.dim = int(index.d)
        self._ivf = faiss.extract_index_ivf(index)

    @classmethod
    def load(cls, path: Path | str, spec: str = "") -> OnDiskIVF:
        """Open an index written by :func:`build_ondisk` (the ``.ivfdata`` is mapped, not read).

        Raises:
            LibraryError: a file is missing or unreadable.
        """
        import faiss

        path = Path(path)
        data = _ivfdata_path(path)
        if not path.is_file() or not data.is_file():
            raise LibraryError(
                f"on-disk index {path} or its {data.name} is missing",
                path=path,
                hint="rebuild the on-disk index",
                remedy="reindex_on_disk",
            )
        try:
            with _c_stdout_to_stderr():
                index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR)
        except RuntimeError as e:
            raise LibraryError(f"cannot read on-disk index {path}: {str(e).splitlines()[-1][:120]}") from None
        return cls(index, path, spec)

    @property
    def ntotal(self) -> int:
        """Vectors in the index."""
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        """Lists scanned per query."""
        return int(self._ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._ivf.nprobe = max(1, min(int(value), int(self._ivf.nlist)))

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inner-product search: scores ``D`` and ids ``I`` (``-1`` where fewer than ``k`` found)."""
        xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(-1, self.dim)
        return self.index.search(xq, int(k))

    def resident_bytes(self) -> int:
        """Bytes kept in RAM besides the mapped lists: the quantizer, codebooks and list offsets."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)

    def disk_bytes(self) -> int:
        """Bytes of the index file plus its ``.ivfdata``."""
        return self.path.stat().st_size + _ivfdata_path(self.path).stat().st_size

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (for ``vidsearch info`` and the scale benchmark)."""
        return {
            "spec": self.spec,
            "on_disk": True,
            "vectors": self.ntotal,
            "nlist": int(self._ivf.nlist),
            "nprobe": self.nprobe,
            "resident_bytes": self.resident_bytes(),
            "disk_bytes": self.disk_bytes(),
        }


class OnDiskVectorIndex:
    """A library's vector index over an immutable :class:`OnDiskIVF` plus an in-RAM delta.

    The on-disk lists never change after the build (so a crash cannot tear them): vectors
    committed later go to a small exact delta, removed ids are filtered out of the on-disk
    results, and both are saved beside the lists (``<lists>.state.npz``, atomic). Searches
    over-fetch by the number of removed ids (at most :data:`MAX_OVERFETCH`) and merge the
    delta's exact scores. ``vidsearch reindex --on-disk`` folds the delta into new lists.

    It offers the part of :class:`~vidsearch.store.vectors.VectorIndex` that the library,
    search and the indexer use: ``search``, ``add``, ``remove``, ``ids``, ``ntotal``,
    ``needs_rebuild``, ``save``, ``describe``, ``nbytes`` and the ``dim``/``spec``/``meta``
    attributes.
    """

    def __init__(self, base: OnDiskIVF) -> None:
        """Wrap ``base`` with an empty delta; use :meth:`load` for a saved one."""
        self.base = base
        self.dim = base.dim
        self.spec = base.spec
        self.recall_at_10: float | None = None
        self.meta: dict[str, Any] = {}
        self.auto = False
        self._base_ids = np.sort(ivf_ids(base.index))
        self._removed = np.zeros(0, dtype=np.int64)  # sorted base ids that are gone
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_xb = np.zeros((0, self.dim), dtype=np.float32)

    @property
    def params(self) -> dict[str, float]:
        """Search parameters (``nprobe``)."""
        return {"nprobe": float(self.base.nprobe)}

    @staticmethod
    def state_path(base_path: Path) -> Path:
        """Where the delta and removals of the index at ``base_path`` are saved."""
        return base_path.with_name(base_path.name + ".state.npz")

    @classmethod
    def load(cls, base_path: Path | str) -> OnDiskVectorIndex:
        """Open the lists at ``base_path`` and the saved delta, if any."""

        base_path = Path(base_path)
        obj = cls(OnDiskIVF.load(base_path))
        state = cls.state_path(base_path)
        if state.exists():
            try:
                with np.load(state, allow_pickle=False) as z:
                    obj._removed = z["removed"].astype(np.int64)
                    obj._delta_ids = z["delta_ids"].astype(np.int64)
                    obj._delta_xb = z["delta_xb"].astype(np.float32).reshape(-1, obj.dim)
                    header = json.loads(str(z["header"]))
            except (OSError, ValueError, KeyError) as e:
                raise LibraryError(
                    f"cannot read {state}: {e}", path=state, hint="rebuild the on-disk index", remedy="reindex_on_disk"
                ) from None
            obj.meta = header.get("meta", {})
            obj.spec = header.get("spec", obj.spec)
            obj.base.spec = obj.spec
            obj.base.nprobe = int(header.get("nprobe", obj.base.nprobe))
        return obj

    @classmethod
    def read_header(cls, base_path: Path | str) -> dict[str, Any] | None:
        """What the last save recorded (spec, ntotal, meta, disk_bytes), without opening the lists."""

        state = cls.state_path(Path(base_path))
        try:
            with np.load(state, allow_pickle=False) as z:
                return json.loads(str(z["header"]))
        except (OSError, ValueError, KeyError):
            return None

    @property
    def ntotal(self) -> int:
        """Live vectors: on disk and not removed, plus the delta."""
        return len(self._base_ids) - len(self._removed) + len(self._delta_ids)

    def ids(self) -> np.ndarray:
        """Every live id (sorted)."""
        live = np.setdiff1d(self._base_ids, self._removed, assume_unique=True)
        return np.union1d(live, self._delta_ids)

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors to the delta; an id already present is replaced."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        xb = np.ascontiguousarray(xb, dtype=np.float32).reshape(len(ids), self.dim)
        self.remove(ids)
        self._delta_ids = np.concatenate([self._delta_ids, ids])
        self._delta_xb = np.concatenate([self._delta_xb, xb])

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (from the delta, or by filtering them out of the lists); returns how many were live."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        in_delta = np.isin(self._delta_ids, ids)
        gone = ids[np.isin(ids, self._base_ids) & ~np.isin(ids, self._removed)]
        self._delta_ids, self._delta_xb = self._delta_ids[~in_delta], self._delta_xb[~in_delta]
        self._removed = np.union1d(self._removed, gone)
        return int(in_delta.sum()) + len(gone)

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best live ids per query: ``D`` scores (``-inf`` where missing) and ``I`` (``-1``)."""
        xq = np.ascontiguousarray(xq, dtype=np.float32).reshape(-1, self.dim)
        if int(k) <= 0:
            raise InputError(f"k must be a positive number of results, got {k}")
        k = int(k)
        nq = len(xq)
        parts_d, parts_i = [], []
        if len(self._base_ids):
            D, I = self.base.search(xq, k + min(len(self._removed), MAX_OVERFETCH))
            dead = (I < 0) | np.isin(I, self._removed)
            parts_d.append(np.where(dead, -np.inf, D).astype(np.float32))
            parts_i.append(np.where(dead, -1, I))
        if len(self._delta_ids):
            S = xq @ self._delta_xb.T
            kk = min(k, S.shape[1])
            top = np.argpartition(-S, kk - 1, axis=1)[:, :kk]
            parts_d.append(np.take_along_axis(S, top, axis=1).astype(np.float32))
            parts_i.append(self._delta_ids[top])
        if not parts_d:
            return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        D, I = np.concatenate(parts_d, axis=1), np.concatenate(parts_i, axis=1)
        order = np.argsort(-D, axis=1, kind="stable")[:, :k]
        D, I = np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)
        if D.shape[1] < k:
            pad = k - D.shape[1]
            D = np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf)
            I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
        return D.astype(np.float32), I.astype(np.int64)

    def needs_rebuild(self) -> bool:
        """Always False: an automatic rebuild would be an in-RAM one; ``reindex --on-disk`` folds the delta."""
        if len(self._delta_ids) + len(self._removed) > DELTA_WARN_FRACTION * max(1, len(self._base_ids)):
            LOG.info(
                "on-disk index %s: delta %d, removed %d; `vidsearch reindex --on-disk` folds them in",
                self.base.path,
                len(self._delta_ids),
                len(self._removed),
            )
        return False

    def save(self, path: Path | None = None) -> None:
        """Save the delta, removals and metadata beside the lists (``path`` is not used: the
        lists' location is fixed at build time)."""

        header = json.dumps(
            {
                "meta": self.meta,
                "spec": self.spec,
                "nprobe": self.base.nprobe,
                "ntotal": self.ntotal,
                "disk_bytes": self.base.disk_bytes(),
                "recall_at_10": None,
            }
        )
        atomic_write(
            self.state_path(self.base.path),
            lambda fh: np.savez(
                fh, removed=self._removed, delta_ids=self._delta_ids, delta_xb=self._delta_xb, header=np.array(header)
            ),
        )

    def nbytes(self) -> int:
        """RAM the index holds: the quantizer and list offsets, the ids, the delta."""
        return self.base.resident_bytes() + self._base_ids.nbytes + self._delta_xb.nbytes + self._delta_ids.nbytes

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            **self.base.describe(),
            "vectors": self.ntotal,
            "delta": len(self._delta_ids),
            "removed": len(self._removed),
        }
