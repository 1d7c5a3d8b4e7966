"""Finding a preset's published weights: explicit path, environment, Hugging Face cache, hub.

Torch-free, so that a run that cannot find weights (an offline machine with nothing cached)
says so within a few seconds, before any model code is imported.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from vidsearch.errors import CheckpointError, WeightsNotFoundError
from vidsearch.fileio import why_not_a_file
from vidsearch.models.catalog import HUB_FILES, PRESETS
from vidsearch.settings import CHECKPOINT_ENV, REVISION_ENV, settings

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "CHECKPOINT_ENV",
    "REVISION_ENV",
    "HF_SOURCES",
    "resolve_checkpoint",
    "resolve_hub_file",
]

LOG = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# Where each preset's published weights live, in the order tried: (repo, file, revision), as
# declared in vidsearch.models.catalog. The -hf revisions are the commits whose file lists and
# code were checked (docs/weights.md).
HF_SOURCES: dict[str, list[tuple[str, str, str]]] = {
    name: [(w.repo, w.filename, w.revision) for w in sources]
    for name, sources in [*((n, p.weights) for n, p in PRESETS.items()), *HUB_FILES.items()]
    if sources
}


def _hf_cache_dir() -> str:
    """The hub cache huggingface_hub would use, read from the environment at call time."""
    env = settings().hf_hub_cache
    if env:
        return env
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_offline() -> bool:
    return settings().hf_offline


def _hub_reachable(timeout: float = 1.5) -> bool:
    """Whether a TCP connection to the hub endpoint opens within ``timeout`` seconds.

    huggingface_hub retries connection errors with exponential backoff (about 20 s in all), far
    too long to find out that a machine is offline; one quick connect tells (1.5 s: an offline
    machine with nothing cached gets its one-line error within 3 s).
    """

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def _revision(pinned: str, revision: str | None) -> str:
    """The revision to use: ``revision``, else ``VIDSEARCH_HF_REVISION``, else the pinned one."""
    return revision or settings().hf_revision or pinned


def _from_hub(preset: str, download: bool, revision: str | None = None, pinned_only: bool = False) -> Path | None:
    """A cached (or, when allowed and online, downloaded) published checkpoint for ``preset``.

    ``pinned_only``: at the catalog's revision, whatever ``VIDSEARCH_HF_REVISION`` says (that
    variable pins a preset's weights; another repository's file has commits of its own).
    """
    import huggingface_hub

    sources = [
        (repo, filename, pinned if pinned_only else _revision(pinned, revision))
        for repo, filename, pinned in HF_SOURCES.get(preset, [])
    ]
    cache = _hf_cache_dir()
    for repo, filename, rev in sources:
        found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=cache, revision=rev)
        if isinstance(found, str) and os.path.isfile(found):
            LOG.info("using cached %s/%s at revision %s", repo, filename, rev)
            return Path(found)
    if not download or _hf_offline():
        return None
    if not _hub_reachable():
        LOG.info("the Hugging Face hub is not reachable; not downloading")
        return None
    for repo, filename, rev in sources:
        try:
            LOG.info("downloading %s from %s at revision %s", filename, repo, rev)
            return Path(huggingface_hub.hf_hub_download(repo, filename, revision=rev, cache_dir=cache))
        except Exception as exc:  # network, auth and missing-file errors all mean "try the next"
            LOG.warning("could not download %s from %s at revision %s: %s", filename, repo, rev, exc)
    return None


def resolve_checkpoint(
    preset: str,
    checkpoint: str | os.PathLike[str] | None = None,
    download: bool = True,
    revision: str | None = None,
) -> Path:
    """Find the weights for a preset: explicit path, ``VIDSEARCH_CHECKPOINT``, HF cache, HF hub.

    Args:
        preset: ``viclip-b16`` or ``viclip-l14`` (ignored when a path is given).
        checkpoint: an explicit weights file.
        download: whether the hub may be asked when the cache lacks the file.
        revision: a Hugging Face branch, tag or commit instead of the checked one
            (default ``VIDSEARCH_HF_REVISION``, else :data:`HF_SOURCES`' pinned commit).

    Raises:
        CheckpointError: an explicit or environment path that does not exist.
        WeightsNotFoundError: nothing found; the message says what to download and where.
    """
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        why = why_not_a_file(path)
        if why:
            raise CheckpointError(
                f"checkpoint {path} {why}", path=path, hint="check its path", remedy="check_checkpoint"
            )
        return path.resolve()
    env = settings().checkpoint
    if env:
        path = Path(env).expanduser()
        why = why_not_a_file(path)
        if why:
            raise CheckpointError(f"{CHECKPOINT_ENV}={env} {why}; fix or unset the variable")
        return path.resolve()
    found = _from_hub(preset, download, revision)
    if found is not None:
        return found.resolve()
    repo, filename, pinned = HF_SOURCES[preset][0]
    rev = _revision(pinned, revision)
    why = (
        "offline (HF_HUB_OFFLINE is set)"
        if _hf_offline()
        else "not in the Hugging Face cache and could not be downloaded"
    )
    fetch = f"download {filename} from https://huggingface.co/{repo} (hf download {repo} {filename} --revision {rev})"
    raise WeightsNotFoundError(
        f"no weights for {preset}: {why}",
        hint=f"{fetch} and give its path or set {CHECKPOINT_ENV}=PATH",
        remedy="download_checkpoint",
        value=fetch,
        env=CHECKPOINT_ENV,
    )


def resolve_hub_file(name: str, download: bool = True) -> Path:
    """A published file other than a preset's weights (e.g. ``internvideo2-1b/vocab``): cache, then hub.

    Always at the revision the catalog gives it: ``VIDSEARCH_HF_REVISION`` names a commit of the
    weights' repository, which means nothing in this file's.

    Raises:
        WeightsNotFoundError: not cached and not downloadable; one line saying what to fetch.
    """
    found = _from_hub(name, download, pinned_only=True)
    if found is not None:
        return found.resolve()
    repo, filename, pinned = HF_SOURCES[name][0]
    why = "offline (HF_HUB_OFFLINE is set)" if _hf_offline() else "not in the Hugging Face cache and not downloadable"
    raise WeightsNotFoundError(
        f"no {filename} for {name}: {why}; run hf download {repo} {filename} --revision {pinned} while online"
    )
