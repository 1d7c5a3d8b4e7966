"""Benchmarks and calibration of the enrichment passes: open-set recognition and temporal localization.

**Open-set recognition** (:func:`run_open_set`), the protocol of the InternVideo open-set
experiments: videos of a known label set (UCF-101) and videos of classes outside it (HMDB-51)
are embedded whole; closed-set top-1/top-5 accuracy is measured on the known videos against the
known classes; open-set AUROC measures how well the known score (:mod:`vidsearch.enrich.openset`)
separates known from unknown videos. Every score kind is reported; the chosen one also with its
operating point (known videos kept, unknown videos kept) at the rule's threshold.

Annotation formats:

* known videos: exactly as ``vidsearch bench recognition`` (CSV ``video,label``, the official
  Kinetics CSV, or a whitespace list file), labels from the known label set;
* unknown videos: CSV ``video[,label]`` (a header row naming ``video`` is optional) or a
  whitespace list with one video a line (a trailing label is allowed). Labels of unknown
  videos are not used: by definition they are not classes of the known set.

**Calibration** (:func:`calibrate_label_set`): the same known (and optionally unknown) video
sets, embedded through the benchmark cache library (never the user's library), fit the
temperature and threshold of a label set, which is then applied to the library.

**Localization** (:func:`run_localization`), Charades-STA style. Annotation lines are
``video start end##sentence`` (the official Charades-STA files) or ``video start end sentence``
(whitespace separated); times in seconds; blank lines and ``#`` comments are skipped. Each video's
fine windows are embedded once (cached) and every sentence of it is localized; R@1 and R@5 at
IoU 0.3/0.5/0.7 and the mIoU of the top-1 span are reported.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.bench.common import (
    BenchOptions,
    bench_library_path,
    embed_named_videos,
    encode_texts,
    load_bench_encoder,
    model_info,
    package_versions,
    utc_now,
)
from vidsearch.bench.datasets import name_list, read_text_file, resolve_videos
from vidsearch.bench.prompts import DEFAULT_TEMPLATES, label_embeddings
from vidsearch.bench.recognition import RecognitionSet
from vidsearch.enrich.localize import LocalizeConfig, WindowCache, embed_windows, localization_metrics, localize_windows
from vidsearch.enrich.openset import (
    DEFAULT_KEEP,
    DEFAULT_MSP_THRESHOLD,
    DEFAULT_TEMPERATURE,
    SCORE_KINDS,
    OpenSetRule,
    auroc,
    calibrate,
    fpr_at_tpr,
    known_scores,
    model_temperature,
)
from vidsearch.errors import InputError, MediaError
from vidsearch.metrics import topk_accuracy

__all__ = [
    "Moment",
    "EmbeddedSet",
    "OpenSetRun",
    "LocalizationRun",
    "read_video_list",
    "read_localization_annotations",
    "embed_annotated",
    "run_open_set",
    "calibrate_label_set",
    "run_localization",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Moment:
    """One localization query: a sentence and where it happens in a video (seconds)."""

    video: str
    start: float
    end: float
    sentence: str


@dataclass
class EmbeddedSet:
    """Whole-video embeddings of an annotated set, in annotation order (missing ones left out)."""

    embeddings: np.ndarray  # float32 [n, D]
    labels: np.ndarray  # int64 [n] (-1 when the set has no labels)
    videos: list[str]
    missing: list[str]
    undecodable: list[str]
    encoded: int
    seconds: float


@dataclass
class OpenSetRun:
    """A finished open-set benchmark: JSON-ready results and the known scores of both sets."""

    results: dict[str, Any]
    known: np.ndarray
    unknown: np.ndarray


@dataclass
class LocalizationRun:
    """A finished localization benchmark: results and per-query top spans."""

    results: dict[str, Any]
    predictions: list[list[tuple[float, float, float]]]


# --------------------------------------------------------------------------------------------
# annotation readers


def read_video_list(path: Path | str) -> list[str]:
    """Video names of an unknown-video annotation file (formats in the module docstring).

    Raises:
        InputError: unreadable or empty file.
    """
    path = Path(path)
    lines = [ln for ln in read_text_file(path).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: no videos listed")
    delim = next((d for d in (",", "\t", ";") if d in lines[0]), None)
    videos: list[str] = []
    if delim is None:
        if lines[0].split()[0].lower() == "video":  # a one-column CSV's header
            lines = lines[1:]
        for line in lines:
            parts = line.split()
            videos.append(parts[0] if len(parts) == 1 else " ".join(parts[:-1]))
        return videos
    rows = list(csv.reader(lines, delimiter=delim))
    header = [c.strip().lower() for c in rows[0]]
    col = header.index("video") if "video" in header else 0
    for lineno, row in enumerate(rows[1:] if "video" in header else rows, start=2 if "video" in header else 1):
        if len(row) <= col or not row[col].strip():
            raise InputError(f"{path}, line {lineno}: expected a video name")
        videos.append(row[col].strip())
    return videos


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
            raise InputError(f"{path}, line {lineno}: expected 'video start end##sentence' or 'video start end sentence'")
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise InputError(f"{path}, line {lineno}: start and end must be numbers (seconds), got {parts[1]!r} {parts[2]!r}") from None
        if not (0 <= start < end):
            raise InputError(f"{path}, line {lineno}: need 0 <= start < end, got {start:g} {end:g}")
        moments.append(Moment(parts[0], start, end, sentence.strip()))
    if not moments:
        raise InputError(f"{path}: no annotations")
    return moments


# --------------------------------------------------------------------------------------------
# open set


def embed_annotated(
    videos: Sequence[str],
    labels: Sequence[int] | np.ndarray | None,
    videos_dir: Path | str,
    encoder: Any,
    options: BenchOptions,
    progress: Any | None = None,
) -> EmbeddedSet:
    """Embed the videos of an annotation set whole through the benchmark cache (listed twice: once).

    Raises:
        InputError: missing or undecodable videos without ``options.allow_missing``, or none left.
    """
    unique = list(dict.fromkeys(videos))
    ne = embed_named_videos(unique, videos_dir, options, progress=progress, encoder=encoder)
    row_of = {unique[r]: k for k, r in enumerate(ne.rows)}
    keep = [i for i, v in enumerate(videos) if v in row_of]
    lab = np.asarray(labels, np.int64)[keep] if labels is not None else np.full(len(keep), -1, np.int64)
    emb = ne.embeddings[[row_of[videos[i]] for i in keep]]
    undecodable = [u["video"] for u in ne.undecodable]
    return EmbeddedSet(emb, lab, [videos[i] for i in keep], ne.missing, undecodable, ne.videos.encoded, ne.videos.seconds)


def run_open_set(
    known: RecognitionSet,
    classes: Sequence[str],
    known_dir: Path | str,
    unknown_videos: Sequence[str],
    unknown_dir: Path | str,
    options: BenchOptions | None = None,
    *,
    label_set: str = "",
    rule: OpenSetRule | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    encoder: Any | None = None,
    progress: Any | None = None,
) -> OpenSetRun:
    """Closed-set accuracy on the known videos and open-set AUROC of known vs unknown videos.

    Args:
        known: known videos and their classes (``read_recognition_annotations``).
        classes: the known label set.
        known_dir: folder of the known videos.
        unknown_videos: names of the unknown videos (:func:`read_video_list`).
        unknown_dir: folder of the unknown videos.
        options: model, cache and tolerance settings.
        label_set: the known label set's name, recorded in the results.
        rule: open-set rule for the operating point; None: MSP at the model's temperature with
            the default threshold.
        templates: prompt templates.
        encoder: an already loaded encoder.
        progress: an indexer progress sink.
    """
    options = options or BenchOptions()
    t0 = time.perf_counter()
    if encoder is None:
        encoder = load_bench_encoder(options)
    if rule is None:
        rule = OpenSetRule("msp", model_temperature(encoder) or DEFAULT_TEMPERATURE, DEFAULT_MSP_THRESHOLD)
    k_set = embed_annotated(known.videos, known.labels, known_dir, encoder, options, progress)
    u_set = embed_annotated(list(unknown_videos), None, unknown_dir, encoder, options, progress)
    class_emb = label_embeddings(encoder, classes, templates, batch_size=options.text_batch_size)
    Sk = k_set.embeddings @ class_emb.T
    Su = u_set.embeddings @ class_emb.T
    closed = topk_accuracy(Sk, k_set.labels, ks=(1, 5))
    per_kind: dict[str, dict[str, float]] = {}
    for kind in SCORE_KINDS:
        ks, us = known_scores(Sk, kind, rule.temperature), known_scores(Su, kind, rule.temperature)
        per_kind[kind] = {"auroc": 100.0 * auroc(ks, us), "fpr_at_95tpr": 100.0 * fpr_at_tpr(ks, us, 0.95)}
    ks, us = rule.scores(Sk), rule.scores(Su)
    keep_known = ~rule.unknown(ks)
    open_correct = keep_known & (np.argmax(Sk, axis=1) == k_set.labels)
    wall = time.perf_counter() - t0
    results: dict[str, Any] = {
        "task": "open-set recognition",
        "label_set": label_set,
        "classes": len(classes),
        "model": model_info(encoder, options),
        "templates": list(templates),
        "rule": rule.to_dict(),
        "counts": {
            "known_videos": len(k_set.videos),
            "unknown_videos": len(u_set.videos),
            "known_missing": len(k_set.missing),
            "known_undecodable": len(k_set.undecodable),
            "unknown_missing": len(u_set.missing),
            "unknown_undecodable": len(u_set.undecodable),
        },
        "complete": not (k_set.missing or k_set.undecodable or u_set.missing or u_set.undecodable),
        "metrics": {
            "closed_top1": closed["top1"],
            "closed_top5": closed["top5"],
            "auroc": per_kind[rule.kind]["auroc"],
            "fpr_at_95tpr": per_kind[rule.kind]["fpr_at_95tpr"],
            "by_score": per_kind,
            "operating_point": {
                "threshold": rule.threshold,
                "known_kept": 100.0 * float(keep_known.mean()),
                "unknown_kept": 100.0 * float((~rule.unknown(us)).mean()),
                "open_set_top1": 100.0 * float(open_correct.mean()),  # known videos kept AND right
            },
        },
        "timing": {
            "wall_seconds": round(wall, 3),
            "videos_encoded": k_set.encoded + u_set.encoded,
        },
        "cache": str(bench_library_path(options.library)),
        "versions": package_versions(),
        "created": utc_now(),
    }
    return OpenSetRun(results, ks, us)


def calibrate_label_set(
    library: Any,
    labels: str | Path,
    known: RecognitionSet,
    known_dir: Path | str,
    unknown_videos: Sequence[str] | None = None,
    unknown_dir: Path | str | None = None,
    *,
    kind: str = "msp",
    keep: float = DEFAULT_KEEP,
    temperature: float | None = None,
    space_key: str | None = None,
    device: str = "auto",
    bench_library: str | None = None,
    allow_missing: bool = False,
    templates: Sequence[str] | None = None,
    top: int | None = None,
    progress: Any | None = None,
) -> tuple[OpenSetRule, dict[str, Any], Any]:
    """Fit a label set's temperature and threshold on annotated videos and apply it to the library.

    Videos are embedded with the space's own model through the benchmark cache library
    (``bench_library``, default ``<cache dir>/bench``), so calibration videos never enter the
    user's library. The library is then relabelled from its stored vectors with the new rule.

    Returns:
        ``(rule, calibration_report, recognize_report)``.
    """
    from vidsearch.bench.prompts import load_label_set
    from vidsearch.enrich.recognize import label_set_name, list_label_sets, recognize_library
    from vidsearch.search import load_space_encoder

    space = library.space(space_key)
    classes = load_label_set(labels)
    if templates is None:  # calibrate the prompts the library's label set uses
        current = [ls for ls in list_label_sets(library, space.key) if ls.name == label_set_name(labels)]
        templates = current[0].templates if current else list(DEFAULT_TEMPLATES)
    encoder = load_space_encoder(space, device=device)
    spec = dict(space.model_spec)
    options = BenchOptions(
        model=str(spec.get("model", "")) or "viclip-b16",
        checkpoint=spec.get("checkpoint"),
        model_config=spec.get("config"),
        device=device,
        library=bench_library,
        allow_missing=allow_missing,
    )
    k_set = embed_annotated(known.videos, known.labels, known_dir, encoder, options, progress)
    u_emb = None
    if unknown_videos:
        u_set = embed_annotated(list(unknown_videos), None, unknown_dir or known_dir, encoder, options, progress)
        u_emb = u_set.embeddings
    class_emb = label_embeddings(encoder, classes, templates)
    rule, cal = calibrate(
        k_set.embeddings @ class_emb.T,
        k_set.labels,
        u_emb @ class_emb.T if u_emb is not None else None,
        kind=kind,
        keep=keep,
        temperature=temperature,
        fallback_temperature=model_temperature(encoder) or DEFAULT_TEMPERATURE,
    )
    cal["created"] = utc_now()
    rec = recognize_library(library, labels, space_key=space.key, top=top, rule=rule, calibration=cal, templates=templates, encoder=encoder)
    return rule, cal, rec


# --------------------------------------------------------------------------------------------
# localization


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
    missing = [n for n, p in zip(unique, paths) if p is None]
    if missing and not options.allow_missing:
        raise InputError(
            f"{len(missing)} of {len(unique)} videos are not in {videos_dir} ({name_list(missing, count=False)}); "
            "pass --allow-missing to evaluate on the videos that exist"
        )
    if encoder is None:
        encoder = load_bench_encoder(options)
    cache = WindowCache(bench_library_path(options.library) / "windows")
    xq = encode_texts(encoder, [m.sentence for m in moments], options.text_batch_size)
    by_video: dict[str, list[int]] = {}
    for q, m in enumerate(moments):
        by_video.setdefault(m.video, []).append(q)
    predictions: list[list[tuple[float, float, float]] | None] = [None] * len(moments)
    failed: dict[int, str] = {}
    cached = encoded = 0
    top = max(config.top, 5)
    for vi, (name, path) in enumerate(zip(unique, paths)):
        if path is None:
            continue
        try:
            emb = embed_windows(path, encoder, config.window, config.stride, cache)
        except MediaError as exc:
            failed[vi] = getattr(exc, "reason", str(exc))
            continue
        cached += int(emb.cached)
        encoded += int(not emb.cached)
        smooth = config.smooth if config.smooth is not None else emb.stride
        for q in by_video[name]:
            spans = localize_windows(emb.windows(xq[q]), smooth=smooth, nms_iou=config.nms_iou, top=top)
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
        "config": {"window": config.window, "stride": config.stride, "smooth": config.smooth, "nms_iou": config.nms_iou},
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
