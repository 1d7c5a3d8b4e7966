"""Rebuilding every space's FAISS index from the vectors in SQLite (``vidsearch reindex``)."""

from __future__ import annotations

from typing import Any

from vidsearch.store.library import Library

__all__ = ["rebuild_indexes"]


def rebuild_indexes(library: Library, spec: str | None = None, on_disk: bool = False) -> list[dict[str, Any]]:
    """Rebuild the index of every space (no re-encoding), under the writer lock.

    Args:
        library: an open, writable library.
        spec: a FAISS ``index_factory`` string instead of the automatic choice.
        on_disk: keep the IVF lists of ``spec`` in a memory-mapped file.

    Returns:
        Per space: its ``key``, ``vectors``, ``index_spec`` and ``recall_at_10``.

    Raises:
        LibraryError: another run holds the writer lock, or the library is read-only.
    """
    results = []
    with library.writer_lock():
        for space in library.spaces():
            index = library.rebuild_index(space, spec=spec, on_disk=on_disk)
            results.append(
                {
                    "key": space.key,
                    "vectors": index.ntotal,
                    "index_spec": index.spec,
                    "recall_at_10": index.recall_at_10,
                }
            )
    return results
