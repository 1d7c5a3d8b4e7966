"""What the retrieval and recognition runners share: options, the embedding cache, run metadata.

Video embeddings go through the indexer into a *bench library* (by default
``<vidsearch cache dir>/bench``, i.e. ``$VIDSEARCH_CACHE_DIR/bench`` or the platform's user
cache; ``--library`` picks another). The library keys embeddings by model (``encoder.key``: name
plus checkpoint hash) and file (path, size, mtime), so each video is decoded and encoded once per
model, and the next run, or another benchmark on the same files, reuses the vectors. Decoding
runs in the indexer's worker processes, overlapped with batched encoding.

Benchmarks embed each video whole: ``num_frames`` frames sampled over the entire video, as the
papers' zero-shot protocols do (ViCLIP: 8 frames), never fixed-length windows.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.bench.datasets import name_list, resolve_videos
from vidsearch.errors import InputError
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec
from vidsearch.paths import canonical_path
from vidsearch.precision import split_key

__all__ = [
    "BenchOptions",
    "VideoEmbeddings",
    "bench_library_path",
    "bench_sampling",
    "bench_encoder_spec",
    "embed_videos",
    "encode_texts",
    "model_info",
    "sampling_info",
    "package_versions",
    "NamedEmbeddings",
    "embed_named_videos",
    "run_info",
    "timing_info",
    "utc_now",
]

LOG = logging.getLogger(__name__)

_VERSIONED = ("vidsearch", "torch", "numpy", "decord", "av", "faiss-cpu", "open_clip_torch")


@dataclass
class BenchOptions:
    """Model, cache and tolerance settings shared by every benchmark run."""

    model: str = "viclip-b16"  # preset name, "openclip:<arch>" or a checkpoint path
    checkpoint: str | None = None  # explicit weights for a preset
    model_config: str | None = None  # ViCLIPConfig JSON for a custom size
    device: str = "auto"
    precision: str = "auto"  # encoder precision (vidsearch.precision); part of the embedding space key
    library: str | None = None  # bench library (embedding cache); None = <cache dir>/bench
    allow_missing: bool = False  # evaluate on the videos that exist instead of stopping
    batch_size: int = 8  # clips per encoder call
    text_batch_size: int = 256  # captions per encoder call
    workers: int | None = None  # decoding processes; None = the indexer's default
    antialias: bool | None = None  # frame resize; None = the model's own (see vidsearch.media.resize)


@dataclass
class VideoEmbeddings:
    """Whole-video embeddings of a list of files.

    Attributes:
        embeddings: float32 ``[len(found), D]``, L2-normalized.
        found: positions (into the requested paths) that have an embedding, ascending.
        failed: position -> one-line reason, for files that could not be decoded.
        encoded: files decoded and encoded in this run (the rest came from the cache).
        seconds: wall time of the video stage.
        library: the library used as cache.
    """

    embeddings: np.ndarray
    found: list[int]
    failed: dict[int, str]
    encoded: int
    seconds: float
    library: str


def bench_library_path(library: str | os.PathLike[str] | None = None) -> Path:
    """``library`` if given, else ``<vidsearch cache dir>/bench`` (honours ``VIDSEARCH_CACHE_DIR``)."""
    if library is not None:
        return Path(library).expanduser()
    from vidsearch.models.weights import cache_dir

    return cache_dir() / "bench"


def bench_sampling(antialias: bool | None = None) -> Any:
    """Sampling for benchmarks: one whole-video clip per file, never windows, resized as asked."""
    from vidsearch.media import SamplingConfig

    return SamplingConfig(min_video_for_windows=float("inf"), antialias=antialias)


def bench_encoder_spec(options: BenchOptions) -> EncoderSpec:
    """The :class:`~vidsearch.models.spec.EncoderSpec` of the encoder ``options`` name, at its precision.

    ``open_encoder(bench_encoder_spec(options))`` raises the models' one-line errors.
    """

    return EncoderSpec(
        options.model,
        checkpoint=options.checkpoint,
        config=options.model_config,
        device=options.device,
        precision=options.precision,
        # every decode of this run resizes as asked (None: the model's own choice)
        antialias=None if options.antialias is None else bool(options.antialias),
    )


def embed_videos(
    paths: Sequence[Path],
    encoder: Any,
    options: BenchOptions,
    progress: Any | None = None,
) -> VideoEmbeddings:
    """Embed ``paths`` whole through the bench library: cached vectors are reused, new files indexed.

    Args:
        paths: video files (existing).
        encoder: the loaded encoder (its ``key`` names the embedding space).
        options: model and parallelism settings.
        progress: an indexer ``ProgressSink`` (``start(total)``, ``advance(path, ok)``).
    """
    from vidsearch.indexer.pipeline import IndexOptions, index_files
    from vidsearch.store.library import Library

    t0 = time.perf_counter()
    lib_path = bench_library_path(options.library)
    index_options = IndexOptions(
        model=options.model,
        checkpoint=options.checkpoint,
        model_config=options.model_config,
        device=options.device,
        precision=options.precision,
        sampling=bench_sampling(bool(getattr(encoder, "antialias", False))),
        batch_size=options.batch_size,
        workers=options.workers,
    )
    abs_paths = [canonical_path(p) for p in paths]
    with Library.open(lib_path) as library:
        report = index_files(library, abs_paths, index_options, progress=progress, encoder=encoder)
        if library.find_space(encoder.key) is None:  # nothing could be encoded at all
            emb, found = np.zeros((0, encoder.embed_dim), np.float32), []
        else:
            emb, found = library.video_embeddings(encoder.key, abs_paths)
        reasons = dict(library.failures(abs_paths))
    reasons.update({canonical_path(p): r for p, r in report.failed})
    found_set = set(found)
    failed = {i: reasons.get(p, "no embedding was produced") for i, p in enumerate(abs_paths) if i not in found_set}
    encoded = int(report.added + report.updated)
    seconds = time.perf_counter() - t0
    LOG.info(
        "video embeddings: %d found, %d failed, %d newly encoded in %.1f s", len(found), len(failed), encoded, seconds
    )
    return VideoEmbeddings(np.asarray(emb, np.float32), list(found), failed, encoded, seconds, str(lib_path))


def encode_texts(encoder: Any, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """``encoder.encode_text`` over ``texts`` in batches: float32 ``[len(texts), D]``."""
    if not texts:
        return np.zeros((0, encoder.embed_dim), np.float32)
    chunks = [encoder.encode_text(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def model_info(encoder: Any, options: BenchOptions) -> dict[str, Any]:
    """The model part of a results JSON (``precision``: what the encoder ran at, part of its key)."""

    return {
        "key": encoder.key,
        "precision": getattr(encoder, "precision", None) or split_key(str(encoder.key))[1],
        "name": options.model,
        "checkpoint": str(getattr(encoder, "checkpoint", options.checkpoint) or "") or None,
        "checkpoint_hash": getattr(encoder, "checkpoint_hash", None),
        "config": options.model_config,
        "num_frames": int(encoder.num_frames),
        "resolution": int(encoder.resolution),
        "embed_dim": int(encoder.embed_dim),
        "device": str(getattr(encoder, "device", options.device)),
    }


def sampling_info(encoder: Any) -> dict[str, Any]:
    """The sampling part of a results JSON: whole videos, ``num_frames`` frames each."""
    sampling = bench_sampling(bool(getattr(encoder, "antialias", False)))
    d = asdict(sampling)
    d = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in d.items()}
    return {
        "mode": "whole video",
        "frames_per_video": int(encoder.num_frames),
        "resolution": int(encoder.resolution),
        "config": d,
    }


def package_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages that change the numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _check_missing(
    names: Sequence[str], paths: Sequence[Path | None], videos_dir: Path, allow_missing: bool
) -> list[str]:
    missing = [n for n, p in zip(names, paths, strict=False) if p is None]
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} of {len(names)} videos are not in {videos_dir} ({name_list(missing, count=False)}); "
            "pass --allow-missing to evaluate on the videos that exist"
        )
    return missing


def _check_failed(names: Sequence[str], failed: dict[int, str], allow_missing: bool) -> list[dict[str, str]]:
    bad = [f"{names[i]} [{failed[i]}]" for i in sorted(failed)]
    if bad and not allow_missing:
        raise InputError(
            f"{len(bad)} of {len(names)} videos could not be decoded ({name_list(bad, first=3, count=False)}); "
            "pass --allow-missing to evaluate on the videos that decode"
        )
    return [{"video": names[i], "reason": failed[i]} for i in sorted(failed)]


@dataclass
class NamedEmbeddings:
    """Embeddings of the videos an annotation file names, and what could not be embedded.

    Attributes:
        encoder: the encoder used (loaded here unless one was given).
        embeddings: float32 ``[len(rows), D]``.
        rows: positions into the names that have an embedding, ascending.
        missing: names without a file.
        undecodable: ``{"video", "reason"}`` of the files that could not be decoded.
        videos: the video stage's cache statistics and timing.
    """

    encoder: Any
    embeddings: np.ndarray
    rows: list[int]
    missing: list[str]
    undecodable: list[dict[str, str]]
    videos: VideoEmbeddings


def embed_named_videos(
    names: Sequence[str],
    videos_dir: Path | str,
    options: BenchOptions,
    *,
    progress: Any | None = None,
    encoder: Any | None = None,
) -> NamedEmbeddings:
    """Resolve ``names`` under ``videos_dir`` and embed the files (see :func:`embed_videos`).

    Raises:
        InputError: missing or undecodable videos without ``options.allow_missing`` (the count
            and the first names), or no video at all.
    """
    videos_dir = Path(videos_dir)
    paths = resolve_videos(names, videos_dir)
    missing = _check_missing(names, paths, videos_dir, options.allow_missing)
    present = [i for i, p in enumerate(paths) if p is not None]
    if not present:
        raise InputError(f"none of the {len(names)} videos of the annotations is in {videos_dir}")
    if encoder is None:
        encoder = open_encoder(bench_encoder_spec(options))
    ve = embed_videos([paths[i] for i in present], encoder, options, progress=progress)
    failed = {present[j]: reason for j, reason in ve.failed.items()}
    undecodable = _check_failed(names, failed, options.allow_missing)
    rows = [present[j] for j in ve.found]
    if not rows:
        raise InputError(f"none of the {len(names)} videos of the annotations could be decoded")
    return NamedEmbeddings(encoder, ve.embeddings, rows, missing, undecodable, ve)


def run_info(ne: NamedEmbeddings, options: BenchOptions, videos_dir: Path | str) -> dict[str, Any]:
    """Results fields every benchmark shares: model, sampling, coverage, cache, versions."""
    return {
        "videos_dir": str(videos_dir),
        "model": model_info(ne.encoder, options),
        "sampling": sampling_info(ne.encoder),
        "complete": not ne.missing and not ne.undecodable,
        "missing": ne.missing,
        "undecodable": ne.undecodable,
        "cache": ne.videos.library,
        "versions": package_versions(),
    }


def timing_info(ne: NamedEmbeddings, wall: float, text_seconds: float, texts: int, text_unit: str) -> dict[str, Any]:
    """Wall time, stage times and throughput (of the work actually done: cached videos cost nothing)."""
    ve = ne.videos
    return {
        "wall_seconds": round(wall, 3),
        "video_seconds": round(ve.seconds, 3),
        "text_seconds": round(text_seconds, 3),
        "videos_encoded": ve.encoded,
        "videos_cached": len(ve.found) - min(ve.encoded, len(ve.found)),
        "videos_per_second": round(ve.encoded / ve.seconds, 3) if ve.encoded and ve.seconds > 0 else None,
        f"{text_unit}_per_second": round(texts / text_seconds, 3) if text_seconds > 0 else None,
    }


def utc_now() -> str:
    """Current time, ISO 8601 in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
