"""Zero-shot action recognition benchmark with prompt ensembling.

Each class name becomes a text embedding (:func:`~vidsearch.labels.label_embeddings`:
the class put into every template, embeddings averaged and renormalized); each video is embedded
whole (cached like retrieval); a video's prediction is the class with the highest cosine
similarity. Top-1 and top-5 accuracy are reported with pessimistic ties (a wrong class scoring
equal to the true one counts as ahead of it), plus their mean (the "AVG" of the ViCLIP paper's
zero-shot Kinetics table) and the mean per-class top-1 accuracy.

Annotation formats (``--annotations``):

* CSV ``video,label`` (``,``, ``;`` or tab separated; a header row naming ``video`` and
  ``label`` is optional). ``label`` is a class name of the label set (matched ignoring case,
  ``_`` and spaces: ``brush_hair`` = ``Brush Hair``) or a 0-based class index (the line number
  in the label list minus one).
* The official Kinetics CSVs (header ``label,youtube_id,time_start,time_end,split``): the video
  name is ``<youtube_id>_<start:06d>_<end:06d>``, the usual name of downloaded clips.
* Whitespace-separated list files (``.txt``, as MMAction2's ``*_list_videos.txt``):
  ``<video> <label>`` per line, the label last; a line with only a video path (UCF-101's
  official ``testlist0N.txt``) takes its class from the video's folder name, and so does a line
  ``class/file.avi N`` whose folder names a class (``trainlist0N.txt``, where ``N`` counts from 1).
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

from vidsearch.bench.common import BenchOptions, embed_named_videos, run_info, timing_info, utc_now
from vidsearch.bench.datasets import read_text_file
from vidsearch.errors import InputError
from vidsearch.labels import DEFAULT_TEMPLATES, label_embeddings, normalize_label
from vidsearch.metrics import topk_accuracy

__all__ = [
    "RecognitionSet",
    "RecognitionRun",
    "read_recognition_annotations",
    "run_recognition",
]

LOG = logging.getLogger(__name__)


@dataclass
class RecognitionSet:
    """Videos and their true classes.

    Attributes:
        videos: video names (file names, maybe without extension).
        labels: int64 ``[len(videos)]`` class indices into the label set.
        source: the annotation file.
    """

    videos: list[str]
    labels: np.ndarray
    source: str = ""


@dataclass
class RecognitionRun:
    """A finished recognition benchmark: JSON-ready results and the ``[videos, classes]`` scores."""

    results: dict[str, Any]
    scores: np.ndarray
    videos: list[str]
    labels: np.ndarray


def _label_index(value: str, lookup: dict[str, int], n_classes: int, where: str) -> int:
    value = value.strip()
    hit = lookup.get(normalize_label(value))
    if hit is not None:
        return hit
    if value.isdigit():
        idx = int(value)
        if idx >= n_classes:
            raise InputError(f"{where}: class index {idx} is out of range for {n_classes} classes (0-{n_classes - 1})")
        return idx
    raise InputError(
        f"{where}: label {value!r} is not in the label set; use a class name from the label list or a 0-based index"
    )


def read_recognition_annotations(path: Path | str, classes: Sequence[str]) -> RecognitionSet:
    """Read a recognition annotation file (formats in the module docstring) against ``classes``.

    Raises:
        InputError: unreadable file, unknown labels, or no entries.
    """
    path = Path(path)
    text = read_text_file(path)
    lookup = {normalize_label(c): i for i, c in enumerate(classes)}
    videos: list[str] = []
    labels: list[int] = []
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: no annotations")
    first = lines[0]
    delim = next((d for d in (",", "\t", ";") if d in first), None)
    if delim is None:  # whitespace-separated list file
        for lineno, line in enumerate(lines, start=1):
            parts = line.split()
            if len(parts) == 1:
                folder = Path(parts[0]).parent.name
                if not folder:
                    raise InputError(f"{path}, line {lineno}: no label and no class folder in {parts[0]!r}")
                video, label = parts[0], folder
            else:
                video, label = " ".join(parts[:-1]), parts[-1]
                folder = Path(video).parent.name
                if label.isdigit() and normalize_label(folder) in lookup:
                    label = folder  # UCF-101's trainlist: `class/file.avi N` with N counting from 1
            videos.append(video)
            labels.append(_label_index(label, lookup, len(classes), f"{path}, line {lineno}"))
        return RecognitionSet(videos, np.asarray(labels, np.int64), str(path))
    rows = list(csv.reader(lines, delimiter=delim))
    header = [c.strip().lower() for c in rows[0]]
    if "youtube_id" in header and "label" in header:  # official Kinetics CSV
        iy, il = header.index("youtube_id"), header.index("label")
        its, ite = header.index("time_start"), header.index("time_end")
        for lineno, row in enumerate(rows[1:], start=2):
            try:
                video = f"{row[iy]}_{int(float(row[its])):06d}_{int(float(row[ite])):06d}"
            except (IndexError, ValueError):
                raise InputError(f"{path}, line {lineno}: expected youtube_id, time_start and time_end") from None
            videos.append(video)
            labels.append(_label_index(row[il], lookup, len(classes), f"{path}, line {lineno}"))
    else:
        has_header = "video" in header and "label" in header
        iv, il = (header.index("video"), header.index("label")) if has_header else (0, 1)
        for lineno, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
            if len(row) <= max(iv, il):
                raise InputError(f"{path}, line {lineno}: expected video{delim}label")
            videos.append(row[iv].strip())
            labels.append(_label_index(row[il], lookup, len(classes), f"{path}, line {lineno}"))
    if not videos:
        raise InputError(f"{path}: no annotations")
    return RecognitionSet(videos, np.asarray(labels, np.int64), str(path))


def run_recognition(
    rec: RecognitionSet,
    classes: Sequence[str],
    videos_dir: Path | str,
    options: BenchOptions | None = None,
    *,
    label_set: str = "",
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    progress: Any | None = None,
    encoder: Any | None = None,
) -> RecognitionRun:
    """Zero-shot top-1/top-5 accuracy of ``rec`` over ``classes``.

    Args:
        rec: videos and true classes (from :func:`read_recognition_annotations`).
        classes: class names (from :func:`vidsearch.labels.load_label_set`).
        videos_dir: where the video files are.
        options: model, cache and tolerance settings.
        label_set: label set name or file, recorded in the results.
        templates: prompt templates (one ``{}`` each).
        progress: an indexer progress sink for the video stage.
        encoder: an already loaded encoder (else loaded from ``options``).

    Raises:
        InputError: missing or undecodable videos without ``allow_missing``, or nothing left.
    """
    options = options or BenchOptions()
    t0 = time.perf_counter()
    unique = list(dict.fromkeys(rec.videos))  # a video listed twice is embedded once
    ne = embed_named_videos(unique, videos_dir, options, progress=progress, encoder=encoder)
    row_of = {unique[r]: k for k, r in enumerate(ne.rows)}
    samples = [i for i, v in enumerate(rec.videos) if v in row_of]

    t_text = time.perf_counter()
    class_emb = label_embeddings(ne.encoder, classes, templates, batch_size=options.text_batch_size)
    text_seconds = time.perf_counter() - t_text
    scores = ne.embeddings[[row_of[rec.videos[i]] for i in samples]] @ class_emb.T  # [videos, classes] cosine
    labels = rec.labels[samples]
    acc = topk_accuracy(scores, labels, ks=(1, 5))
    # top-1 hit per video with the same pessimistic ties, for the per-class mean
    hits = (scores >= scores[np.arange(len(labels)), labels][:, None]).sum(axis=1) <= 1
    per_class = [float(hits[labels == c].mean()) for c in np.unique(labels)]
    results: dict[str, Any] = {
        "task": "recognition",
        "label_set": label_set,
        "classes": len(classes),
        "annotations": rec.source or None,
        **run_info(ne, options, videos_dir),
        "templates": list(templates),
        "counts": {
            "videos": len(samples),
            "videos_in_annotations": len(rec.videos),
            "missing": len(ne.missing),
            "undecodable": len(ne.undecodable),
            "classes_present": len(per_class),
        },
        "metrics": {
            "top1": acc["top1"],
            "top5": acc["top5"],
            "avg_top1_top5": (acc["top1"] + acc["top5"]) / 2.0,
            "mean_class_top1": 100.0 * float(np.mean(per_class)),
            "count": acc["count"],
        },
        "tie_convention": "pessimistic: a wrong class scoring equal to the true one is ranked ahead of it",
        "timing": timing_info(ne, time.perf_counter() - t0, text_seconds, len(classes) * len(templates), "prompts"),
        "created": utc_now(),
    }
    return RecognitionRun(results, scores, [rec.videos[i] for i in samples], labels)
