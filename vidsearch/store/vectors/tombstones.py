"""Tombstones: removal for index types that cannot remove (HNSW, NSG, ...).

Such indexes sit behind ``IndexIDMap2``; a removed row is marked dead by its internal position,
searches over-fetch and drop dead rows. Positions, not ids, are marked, so a removed id can be
added again. When dead rows exceed ``TOMBSTONE_MAX_FRACTION`` the policy asks for a rebuild.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

__all__ = ["Tombstones"]


class Tombstones:
    """The dead rows of one index, by internal position.

    Attributes:
        dead: bool mask over the index's rows.
        count: how many rows are dead.
    """

    def __init__(self, rows: int) -> None:
        self.dead = np.zeros(rows, dtype=bool)
        self.count = 0

    def grow(self, rows: int) -> None:
        """Extend the mask to ``rows`` rows (rows were appended, all alive)."""
        grow = rows - len(self.dead)
        if grow > 0:
            self.dead = np.concatenate([self.dead, np.zeros(grow, dtype=bool)])

    def reset(self, rows: int) -> None:
        """No dead rows (the index compacted itself)."""
        self.dead = np.zeros(rows, dtype=bool)
        self.count = 0

    def load(self, positions: np.ndarray) -> None:
        """Mark the saved dead ``positions``."""
        self.dead[positions] = True
        self.count = len(positions)

    def positions(self) -> np.ndarray:
        """The dead positions, for saving."""
        return np.flatnonzero(self.dead)

    def mark(self, id_map: np.ndarray, ids: np.ndarray) -> int:
        """Kill the live rows holding ``ids``; returns how many."""
        hit = np.isin(id_map, ids) & ~self.dead
        n = int(hit.sum())
        self.dead |= hit
        self.count += n
        return n

    def live_ids(self, id_map: np.ndarray) -> np.ndarray:
        """The ids of the live rows, in row order."""
        return id_map[~self.dead] if self.count else id_map.copy()

    def search(self, inner: faiss.Index, id_map: np.ndarray, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search the rows behind IDMap2 by position, over-fetching to make up for dead rows."""
        rows = int(inner.ntotal)
        kk = min(rows, k + min(self.count, 2 * k + 16))
        while True:
            D, P = inner.search(xq, kk)
            alive = P >= 0
            alive[alive] = ~self.dead[P[alive]]
            short = alive.sum(axis=1) < k
            # a row whose raw list is not full has exhausted what the index can return
            if not (short & (P[:, -1] >= 0)).any() or kk >= rows:
                break
            kk = min(rows, kk * 4)
        order = np.argsort(~alive, axis=1, kind="stable")[:, :k]  # live hits first, in rank order
        D = np.take_along_axis(D, order, axis=1)
        P = np.take_along_axis(P, order, axis=1)
        ok = np.take_along_axis(alive, order, axis=1)
        I = np.where(ok, id_map[np.where(ok, P, 0)], -1)
        if I.shape[1] < k:  # fewer rows than k in the whole index
            pad = k - I.shape[1]
            I = np.pad(I, ((0, 0), (0, pad)), constant_values=-1)
            D = np.pad(D, ((0, 0), (0, pad)), constant_values=-np.inf)
        return D, I
