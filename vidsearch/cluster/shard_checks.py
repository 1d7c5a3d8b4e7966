"""What ``vidsearch ingest`` checks in a staged row before the library takes it.

A shard is a file anyone with write access to the ``--stage`` folder could have written; the
web server then serves whatever file an indexed row names. So a row is committed only when it
names a file under the run's folders that is still the file the shard describes (size, mtime,
fingerprint) and that opens as a video, and when its vectors are whole and finite (a NaN vector
is never found again, and no ``reindex`` can mend it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidsearch.errors import VidsearchError

__all__ = ["row_vectors", "file_refusal", "under_roots", "TEXT_CODECS"]

# FFmpeg "decodes" any text file as ANSI art (its tty demuxer): a video stream that is no video.
TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf"})


def under_roots(path: str, roots: Sequence[str]) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside one of ``roots`` (whole folder names)."""
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root)
        if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False


def row_vectors(row: dict[str, Any]) -> tuple[np.ndarray | None, str]:
    """The row's vectors as ``[segments, dim]`` float32, or None and why they cannot be used."""
    n, dim = len(row["kinds"] or []), row["dim"]
    if not isinstance(dim, int) or dim <= 0:
        return None, f"its dim {dim!r} is no vector size"
    if not (len(row["starts"] or []) == len(row["ends"] or []) == n) or n == 0:
        return None, "its segment columns (kinds, starts, ends) disagree or are empty"
    raw = row["vectors"] or b""
    if len(raw) != n * dim * 4:
        return None, f"its vectors hold {len(raw)} bytes, not {n} segments x {dim} float32 ({n * dim * 4} bytes)"
    xb = np.frombuffer(raw, dtype="<f4").reshape(n, dim)
    if not np.isfinite(xb).all():
        return None, "its vectors hold NaN or infinite values (a broken encode: re-run the staged index)"
    return xb, ""


def file_refusal(row: dict[str, Any], roots: Sequence[str], *, indexed: bool) -> str | None:
    """Why the file a row names must not enter the library (None: it may).

    Args:
        row: a shard row.
        roots: the run's folders.
        indexed: the row claims an encoded video (else a failure, which only needs to lie under
            the roots: it records the path, never serves it).
    """
    from vidsearch.media import fingerprint, video_codec

    path = row["path"]
    if not isinstance(path, str) or not os.path.isabs(path):
        return "the shard names no absolute path"
    if not under_roots(path, roots):
        return "it lies outside the folders the run indexed"
    if not indexed:
        return None
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"the file cannot be read here ({exc.strerror or exc})"
    if (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"]):
        return "the file changed since the run encoded it (size or mtime differ); index it again"
    try:
        if not row["fingerprint"] or fingerprint(path, st.st_size) != row["fingerprint"]:
            return "the file's content is not what the run encoded (fingerprint differs)"
        codec = video_codec(path)
    except OSError as exc:
        return f"the file cannot be read here ({exc.strerror or exc})"
    except VidsearchError:
        return "the file does not open as a video"
    if codec in TEXT_CODECS:
        return "the file does not open as a video (FFmpeg reads it as text)"
    return None
