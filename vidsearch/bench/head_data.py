"""Embeddings of annotated clips for a trained head, and ``enrich train-head``'s whole run.

A head trains on the embeddings the library already stores: an annotated clip that is indexed
in the chosen space (same file, whole-video segment) costs no decoding. Only the clips that are
not in the library are decoded and encoded, with the space's own model, through the benchmark
cache library (``<cache dir>/bench`` or ``--bench-library``), so they never enter the user's
library (as ``enrich calibrate`` does).

Annotation formats: those of ``bench recognition`` (:mod:`vidsearch.bench.recognition`): CSV
``video,label`` (header optional), or a whitespace list, UCF-101/HMDB-51 style, with
``path label`` or ``class/file.avi`` lines (the class is the folder; the official UCF-101
``trainlist0N.txt`` lines ``class/file.avi N`` take their class from the folder too, since
``N`` counts from 1). Unknown clips: CSV ``video[,label]`` or one video a line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.bench.common import BenchOptions, embed_named_videos
from vidsearch.bench.datasets import resolve_videos
from vidsearch.bench.recognition import RecognitionSet
from vidsearch.enrich.head import HeadConfig, TrainedHead, check_class_counts, save_head, train_head
from vidsearch.errors import InputError
from vidsearch.precision import split_key

__all__ = ["ClipEmbeddings", "space_bench_options", "clip_embeddings", "train_library_head"]

LOG = logging.getLogger(__name__)


@dataclass
class ClipEmbeddings:
    """Whole-video embeddings of annotated clips, in annotation order (missing ones left out).

    Attributes:
        embeddings: float32 ``[len(rows), D]``.
        rows: positions into the annotated names that have an embedding, ascending.
        from_library: how many came from the library's stored vectors.
        encoded: how many were decoded and encoded in this run (the rest came from the cache).
    """

    embeddings: np.ndarray
    rows: list[int]
    from_library: int
    encoded: int


def space_bench_options(
    space: Any, device: str = "auto", bench_library: str | None = None, allow_missing: bool = False
) -> BenchOptions:
    """Benchmark options that encode with a library space's own model and precision."""
    spec = dict(space.model_spec)
    return BenchOptions(
        model=str(spec.get("model", "")) or "viclip-b16",
        checkpoint=spec.get("checkpoint"),
        model_config=spec.get("config"),
        device=device,
        precision=split_key(space.key)[1],  # the space's: its videos' vectors go into a bench space of the same key
        library=bench_library,
        allow_missing=allow_missing,
    )


def clip_embeddings(
    library: Any,
    space: Any,
    names: Sequence[str],
    videos_dir: Path | str,
    options: BenchOptions,
    progress: Any | None = None,
) -> ClipEmbeddings:
    """Stored vectors of the annotated clips the library has; the others encoded (module docstring).

    Raises:
        InputError: annotated videos not in ``videos_dir`` or undecodable (without
            ``options.allow_missing``: the count and the first names), or none left.
    """
    unique = list(dict.fromkeys(names))
    paths = resolve_videos(unique, videos_dir)
    present = [i for i, p in enumerate(paths) if p is not None]
    stored, found = library.video_embeddings(space.key, [paths[i] for i in present])
    vec: dict[str, np.ndarray] = {unique[present[j]]: stored[k] for k, j in enumerate(found)}
    rest = [n for n in unique if n not in vec]
    encoded = 0
    if rest:  # not indexed in this space (or not found at all: embed_named_videos names those)
        ne = embed_named_videos(rest, videos_dir, options, progress=progress)
        vec.update({rest[r]: ne.embeddings[k] for k, r in enumerate(ne.rows)})
        encoded = ne.videos.encoded
    rows = [i for i, n in enumerate(names) if n in vec]
    if not rows:
        raise InputError(f"none of the {len(names)} annotated videos could be embedded")
    emb = np.stack([vec[names[i]] for i in rows]).astype(np.float32)
    return ClipEmbeddings(emb, rows, len(found), encoded)


def train_library_head(
    library: Any,
    classes: Sequence[str],
    known: RecognitionSet,
    videos_dir: Path | str,
    out: Path | str,
    config: HeadConfig,
    unknown: Sequence[str] | None = None,
    unknown_dir: Path | str | None = None,
    *,
    space_key: str | None = None,
    device: str = "auto",
    bench_library: str | None = None,
    allow_missing: bool = False,
    progress: Any | None = None,
) -> tuple[TrainedHead, dict[str, Any]]:
    """Train a head for a library space on annotated clips and write it to ``out``.

    Returns:
        ``(head, summary)``: the summary counts clips from the library, encoded and cached.

    Raises:
        InputError: a class with fewer than 2 annotated clips (checked before anything is
            decoded, and again after missing clips are left out), missing videos.
    """
    check_class_counts(known.labels, classes, str(known.source or "the annotations"))
    space = library.space(space_key)
    options = space_bench_options(space, device, bench_library, allow_missing)
    k = clip_embeddings(library, space, known.videos, videos_dir, options, progress)
    labels = known.labels[k.rows]
    u = clip_embeddings(library, space, unknown, unknown_dir or videos_dir, options, progress) if unknown else None
    head = train_head(k.embeddings, labels, classes, space.key, config, u.embeddings if u is not None else None)
    save_head(head, out)
    summary = {
        "head": str(Path(out).resolve()),
        "space": space.key,
        "classes": len(classes),
        "known_clips": len(k.rows),
        "unknown_clips": len(u.rows) if u is not None else 0,
        "from_library": k.from_library + (u.from_library if u is not None else 0),
        "encoded": k.encoded + (u.encoded if u is not None else 0),
        "training": head.training,
        "calibration": head.calibration,
        "rule": head.rule.to_dict(),
    }
    return head, summary
