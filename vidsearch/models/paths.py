"""Where vidsearch keeps its per-user caches (checkpoint hashes, exported ONNX graphs).

Kept apart from :mod:`vidsearch.models.weights` because the torch-free query path needs the
cache location without importing torch.
"""

from __future__ import annotations

from pathlib import Path

from vidsearch.settings import CACHE_ENV, settings  # noqa: F401  (CACHE_ENV re-exported)

__all__ = ["cache_dir", "CACHE_ENV"]


def cache_dir() -> Path:
    """vidsearch's cache directory (``VIDSEARCH_CACHE_DIR`` or the platform's user cache)."""
    env = settings().cache_path()
    if env is not None:
        return env
    import platformdirs

    return Path(platformdirs.user_cache_dir("vidsearch"))
