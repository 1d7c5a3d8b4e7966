"""``--path-map LOCAL=REMOTE``: the driver's paths as the workers see them.

The library records paths as the driver sees them (that is where queries run); a worker whose
mount differs reads the same file under another prefix. Only whole path components match:
``/data=/mnt/data`` maps ``/data/a.mp4`` but not ``/database/a.mp4``.
"""

from __future__ import annotations

import os

from vidsearch.cluster.options import ClusterError

__all__ = ["parse_path_map", "to_remote"]


def parse_path_map(text: str | None) -> tuple[str, str] | None:
    """``"LOCAL=REMOTE"`` as a pair of normalized absolute prefixes (``None`` stays ``None``).

    Raises:
        ClusterError: not of the form ``LOCAL=REMOTE`` with two absolute paths.
    """
    if text is None:
        return None
    local, sep, remote = text.partition("=")
    if not sep or not local or not remote or not (os.path.isabs(local) and os.path.isabs(remote)):
        raise ClusterError(f"--path-map {text!r} must be LOCAL=REMOTE with two absolute paths, e.g. /data=/mnt/data")
    return os.path.normpath(local), os.path.normpath(remote)


def to_remote(path: str, path_map: tuple[str, str] | None) -> str:
    """``path`` with the LOCAL prefix replaced by REMOTE (unchanged when it does not start with it)."""
    if path_map is None:
        return path
    local, remote = path_map
    if path == local:
        return remote
    prefix = local.rstrip(os.sep) + os.sep
    if path.startswith(prefix):
        return remote.rstrip(os.sep) + os.sep + path[len(prefix) :]
    return path
