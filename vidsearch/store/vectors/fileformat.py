"""The vector index file: ``MAGIC``, a JSON header, the dead positions, then the faiss index.

The header holds the spec, dim, measured recall, tuned parameters, free-form ``meta`` (the
library stores the space generation there) and the policy state, so ``vidsearch info`` reads an
index's state without loading it. Files are written atomically through :mod:`vidsearch.fileio`.

The header also records the faiss index's vector count and dimension and a BLAKE2b checksum of
every byte after the header: a flipped or overwritten byte anywhere in the body (which faiss
itself would load without complaint, returning nonsense scores) fails :func:`read_index_file`,
and the library rebuilds the index from SQLite.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from vidsearch.errors import LibraryError
from vidsearch.fileio import atomic_write
from vidsearch.store.health import disk_full_error, is_disk_full
from vidsearch.store.vectors.plumbing import owned

if TYPE_CHECKING:
    import faiss

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "REBUILD_HINT",
    "serialized_size",
    "write_index_file",
    "read_header",
    "read_index_file",
]

MAGIC = b"VSIDX1\n"
FORMAT_VERSION = 2  # 2: body checksum, faiss ntotal and dim in the header
_DIGEST_SIZE = 16
_NO_DIGEST = "0" * (2 * _DIGEST_SIZE)  # placeholder of the same width, overwritten once the body is written
REBUILD_HINT = "rebuild it with `vidsearch reindex`"
_MAX_HEADER = 1 << 24  # a length field past this is damage, not a header


class _CountingWriter:
    """Callback for faiss.PyCallbackIOWriter that counts bytes without keeping them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, buf: bytes) -> int:
        self.n += len(buf)
        return len(buf)


def serialized_size(index: faiss.Index) -> int:
    """Bytes faiss would write for ``index`` (nothing is kept)."""
    import faiss

    counter = _CountingWriter()
    faiss.write_index(index, faiss.PyCallbackIOWriter(counter))
    return counter.n


def _one_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__


def write_index_file(path: Path, header: dict[str, Any], dead: np.ndarray, index: faiss.Index) -> None:
    """Write an index file atomically (the old file, if any, stays intact on failure).

    Raises:
        LibraryError: the header is not JSON, or the file cannot be written.
    """
    import faiss

    fields = {"format": FORMAT_VERSION, **header, "faiss_ntotal": int(index.ntotal), "faiss_dim": int(index.d)}
    try:
        head = json.dumps({**fields, "checksum": _NO_DIGEST}).encode()
    except (TypeError, ValueError) as e:
        raise LibraryError(f"index metadata for {path} is not JSON-serializable: {e}") from None
    dead = np.ascontiguousarray(dead, dtype="<i8")

    def write(f: BinaryIO) -> None:
        digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)

        def body(buf: bytes) -> int:
            digest.update(buf)
            return f.write(buf)

        f.write(MAGIC)
        f.write(struct.pack("<Q", len(head)))
        head_at = f.tell()
        f.write(head)
        body(struct.pack("<Q", len(dead)))
        body(dead.tobytes())
        faiss.write_index(index, faiss.PyCallbackIOWriter(body))
        # The checksum is known only now; it has the placeholder's width, so the header keeps its length.
        final = json.dumps({**fields, "checksum": digest.hexdigest()}).encode()
        assert len(final) == len(head)
        f.seek(head_at)
        f.write(final)
        f.seek(0, 2)

    try:
        atomic_write(path, write)
    except (OSError, RuntimeError) as e:
        if is_disk_full(e):
            raise disk_full_error(path.parent, path) from None
        raise LibraryError(f"cannot write vector index {path}: {_one_line(e)}") from None


def _read_header(f: BinaryIO, path: Path) -> dict[str, Any]:
    if f.read(len(MAGIC)) != MAGIC:
        raise LibraryError(f"{path} is not a vidsearch vector index; {REBUILD_HINT}")
    (hlen,) = struct.unpack("<Q", f.read(8))
    try:
        h = json.loads(f.read(min(hlen, _MAX_HEADER)).decode())
        if not isinstance(h, dict):
            raise ValueError("not an object")
    except (UnicodeDecodeError, ValueError, RecursionError):  # a flipped bit in the header
        raise LibraryError(f"vector index {path} is corrupted (its header is damaged); {REBUILD_HINT}") from None
    if h.get("format") != FORMAT_VERSION:
        raise LibraryError(f"{path} has unsupported index format {h.get('format')}; {REBUILD_HINT}")
    return h


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a saved index (spec, recall, meta, ntotal) without loading the index.

    Raises:
        LibraryError: the file is missing or not a vidsearch vector index.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _read_header(f, path)
    except (OSError, ValueError, struct.error) as e:
        raise LibraryError(f"cannot read vector index {path}: {e}") from None


def read_index_file(path: Path) -> tuple[dict[str, Any], np.ndarray, faiss.Index]:
    """``(header, dead positions, faiss index)`` of a file written by :func:`write_index_file`.

    Raises:
        LibraryError: the file is missing, truncated, inconsistent or not a vidsearch index.
    """
    import faiss

    path = Path(path)
    try:
        with open(path, "rb") as f:
            h = _read_header(f, path)
            # Check the body against the header's checksum before faiss parses any of it: a
            # corrupted length field could otherwise make faiss allocate or read nonsense.
            body_at = f.tell()
            digest = hashlib.blake2b(digest_size=_DIGEST_SIZE)
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            if digest.hexdigest() != h.get("checksum"):
                raise LibraryError(f"vector index {path} is corrupted (checksum mismatch); {REBUILD_HINT}")
            f.seek(body_at)
            (ndead,) = struct.unpack("<Q", f.read(8))
            raw = f.read(8 * ndead)
            if len(raw) != 8 * ndead:
                raise LibraryError(f"{path} is truncated; {REBUILD_HINT}")
            dead = np.frombuffer(raw, dtype="<i8").astype(np.int64)
            index = owned(faiss.read_index(faiss.PyCallbackIOReader(f.read)))
    except LibraryError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, struct.error, UnicodeDecodeError) as e:
        raise LibraryError(f"cannot read vector index {path}: {_one_line(e)[:160]}; {REBUILD_HINT}") from None
    if (
        index.d != h["dim"]
        or index.d != h.get("faiss_dim")
        or index.ntotal != h.get("faiss_ntotal")
        or (len(dead) and int(dead.max()) >= index.ntotal)
    ):
        raise LibraryError(f"vector index {path} is inconsistent; {REBUILD_HINT}")
    return h, dead, index
