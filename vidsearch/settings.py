"""Every setting vidsearch reads from the environment, in one place.

:func:`settings` reads the environment each time it is called (no cache): tests and front ends
set variables at run time, and a cached copy would go stale. Code below the front ends asks it
for a value instead of reading ``os.environ`` itself, so this module is the list of what can be
configured this way.

=============================== ========================================================
``VIDSEARCH_LIBRARY``           the library directory when none is given
``VIDSEARCH_CACHE_DIR``         vidsearch's cache (checkpoint hashes, key memo, exports)
``VIDSEARCH_CHECKPOINT``        the checkpoint file of a named model, skipping the hub
``VIDSEARCH_HF_REVISION``       the Hugging Face revision to download instead of the pinned one
``VIDSEARCH_BPE_VOCAB``         the CLIP BPE merges file, instead of open_clip's copy
``VIDSEARCH_TRUST_CHECKPOINT``  ``1`` unpickles checkpoints fully (runs their code)
``HF_HUB_CACHE`` / ``HF_HOME``  the Hugging Face cache, as huggingface_hub reads them
``HF_HUB_OFFLINE`` (or
``TRANSFORMERS_OFFLINE``)       never try to download
``CUDA_VISIBLE_DEVICES``        ``""`` or ``-1`` hides every GPU
=============================== ========================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Settings",
    "settings",
    "LIBRARY_ENV",
    "CACHE_ENV",
    "CHECKPOINT_ENV",
    "REVISION_ENV",
    "VOCAB_ENV",
    "TRUST_ENV",
]

LIBRARY_ENV = "VIDSEARCH_LIBRARY"
CACHE_ENV = "VIDSEARCH_CACHE_DIR"
CHECKPOINT_ENV = "VIDSEARCH_CHECKPOINT"
REVISION_ENV = "VIDSEARCH_HF_REVISION"
VOCAB_ENV = "VIDSEARCH_BPE_VOCAB"
TRUST_ENV = "VIDSEARCH_TRUST_CHECKPOINT"
_TRUE = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Settings:
    """The environment's settings; ``None`` (or an empty string) where a variable is unset."""

    library: str | None = None
    cache_dir: str | None = None
    checkpoint: str | None = None
    hf_revision: str | None = None
    bpe_vocab: str | None = None
    trust_checkpoint: bool = False
    hf_hub_cache: str | None = None  # HF_HUB_CACHE, else HF_HOME/hub
    hf_offline: bool = False
    cuda_hidden: bool = False  # CUDA_VISIBLE_DEVICES is "" or "-1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """The settings ``environ`` gives (unset and empty variables alike mean "not set")."""

        def get(name: str) -> str | None:
            return environ.get(name) or None

        home = get("HF_HOME")
        return cls(
            library=get(LIBRARY_ENV),
            cache_dir=get(CACHE_ENV),
            checkpoint=get(CHECKPOINT_ENV),
            hf_revision=get(REVISION_ENV),
            bpe_vocab=get(VOCAB_ENV),
            # "on" is not accepted here: the flag that runs a checkpoint's code stays strict.
            trust_checkpoint=environ.get(TRUST_ENV, "").lower() in {"1", "true", "yes"},
            hf_hub_cache=get("HF_HUB_CACHE") or (os.path.join(home, "hub") if home else None),
            hf_offline=any(environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")),
            cuda_hidden=environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"),
        )

    def library_path(self) -> Path | None:
        """``library`` as a path (``~`` expanded), or None."""
        return Path(self.library).expanduser() if self.library else None

    def cache_path(self) -> Path | None:
        """``cache_dir`` as a path (``~`` expanded), or None."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else None


def settings() -> Settings:
    """The settings of the current environment, read now."""
    return Settings.from_env(os.environ)
