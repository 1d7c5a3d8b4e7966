"""The one interface a space's vector index offers, in RAM or with its lists on disk.

:class:`~vidsearch.store.vectors.index.VectorIndex` (FAISS in RAM) and
:class:`~vidsearch.store.vectors.ondisk.OnDiskVectorIndex` (IVF lists in a mapped file, an
in-RAM delta) both satisfy :class:`SpaceIndex`; the library, the space writer and search type
against it, so neither needs the other's class (nor a ``type: ignore``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["SpaceIndex"]


@runtime_checkable
class SpaceIndex(Protocol):
    """A vector index over one embedding space, keyed by int64 segment ids.

    Attributes:
        dim: vector dimension.
        spec: the FAISS factory string it was built from.
        recall_at_10: recall@10 against exact search measured at build time (None: exact or unknown).
        meta: JSON metadata saved with the index (the library keeps ``generation`` there).
    """

    dim: int
    spec: str
    recall_at_10: float | None
    meta: dict[str, Any]

    @property
    def ntotal(self) -> int:
        """Live vectors."""
        ...

    def ids(self) -> np.ndarray:
        """Sorted ids of the live vectors."""
        ...

    def add(self, ids: np.ndarray, xb: np.ndarray) -> None:
        """Add vectors ``xb`` ``[n, dim]`` under ``ids``."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids``; returns how many were present."""
        ...

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(D, I)``: the ``k`` best scores and ids per query row."""
        ...

    def needs_rebuild(self) -> bool:
        """Whether the index policy asks for a fresh build."""
        ...

    def save(self, path: Path) -> None:
        """Write the index durably (atomically) at ``path`` (or where it lives)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        ...
