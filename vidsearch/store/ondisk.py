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
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vidsearch.errors import InputError, LibraryError

if TYPE_CHECKING:
    import faiss

__all__ = ["IVFDATA_SUFFIX", "OnDiskIVF", "build_ondisk"]

LOG = logging.getLogger(__name__)

IVFDATA_SUFFIX = ".ivfdata"


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


def _trained_ivf(dim: int, spec: str, train: np.ndarray) -> "faiss.Index":
    import faiss

    try:
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise InputError(f"--index-spec {spec!r} is not a faiss index_factory string: {str(e).splitlines()[-1][:120]}") from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        raise InputError(f"--on-disk needs an IVF index spec (e.g. 'IVF4096,PQ64'), got {spec!r}")
    if isinstance(index, faiss.IndexIVFPQR):
        raise InputError(f"--on-disk cannot hold {spec!r} (IVFPQR has no on-disk lists); drop the refinement")
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
) -> "OnDiskIVF":
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
    LOG.info("built on-disk %s at %s in %.1fs (train %.1fs, add %.1fs)", spec, path, time.perf_counter() - t0, t_train, t_add)
    return OnDiskIVF.load(path, spec=spec)


class OnDiskIVF:
    """An IVF index with memory-mapped inverted lists (see the module docstring).

    Attributes:
        path: the index file; the lists are in ``path + ".ivfdata"``.
        spec: the index_factory string (informational).
        dim: vector dimension.
    """

    def __init__(self, index: "faiss.Index", path: Path, spec: str) -> None:
        """Wrap a loaded index; use :meth:`load` or :func:`build_ondisk`."""
        import faiss

        self.index = index
        self.path = path
        self.spec = spec
        self.dim = int(index.d)
        self._ivf = faiss.extract_index_ivf(index)

    @classmethod
    def load(cls, path: Path | str, spec: str = "") -> "OnDiskIVF":
        """Open an index written by :func:`build_ondisk` (the ``.ivfdata`` is mapped, not read).

        Raises:
            LibraryError: a file is missing or unreadable.
        """
        import faiss

        path = Path(path)
        data = _ivfdata_path(path)
        if not path.is_file() or not data.is_file():
            raise LibraryError(f"on-disk index {path} or its {data.name} is missing; run `vidsearch reindex --on-disk` again")
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
