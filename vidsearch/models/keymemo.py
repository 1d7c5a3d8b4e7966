"""Remembered embedding-space keys: ``model_key`` without torch, weights look-ups or hashing.

A space key (``<name>@<12 hex of the checkpoint sha256>``) depends on the model arguments and
on a few files (the checkpoint, its config JSON, the config files that resolution would prefer).
Computing it imports the model family (torch) and, for presets, searches the Hugging Face cache.
An index run that turns out to have nothing to encode needs only the key, so the key is kept
in a small JSON file under :func:`cache_dir` together with the size and mtime of every file it
depends on (absent files recorded as absent); a remembered key is used only while all of them
are unchanged. Nothing here imports torch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidsearch.fileio import atomic_write_text
from vidsearch.models.paths import cache_dir
from vidsearch.settings import settings

__all__ = ["cache_dir", "recall_key", "remember_key", "remember_checkpoint_key"]

LOG = logging.getLogger(__name__)

_MEMO_FILE = "space-keys.json"
# environment that changes how a model name resolves to weights (see vidsearch.models.weights)


def _ident(model: str, checkpoint: Any, config: Any) -> str:
    args = [
        model,
        None if checkpoint is None else os.path.abspath(os.fspath(checkpoint)),
        None if config is None else os.path.abspath(os.fspath(config)),
    ]
    env = settings()
    return json.dumps(args + [env.checkpoint, env.hf_revision, env.hf_hub_cache])


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall_key(model: str, checkpoint: Any = None, config: Any = None) -> str | None:
    """The remembered key for these arguments, if every file it depends on is unchanged."""
    hit = _read(cache_dir() / _MEMO_FILE).get(_ident(model, checkpoint, config))
    if not isinstance(hit, dict) or not isinstance(hit.get("files"), dict):
        return None
    if any(_stat(p) != s for p, s in hit["files"].items()):
        return None
    return str(hit["key"])


def remember_key(
    model: str, checkpoint: Any, config: Any, key: str, files: Iterable[str | os.PathLike[str] | None]
) -> None:
    """Remember ``key`` for these arguments while ``files`` (None entries ignored) stay as they are."""
    memo = cache_dir() / _MEMO_FILE
    deps = {os.path.abspath(os.fspath(f)): _stat(os.fspath(f)) for f in files if f is not None}
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        entries = _read(memo)
        entries[_ident(model, checkpoint, config)] = {"key": key, "files": deps}
        atomic_write_text(memo, json.dumps(entries, indent=1, sort_keys=True))
    except OSError as exc:  # a cache that cannot be written only costs time
        LOG.warning("cannot write the space key cache %s: %s", memo, exc)


def remember_checkpoint_key(
    model: str, checkpoint: Any, config: Any, name: str, sha256: str, path: Path, cfg_path: Path | None
) -> str:
    """The key ``<name>@<12 hex of sha256>`` of a resolved checkpoint, remembered for these arguments.

    It depends on the checkpoint, its config, and the config files resolution would prefer
    (``<stem>.json`` and ``config.json`` beside the checkpoint).
    """
    key = f"{name}@{sha256[:12]}"
    remember_key(
        model, checkpoint, config, key, [path, cfg_path, path.with_suffix(".json"), path.parent / "config.json"]
    )
    return key
