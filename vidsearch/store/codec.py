"""How a vector is stored in SQLite: little-endian float32 bytes, one blob per row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["VECTOR_DTYPE", "to_blob", "from_blob", "from_blobs"]

VECTOR_DTYPE = "<f4"


def to_blob(x: np.ndarray) -> bytes:
    """One vector (or a matrix, row-major) as stored bytes."""
    return np.ascontiguousarray(x, dtype=VECTOR_DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """The float32 vector of one stored blob (read-only view of the bytes)."""
    return np.frombuffer(blob, dtype=VECTOR_DTYPE)


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stored blobs as one float32 ``[N, dim]`` matrix (``[0, dim]`` for no blobs)."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack([from_blob(b) for b in blobs]).astype(np.float32, copy=False)
