"""The FAISS files of a library's spaces: loaded, synced with SQLite, rebuilt, saved.

A space's index file is derived: it records the space's *generation* (bumped by every
transaction that changes the space's vectors); when the file is missing, unreadable or stale it
is brought up to date from SQLite, so a crash between a commit and an index save never loses or
duplicates vectors. :class:`SpaceIndexFiles` is the part of
:class:`~vidsearch.store.library.Library` that does this; the rest of the library provides the
reads it builds on (``generation``, ``segment_ids``, ``load_vectors``, ``iter_vectors``).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidsearch.errors import DiskFullError, InputError, LibraryError
from vidsearch.store import health
from vidsearch.store.spaces import SpaceInfo
from vidsearch.store.vectors.protocol import SpaceIndex

__all__ = ["SpaceIndexFiles", "stamp"]

LOG = logging.getLogger(__name__)


def stamp(index: SpaceIndex, space: SpaceInfo, generation: int) -> None:
    """Record in an index the space (of this library) and the generation it reflects."""
    index.meta.update(generation=generation, owner=space.uid)


class SpaceIndexFiles(abc.ABC):
    """The index files of a library directory (a base of :class:`~vidsearch.store.library.Library`,
    which provides the abstract reads below)."""

    root: Path
    read_only: bool
    writable: bool
    _indexes: dict[int, SpaceIndex]

    @abc.abstractmethod
    def generation(self, space_id: int) -> int:
        """The space's current generation."""

    @abc.abstractmethod
    def segment_ids(self, space_id: int) -> np.ndarray:
        """Sorted ids of every segment of a space."""

    @abc.abstractmethod
    def load_vectors(self, space_id: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stored vectors of a space as ``(ids, xb)``."""

    @abc.abstractmethod
    def iter_vectors(self, space_id: int, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids, xb)`` of every stored vector of a space."""

    def index_path(self, space_id: int) -> Path:
        """Where the FAISS index of a space lives."""
        return self.root / "indexes" / f"space-{space_id}.faiss"

    def ondisk_path(self, space_id: int) -> Path:
        """Where an on-disk IVF index of a space lives (its lists in ``<path>.ivfdata``)."""
        return self.root / "indexes" / f"space-{space_id}.ondisk"

    def vector_index(self, space: SpaceInfo, *, refresh: bool = False) -> SpaceIndex:
        """The space's FAISS index, loaded and brought in line with SQLite.

        A missing or unreadable file is rebuilt from the stored embeddings; a stale one (its
        generation differs) is synced by id difference, which also covers a crash between a
        commit and the index save. The synced index is saved back atomically.
        """
        from vidsearch.store.vectors import VectorIndex

        cached = self._indexes.get(space.id)
        generation = self.generation(space.id)
        if cached is not None and not refresh and cached.meta.get("generation") == generation:
            return cached
        path = self.index_path(space.id)
        index: SpaceIndex | None = None
        if self.ondisk_path(space.id).exists():  # `reindex --on-disk`: lists stay on disk
            from vidsearch.store.vectors.ondisk import OnDiskVectorIndex

            try:
                index = OnDiskVectorIndex.load(self.ondisk_path(space.id))
            except LibraryError as exc:
                LOG.warning("rebuilding %s in RAM: %s", path, exc)
        elif path.exists():
            try:
                index = VectorIndex.load(path)
            except LibraryError as exc:
                LOG.warning("rebuilding %s: %s", path, exc)
        owner = None if index is None else index.meta.get("owner")
        if owner is not None and owner != space.uid:
            LOG.warning("rebuilding %s: the file belongs to another library or space", path)
            index = None
        if index is None or index.dim != space.dim:
            index = self.rebuild_index(space)
        elif index.meta.get("generation") != generation:
            self.sync_index(space, index)
            stamp(index, space, generation)
            self._save_quietly(index, path)
        elif owner is None:
            # Written before index files named their space (an upgraded library): adopted as
            # its own, as it was before, and stamped at the next save a writer makes. Rebuilding
            # here would replace an on-disk IVF index with a flat one and, on every read-only
            # query until a writer ran, redo the whole build.
            stamp(index, space, generation)
            self._save_quietly(index, path)
        self._indexes[space.id] = index
        return index

    def sync_index(self, space: SpaceInfo, index: SpaceIndex) -> tuple[int, int]:
        """Add vectors SQLite has and the index lacks; remove ids the index has and SQLite lacks."""
        db_ids = self.segment_ids(space.id)
        have = index.ids()
        missing = np.setdiff1d(db_ids, have, assume_unique=True)
        extra = np.setdiff1d(have, db_ids, assume_unique=True)
        if len(extra):
            index.remove(extra)
        if len(missing):
            ids, xb = self.load_vectors(space.id, missing)
            index.add(ids, xb)
        LOG.info("synced index of %s: +%d -%d", space.key, len(missing), len(extra))
        return len(missing), len(extra)

    def rebuild_index(self, space: SpaceInfo, spec: str | None = None, on_disk: bool = False) -> SpaceIndex:
        """Build the space's index from the stored embeddings (no re-encoding) and save it.

        With ``on_disk``, ``spec`` (an IVF spec) is built with its lists in a mapped file,
        reading the vectors in chunks, so a space larger than RAM still answers queries.

        Raises:
            InputError: ``on_disk`` without an IVF ``spec``.
        """
        from vidsearch.store.vectors import VectorIndex, ondisk

        generation = self.generation(space.id)
        target = self.ondisk_path(space.id)
        if on_disk:
            if not spec:
                raise InputError(
                    "needs an IVF index spec", argument="on_disk", hint="e.g. IVF4096,SQ8", remedy="ivf_index_spec"
                )
            n = len(self.segment_ids(space.id))
            built = ondisk.build_from_stream(target, space.dim, spec, lambda: self.iter_vectors(space.id), n)
            on_disk_index = ondisk.OnDiskVectorIndex(built)
            stamp(on_disk_index, space, generation)
            on_disk_index.save()
            self.index_path(space.id).unlink(missing_ok=True)  # queries now use the on-disk lists
            self._indexes[space.id] = on_disk_index
            return on_disk_index
        for stale in (
            target,
            ondisk.OnDiskVectorIndex.state_path(target),
            target.with_name(target.name + ondisk.IVFDATA_SUFFIX),
        ):
            stale.unlink(missing_ok=True)
        ids, xb = self.load_vectors(space.id)
        built_index = VectorIndex.build(ids, xb, spec=spec) if len(ids) else VectorIndex.empty(space.dim)
        stamp(built_index, space, generation)
        self._save_quietly(built_index, self.index_path(space.id))
        self._indexes[space.id] = built_index
        return built_index

    def save_index(self, space: SpaceInfo, index: SpaceIndex, generation: int) -> None:
        """Save ``index`` as reflecting ``generation`` of the space (atomic write)."""
        stamp(index, space, generation)
        path = self.index_path(space.id)
        if self.read_only:
            raise health.read_only_error(self.root)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.save(path)
        self._indexes[space.id] = index

    def _save_quietly(self, index: SpaceIndex, path: Path) -> None:
        # Readers may lack write permission; the in-memory index is correct either way. A
        # read-only handle (query) never replaces a file, so it cannot overwrite a writer's newer
        # save with an older index; it only creates a missing one (atomically, nothing to race).
        if self.read_only and (not self.writable or path.exists()):
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            index.save(path)
        except DiskFullError as exc:  # whatever wrote before hit it too and says so in its own error
            LOG.info("could not save %s (synced from the database on the next open): %s", path, exc)
        except (OSError, LibraryError) as exc:
            LOG.warning("could not save %s: %s", path, exc)
