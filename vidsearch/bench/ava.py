"""``vidsearch bench ava``: spatio-temporal action detection, AVA protocol, zero-shot.

For every annotated video, the keyframes of the annotation file (AVA: every second) get person
boxes -- the ground-truth ones (``--boxes gt``, the standard setting that isolates the action
model; a person's boxes are linked into a tube by their person id) or detected and linked ones
(``--boxes detect``) -- and every box gets a score for every evaluated class: the tube clip around
the keyframe is cropped, encoded with the video tower and compared with the prompt-ensembled
class names (:mod:`vidsearch.enrich.actors`). The scores are softmax probabilities over the
evaluated classes at the model's temperature. Frame-level AP at IoU 0.5 per class and their mean
follow (:mod:`vidsearch.bench.ava_eval`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.bench.ava_eval import (
    BoxAnnotation,
    Detection,
    evaluated_classes,
    frame_ap,
    read_boxes,
    read_excluded,
    read_label_map,
)
from vidsearch.bench.datasets import resolve_videos
from vidsearch.enrich.actors import ActorConfig, class_probs, track_video
from vidsearch.errors import InputError, MediaError
from vidsearch.labels import DEFAULT_TEMPLATES, label_embeddings
from vidsearch.media.pool import DecodePool
from vidsearch.tubes import tubes_from_tracks

__all__ = ["AvaRun", "run_ava", "BOX_SOURCES"]

LOG = logging.getLogger(__name__)

BOX_SOURCES = ("gt", "detect")


@dataclass
class AvaRun:
    """The outcome of an AVA evaluation."""

    mAP: float  # mean frame AP over evaluated classes with positives (0..1)
    ap: dict[str, float]  # class name -> AP (nan: no positives)
    positives: dict[str, int]  # class name -> ground-truth boxes
    videos: int  # videos evaluated
    keyframes: int  # keyframes with ground truth evaluated
    detections: int  # scored boxes (each scored for every class)
    missing: list[str] = field(default_factory=list)  # annotated videos not found or not decodable
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``nan`` as None)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else round(float(v), 6)

        return {
            "frame_mAP": clean(self.mAP),
            "ap": {k: clean(v) for k, v in self.ap.items()},
            "positives": self.positives,
            "classes_with_positives": sum(1 for v in self.positives.values() if v > 0),
            "videos": self.videos,
            "keyframes": self.keyframes,
            "detections": self.detections,
            "missing": self.missing,
            "seconds": round(self.seconds, 2),
        }


def _gt_tracks(rows: Sequence[BoxAnnotation]) -> dict[object, list[tuple[float, np.ndarray]]]:
    """Person id -> its boxes over keyframes (one box per keyframe; rows repeat per action)."""
    tracks: dict[object, dict[float, np.ndarray]] = defaultdict(dict)
    for _n, r in enumerate(rows):
        key: object = r.person if r.person else ("box", r.t, r.box)  # no person ids: every box its own tube
        tracks[key][r.t] = np.asarray(r.box, np.float32)
    return {k: sorted(v.items()) for k, v in tracks.items()}


def run_ava(
    annotations: Path | str,
    videos: Path | str,
    labels: Path | str,
    encoder: Any,
    *,
    boxes: str = "gt",
    detector: Any | None = None,
    config: ActorConfig | None = None,
    templates: Sequence[str] | None = None,
    excluded: Path | str | None = None,
    time_offset: float = 0.0,
    allow_missing: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AvaRun:
    """Evaluate zero-shot action detection on AVA-format annotations (module docstring).

    Args:
        annotations: the ground-truth CSV.
        videos: folder of the videos (``<video_id>.<ext>``, searched recursively).
        labels: the label map (``.pbtxt``).
        encoder: the video/text model.
        boxes: ``gt`` or ``detect``.
        detector: the person detector (``detect`` only).
        config: the actor pipeline's settings.
        templates: prompt templates (None: the recognition defaults).
        excluded: AVA's excluded-timestamps CSV.
        time_offset: seconds subtracted from annotation timestamps to get video time (a video
            trimmed to start at AVA's 900 s needs 900).
        allow_missing: evaluate on the videos that exist and decode instead of stopping.
        progress: called with (done, total) after each video.

    Raises:
        InputError: bad files or options, or missing videos without ``allow_missing``.
    """
    if boxes not in BOX_SOURCES:
        raise InputError(f"--boxes must be one of {', '.join(BOX_SOURCES)} (got {boxes!r})")
    if boxes == "detect" and detector is None:
        raise ValueError("--boxes detect needs a detector")
    t0 = time.perf_counter()
    config = config or ActorConfig()
    classes = evaluated_classes(read_label_map(labels))
    ids, names = list(classes), list(classes.values())
    skip = read_excluded(excluded)
    gt = [r for r in read_boxes(annotations) if (r.video, r.t) not in skip]
    by_video: dict[str, list[BoxAnnotation]] = defaultdict(list)
    for r in gt:
        by_video[r.video].append(r)
    vids = sorted(by_video)
    paths = resolve_videos(vids, videos)
    missing = [v for v, p in zip(vids, paths, strict=False) if p is None]
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} annotated videos are not in {videos} (e.g. {missing[0]}); pass --allow-missing to evaluate the others"
        )
    class_emb = label_embeddings(encoder, names, list(templates) if templates is not None else list(DEFAULT_TEMPLATES))
    dets: list[Detection] = []
    done_videos = 0
    evaluated: list[BoxAnnotation] = []
    with DecodePool(workers=config.workers) as pool:
        for n, (vid, path) in enumerate(zip(vids, paths, strict=False), 1):
            if path is None:
                continue
            rows = by_video[vid]
            times = sorted({r.t - time_offset for r in rows})
            try:
                if boxes == "gt":
                    tubes = tubes_from_tracks(
                        {k: [(t - time_offset, b) for t, b in v] for k, v in _gt_tracks(rows).items()}
                    )
                    _, tracks = track_video(path, encoder, None, config, pool, tubes=tubes, normalized=True)
                else:
                    _, tracks = track_video(path, encoder, detector, config, pool, times=times)
            except MediaError as exc:
                if not allow_missing:
                    raise
                LOG.warning("%s", exc)
                missing.append(vid)
                continue
            done_videos += 1
            evaluated.extend(rows)
            for tr in tracks:
                _, P = class_probs(tr.xb, class_emb, encoder.temperature)
                for k, (t, box) in enumerate(zip(tr.times, tr.boxes, strict=False)):
                    b = tuple(float(v) for v in box)
                    dets.extend(Detection(vid, t + time_offset, b, c, float(P[k, j])) for j, c in enumerate(ids))
            if progress is not None:
                progress(n, len(vids))
    ap, pos, mAP = frame_ap(dets, evaluated, ids)
    keyframes = len({(r.video, r.t) for r in evaluated})
    return AvaRun(
        mAP=mAP,
        ap={classes[c]: ap[c] for c in ids},
        positives={classes[c]: pos[c] for c in ids},
        videos=done_videos,
        keyframes=keyframes,
        detections=len(dets) // max(1, len(ids)),
        missing=missing,
        seconds=time.perf_counter() - t0,
    )
