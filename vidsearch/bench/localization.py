"""The temporal localization benchmark, Charades-STA style (:func:`run_localization`).

Annotation lines are ``video start end##sentence`` (the official Charades-STA files) or
``video start end sentence`` (whitespace separated); times in seconds; blank lines and ``#``
comments are skipped. Each video's fine windows are embedded once (cached under the benchmark
cache library's ``windows/`` folder) and every sentence of it is localized; R@1 and R@5 at IoU
0.3/0.5/0.7 and the mIoU of the top-1 span are reported (:func:`vidsearch.metrics.localization_metrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsearch.bench.common import (
    BenchOptions,
    bench_encoder_spec,
    bench_library_path,
    encode_texts,
    model_info,
    package_versions,
    utc_now,
)
from vidsearch.bench.datasets import name_list, read_text_file, resolve_videos
from vidsearch.enrich.localize import LocalizeConfig, spans_for_query
from vidsearch.enrich.window_cache import WindowCache
from vidsearch.enrich.windows import embed_windows
from vidsearch.errors import InputError, MediaError
from vidsearch.metrics import localization_metrics
from vidsearch.models.opener import open_encoder

__all__ = ["Moment", "LocalizationRun", "read_localization_annotations", "run_localization"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Moment:
    """One localization query: a sentence and where it happens in a video (seconds)."""

    video: str
    start: float
    end: float
    sentence: str


@dataclass
class LocalizationRun:
    """A finished localization benchmark: results and per-query top spans."""

    results: dict[str, Any]
    predictions: list[list[tuple[float, float, float]]]


def read_localization_annotations(path: Path | str) -> list[Moment]:
    """Read Charades-STA style lines ``video start end##sentence`` or ``video start end sentence``.

    Raises:
        InputError: unreadable file, a malformed line (named), ``end <= start``, or no lines.
    """
    path = Path(path)
    moments: list[Moment] = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "##" in text:
            head, sentence = text.split("##", 1)
            parts = head.split()
        else:
            parts = text.split(None, 3)
            sentence = parts[3] if len(parts) == 4 else ""
            parts = parts[:3]
        if len(parts) != 3 or not sentence.strip():
            raise InputError(
                f"{path}, line {lineno}: expected 'video start end##sentence' or 'video start end sentence'"
            )
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise InputError(
                f"{path}, line {lineno}: start and end must be numbers (seconds), got {parts[1]!r} {parts[2]!r}"
            ) from None
        if not (0 <= start < end):
            raise InputError(f"{path}, line {lineno}: need 0 <= start < end, got {start:g} {end:g}")
        moments.append(Moment(parts[0], start, end, sentence.strip()))
    if not moments:
        raise InputError(f"{path}: no annotations")
    return moments


def run_localization(
    moments: Sequence[Moment],
    videos_dir: Path | str,
    options: BenchOptions | None = None,
    config: LocalizeConfig | None = None,
    *,
    encoder: Any | None = None,
    annotations: str | None = None,
    on_video: Any | None = None,
) -> LocalizationRun:
    """Localize every sentence in its video and score the top spans against the ground truth.

    Args:
        moments: queries (:func:`read_localization_annotations`).
        videos_dir: folder of the videos.
        options: model, cache and tolerance settings (window embeddings are cached under the
            benchmark cache library's ``windows/`` folder).
        config: window geometry and span extraction (``top`` is raised to 5 for R@5).
        encoder: an already loaded encoder.
        annotations: the annotation file, recorded in the results.
        on_video: called with each video name once it is done (progress display).

    Raises:
        InputError: missing or undecodable videos without ``allow_missing``, or nothing left.
    """
    options = options or BenchOptions()
    config = config or LocalizeConfig()
    t0 = time.perf_counter()
    videos_dir = Path(videos_dir)
    unique = list(dict.fromkeys(m.video for m in moments))
    paths = resolve_videos(unique, videos_dir)
    missing = [n for n, p in zip(unique, paths, strict=False) if p is None]
    if missing and not options.allow_missing:
        raise InputError(
            f"{len(missing)} of {len(unique)} videos are not in {videos_dir} ({name_list(missing, count=False)}); "
            "pass --allow-missing to evaluate on the videos that exist"
        )
    if encoder is None:
        encoder = open_encoder(bench_encoder_spec(options))
    cache = WindowCache(bench_library_path(options.library) / "windows")
    xq = encode_texts(encoder, [m.sentence for m in moments], options.text_batch_size)
    by_video: dict[str, list[int]] = {}
    for q, m in enumerate(moments):
        by_video.setdefault(m.video, []).append(q)
    predictions: list[list[tuple[float, float, float]] | None] = [None] * len(moments)
    failed: dict[int, str] = {}
    cached = encoded = 0
    top = max(config.top, 5)
    for vi, (name, path) in enumerate(zip(unique, paths, strict=False)):
        if path is None:
            continue
        try:
            emb = embed_windows(path, encoder, config.window, config.stride, cache)
        except MediaError as exc:
            failed[vi] = getattr(exc, "reason", str(exc))
            continue
        cached += int(emb.cached)
        encoded += int(not emb.cached)
        for q in by_video[name]:
            spans = spans_for_query(emb, xq[q], config, top=top)
            predictions[q] = [(s.start, s.end, s.score) for s in spans]
        if on_video is not None:
            on_video(name)
    undecodable = [unique[i] for i in sorted(failed)]
    if undecodable and not options.allow_missing:
        bad = [f"{unique[i]} [{failed[i]}]" for i in sorted(failed)]
        raise InputError(
            f"{len(bad)} of {len(unique)} videos could not be decoded ({name_list(bad, first=3, count=False)}); "
            "pass --allow-missing to evaluate on the videos that decode"
        )
    done = [q for q, p in enumerate(predictions) if p is not None]
    if not done:
        raise InputError("no videos left to evaluate: all are missing or undecodable")
    metrics = localization_metrics(
        [[(a, b) for a, b, _ in predictions[q] or []] for q in done], [(moments[q].start, moments[q].end) for q in done]
    )
    wall = time.perf_counter() - t0
    results: dict[str, Any] = {
        "task": "localization",
        "annotations": annotations,
        "videos_dir": str(videos_dir),
        "model": model_info(encoder, options),
        "config": {
            "window": config.window,
            "stride": config.stride,
            "smooth": config.smooth,
            "nms_iou": config.nms_iou,
        },
        "counts": {
            "queries": len(done),
            "queries_in_annotations": len(moments),
            "videos": len(unique) - len(missing) - len(undecodable),
            "missing": len(missing),
            "undecodable": len(undecodable),
        },
        "complete": not missing and not undecodable,
        "missing": missing,
        "undecodable": undecodable,
        "metrics": metrics,
        "timing": {"wall_seconds": round(wall, 3), "videos_encoded": encoded, "videos_cached": cached},
        "cache": str(cache.root),
        "versions": package_versions(),
        "created": utc_now(),
    }
    return LocalizationRun(results, [p or [] for p in predictions])
