"""The open-set recognition benchmark and the calibration of a library's label set.

**Open-set recognition** (:func:`run_open_set`), the protocol of the InternVideo open-set
experiments: videos of a known label set (UCF-101) and videos of classes outside it (HMDB-51)
are embedded whole; closed-set top-1/top-5 accuracy is measured on the known videos against the
known classes; open-set AUROC measures how well the known score (:mod:`vidsearch.labels`)
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
temperature and threshold of a label set (:func:`vidsearch.enrich.openset.calibrate`), which is
then applied to the library.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from vidsearch.bench.common import (
    BenchOptions,
    bench_encoder_spec,
    bench_library_path,
    embed_named_videos,
    model_info,
    package_versions,
    utc_now,
)
from vidsearch.bench.datasets import read_text_file
from vidsearch.bench.head_data import space_bench_options
from vidsearch.bench.recognition import RecognitionSet
from vidsearch.enrich.head import TrainedHead, check_space
from vidsearch.enrich.openset import DEFAULT_KEEP, calibrate, fpr_at_tpr
from vidsearch.enrich.recognize import list_label_sets, recognize_library
from vidsearch.errors import InputError
from vidsearch.labels import (
    DEFAULT_TEMPLATES,
    SCORE_KINDS,
    OpenSetRule,
    default_rule,
    known_scores,
    label_embeddings,
    label_set_name,
    load_label_set,
    normalize_label,
)
from vidsearch.metrics import auroc, open_set_macro_f1, topk_accuracy
from vidsearch.models.opener import open_encoder
from vidsearch.usecases.encoders import space_encoder

__all__ = [
    "EmbeddedSet",
    "OpenSetRun",
    "read_video_list",
    "embed_annotated",
    "run_open_set",
    "open_set_figures",
    "head_figures",
    "calibrate_label_set",
]

LOG = logging.getLogger(__name__)


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
    return EmbeddedSet(
        emb, lab, [videos[i] for i in keep], ne.missing, undecodable, ne.videos.encoded, ne.videos.seconds
    )


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
    heads: Sequence[tuple[str, TrainedHead]] = (),
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
        heads: ``(name, head)`` trained heads (``enrich train-head``) of the model's space and the
            known label set's classes, measured on the same videos (``results["heads"]``).
    """
    options = options or BenchOptions()
    t0 = time.perf_counter()
    if encoder is None:
        encoder = cast(Any, open_encoder(bench_encoder_spec(options)))  # both towers and the trained temperature
    if rule is None:
        rule = default_rule(encoder.temperature)
    for name, head in heads:  # a head of another space fails before any video is decoded
        check_space(head, str(encoder.key), name)
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
    zero_shot = open_set_figures(Sk, ks, k_set.labels, Su, us, rule.threshold)
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
                "macro_f1": zero_shot["macro_f1"],
            },
        },
        "heads": {name: head_figures(head, classes, k_set, u_set.embeddings) for name, head in heads},
        "timing": {
            "wall_seconds": round(wall, 3),
            "videos_encoded": k_set.encoded + u_set.encoded,
        },
        "cache": str(bench_library_path(options.library)),
        "versions": package_versions(),
        "created": utc_now(),
    }
    return OpenSetRun(results, ks, us)


def open_set_figures(
    probs: np.ndarray,
    known: np.ndarray,
    labels: np.ndarray,
    probs_unknown: np.ndarray,
    unknown: np.ndarray,
    threshold: float,
) -> dict[str, float]:
    """The guide's figures of one classifier, in percent: closed-set top-1, open-set AUROC, macro F1.

    Args:
        probs: class scores ``[N, K]`` of the known videos (any monotone score: argmax is the class).
        known: known scores of the known videos ``[N]`` (higher = known).
        labels: their true classes ``[N]``.
        probs_unknown: class scores ``[M, K]`` of the unknown videos.
        unknown: their known scores ``[M]``.
        threshold: known score below which a video is unknown: the operating point of the macro
            F1 over the K classes and "unknown" (:func:`vidsearch.metrics.open_set_macro_f1`; an
            unknown video kept counts against the class it is taken for).
    """
    k = probs.shape[1]
    keep_known, keep_unknown = np.asarray(known) >= threshold, np.asarray(unknown) >= threshold
    pred = np.argmax(probs, axis=1)
    predicted = np.concatenate(
        [np.where(keep_known, pred, k), np.where(keep_unknown, np.argmax(probs_unknown, axis=1), k)]
    )
    truth = np.concatenate([labels, np.full(len(unknown), k)])
    return {
        "closed_top1": 100.0 * float(np.mean(pred == labels)),
        "auroc": 100.0 * auroc(known, unknown),
        "macro_f1": open_set_macro_f1(predicted, truth, k),
        "known_kept": 100.0 * float(keep_known.mean()),
        "unknown_kept": 100.0 * float(keep_unknown.mean()),
    }


def head_figures(head: TrainedHead, classes: Sequence[str], known: EmbeddedSet, unknown: np.ndarray) -> dict[str, Any]:
    """:func:`open_set_figures` of a trained head at its own threshold, plus the AUROC of its MSP.

    Raises:
        InputError: the head's classes are not the known label set's.
    """
    order = {normalize_label(c): i for i, c in enumerate(head.classes)}
    if sorted(order) != sorted(normalize_label(c) for c in classes):
        raise InputError(
            f"the head's {len(head.classes)} classes are not the {len(classes)} classes of the known label set; "
            "pass the label set the head was trained with as --known-labels"
        )
    cols = [order[normalize_label(c)] for c in classes]  # the head's columns in the label set's order
    _, probs, ks = head.predict(known.embeddings)
    _, probs_u, us = head.predict(unknown)
    out: dict[str, Any] = {
        "loss": head.config.loss,
        "score": head.rule.kind,
        "threshold": head.rule.threshold,
        **open_set_figures(probs[:, cols], ks, known.labels, probs_u[:, cols], us, head.rule.threshold),
    }
    out["auroc_msp"] = 100.0 * auroc(probs.max(axis=1), probs_u.max(axis=1))
    return out


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

    space = library.space(space_key)
    classes = load_label_set(labels)
    if templates is None:  # calibrate the prompts the library's label set uses
        current = [ls for ls in list_label_sets(library, space.key) if ls.name == label_set_name(labels)]
        templates = current[0].templates if current else list(DEFAULT_TEMPLATES)
    encoder = space_encoder(space, device=device)
    options = space_bench_options(space, device, bench_library, allow_missing)
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
        fallback_temperature=default_rule(encoder.temperature).temperature,
    )
    cal["created"] = utc_now()
    rec = recognize_library(
        library, labels, space_key=space.key, top=top, rule=rule, calibration=cal, templates=templates, encoder=encoder
    )
    return rule, cal, rec
