"""GPU plumbing: whether faiss sees a GPU, replicas of a CPU index, GPU k-means.

With a faiss GPU build and ``faiss.get_num_gpus() > 0`` (or ``gpu=True``), IVF k-means runs on
all GPUs, vectors are added on GPU and searches use a GPU replica (``index_cpu_to_all_gpus``,
sharded over several GPUs). The CPU index stays the master copy that is saved; a mutation drops
the replica, which is rebuilt at the next search. Types the GPU cannot hold fall back to CPU.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faiss

__all__ = ["GPU_MAX_K", "GpuReplica", "gpu_available", "use_gpu", "clone_to_gpu", "gpu_to_cpu", "clustering_index"]

from vidsearch.store.vectors.plumbing import apply_params

LOG = logging.getLogger(__name__)

GPU_MAX_K = 2048  # faiss GPU k-selection limit


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


def use_gpu(gpu: bool | None) -> bool:
    """Resolve a ``gpu`` argument: None means "when available"; True falls back with a warning."""
    if gpu is False:
        return False
    if gpu_available():
        return True
    if gpu:
        LOG.warning("GPU requested but faiss sees no GPU (faiss-cpu build or no device); using CPU")
    return False


def clone_to_gpu(index: faiss.Index) -> faiss.Index:
    """A GPU replica of a CPU index on all GPUs (sharded when several, so memory adds up)."""
    import faiss

    co = faiss.GpuMultipleClonerOptions()
    co.shard = faiss.get_num_gpus() > 1
    return faiss.index_cpu_to_all_gpus(index, co=co)


def gpu_to_cpu(index: faiss.Index) -> faiss.Index:
    import faiss

    return faiss.index_gpu_to_cpu(index)


def clustering_index(d: int) -> faiss.Index:
    """A flat L2 index on all GPUs for IVF k-means assignment (spherical centroids: L2 == IP)."""
    import faiss

    return faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(d))


class GpuReplica:
    """The GPU copy of a CPU index: built lazily, dropped on every mutation, given up on failure.

    Attributes:
        enabled: whether the index should use a GPU at all.
        failed: a GPU step failed for this index; it stays on the CPU from then on.
        index: the current replica (None: none built since the last mutation).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.failed = False
        self.index: faiss.Index | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Enabled and not failed."""
        return self.enabled and not self.failed

    def give_up(self, what: str, spec: str, error: BaseException) -> None:
        """Log why the GPU cannot serve ``spec`` and stay on the CPU."""
        LOG.warning("%s failed for %s (%s); using CPU", what, spec, error)
        self.failed = True

    def drop(self) -> None:
        """The CPU index changed: the replica is stale (rebuilt at the next search)."""
        self.index = None

    def set_params(self, params: dict[str, float]) -> None:
        """Apply tuned search parameters to the replica, if there is one."""
        if self.index is not None:
            apply_params(self.index, params, gpu=True)

    def searcher(self, cpu: faiss.Index, params: dict[str, float], spec: str) -> faiss.Index:
        """The replica when active (built now if needed), else ``cpu``."""
        if not self.active:
            return cpu
        replica = self.index
        if replica is not None:
            return replica
        with self._lock:
            if self.index is None and not self.failed:
                try:
                    replica = clone_to_gpu(cpu)
                    apply_params(replica, params, gpu=True)
                    self.index = replica
                except Exception as e:  # noqa: BLE001 - type not on GPU: search on CPU
                    self.give_up("GPU search", spec, e)
            return self.index if self.index is not None else cpu
