"""What ``vidsearch info`` says about a space's index file, read from its header alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidsearch.errors import LibraryError

__all__ = ["index_file_entry"]


def index_file_entry(path: Path, ondisk_path: Path, generation: int, owner: str) -> dict[str, Any]:
    """The index file of a space (in RAM: ``path``; ``reindex --on-disk``: ``ondisk_path``) and its state.

    Returns:
        ``index_file``, ``index_bytes``, and when a header is readable ``index_spec``,
        ``index_vectors``, ``index_recall_at_10`` and ``index_up_to_date`` (the header's
        generation is ``generation`` and the file is the space ``owner``'s);
        ``index_on_disk`` for on-disk lists.
    """
    from vidsearch.store.vectors.fileformat import read_header
    from vidsearch.store.vectors.ondisk import OnDiskVectorIndex

    entry: dict[str, Any] = {"index_file": str(path), "index_bytes": path.stat().st_size if path.exists() else 0}
    try:
        header = read_header(path) if path.exists() else None
        if header is None and ondisk_path.exists():  # `reindex --on-disk`
            header = OnDiskVectorIndex.read_header(ondisk_path)
            entry.update(
                index_file=str(ondisk_path), index_on_disk=True, index_bytes=(header or {}).get("disk_bytes", 0)
            )
    except LibraryError:
        header = None
    if header is not None:
        entry.update(
            index_spec=header["spec"],
            index_vectors=header.get("ntotal"),
            index_recall_at_10=header.get("recall_at_10"),
            index_up_to_date=header.get("meta", {}).get("generation") == generation
            and header.get("meta", {}).get("owner") == owner,
        )
    return entry
