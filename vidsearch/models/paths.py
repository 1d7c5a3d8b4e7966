"""Where vidsearch keeps its per-user caches (checkpoint hashes, exported ONNX graphs).

Kept apart from :mod:`vidsearch.models.weights` because the torch-free query path needs the
cache location without importing torch.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "CACHE_ENV"]

CACHE_ENV = "VIDSEARCH_CACHE_DIR"


def cache_dir() -> Path:
    """vidsearch's cache directory (``VIDSEARCH_CACHE_DIR`` or the platform's user cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("vidsearch"))
