"""``vidsearch enrich actors``: person tubes with zero-shot action labels for every indexed video.

For each indexed video of a space not yet scanned under the label set, the actor pipeline of
:mod:`vidsearch.enrich.actors` runs with the space's own model (detect on keyframes, link tubes,
crop, encode, score against the prompt-ensembled classes) and the tubes are stored with their
box at every keyframe and their best classes (``actor_scans``, ``actor_tubes``,
``actor_boxes``). A video with a scan row is done, so a re-run only scans videos indexed since;
``rescan`` scans everything again. ``vidsearch labels VIDEO`` shows the stored tubes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from vidsearch.enrich.actors import ActorConfig, ActorTrack, class_probs, top_labels, track_video
from vidsearch.errors import InputError, MediaError
from vidsearch.labels import DEFAULT_TEMPLATES, LABEL_SETS, label_embeddings, label_set_name, load_label_set
from vidsearch.media.pool import DecodePool
from vidsearch.models.detect import Detector, describe, load_detector
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec

__all__ = ["ActorsReport", "tube_rows", "enrich_actors", "video_actors"]

LOG = logging.getLogger(__name__)


@dataclass
class ActorsReport:
    """What an ``enrich actors`` run did."""

    label_set: str
    space: str
    detector: str
    scanned: int = 0  # videos scanned in this run
    tubes: int = 0  # tubes found in them
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it could not be scanned
    already: int = 0  # videos scanned before and kept
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def tube_rows(
    tracks: Sequence[ActorTrack], labels: Sequence[str], class_emb: np.ndarray, temperature: float | None, top: int
) -> list[Any]:
    """Stored form of scored tubes: per tube its top classes, per keyframe its box and best class."""
    from vidsearch.store.actors import BoxRow, TubeRow

    rows = []
    for tr in tracks:
        _, P = class_probs(tr.xb, class_emb, temperature)
        best = P.argmax(axis=1)
        boxes = [
            BoxRow(float(t), *(float(v) for v in b), None if np.isnan(d) else float(d), labels[c], float(P[k, c]))
            for k, (t, b, d, c) in enumerate(zip(tr.times, tr.boxes, tr.det_scores, best, strict=False))
        ]
        rows.append(TubeRow(tr.track, tr.start, tr.end, top_labels(P, labels, top), boxes))
    return rows


def enrich_actors(
    library: Any,
    labels: str | Path = "kinetics400",
    *,
    space_key: str | None = None,
    config: ActorConfig | None = None,
    templates: Sequence[str] | None = None,
    encoder: Any | None = None,
    detector: Detector | None = None,
    device: str = "auto",
    rescan: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ActorsReport:
    """Scan every not yet scanned indexed video of a space for labelled person tubes.

    Args:
        library: an open library.
        labels: a shipped label set name or a label file.
        space_key: the embedding space whose model encodes the tubes (None: the most recent one).
        config: the actor pipeline's settings (detector, keyframes, crops).
        templates: prompt templates (None: the recognition defaults).
        encoder: the space's encoder, if already loaded.
        detector: a loaded detector (None: ``config.detector``).
        device: where the models run.
        rescan: scan every video again.
        limit: scan at most this many videos (None: all).
        progress: called with (done, total) after each video.

    Raises:
        InputError: bad label set.
        LibraryError: empty library, unknown space, or another enrich run in progress.
        WeightsNotFoundError: the detector's weights are missing.
    """
    from vidsearch.store import actors as store

    t0 = time.perf_counter()
    config = config or ActorConfig()
    space = library.space(space_key)
    classes = load_label_set(labels)
    name = label_set_name(labels)
    templates = list(templates) if templates is not None else list(DEFAULT_TEMPLATES)
    with library.enrich_lock():
        with library.session() as s:
            if rescan:
                store.clear_scans(s, space.id, name)
            already = store.count_scans(s, space.id, name)
            todo = store.unscanned_videos(s, space.id, name, limit)
        detector = detector or load_detector(
            config.detector, config.detector_weights, threshold=config.detector_threshold, device=device
        )
        report = ActorsReport(
            label_set=name if name in LABEL_SETS else Path(name).name,
            space=space.key,
            detector=describe(detector),
            already=already,
        )
        if not todo:
            report.seconds = time.perf_counter() - t0
            return report
        # The whole torch encoder: tubes are labelled at its trained temperature.
        encoder = encoder or cast(Any, open_encoder(EncoderSpec.for_space(space, device=device)))
        class_emb = label_embeddings(encoder, classes, templates)
        with DecodePool(workers=config.workers) as pool:
            for n, (_, segment_id, path) in enumerate(todo, 1):
                try:
                    _, tracks = track_video(path, encoder, detector, config, pool)
                except MediaError as exc:
                    report.failed[path] = str(exc)
                    LOG.warning("%s", exc)
                    continue
                rows = tube_rows(tracks, classes, class_emb, encoder.temperature, config.top)
                keyframes = len({t for tr in tracks for t in tr.times})
                with library.session() as s:
                    store.save_scan(s, segment_id, space.id, name, describe(detector), keyframes, rows)
                report.scanned += 1
                report.tubes += len(rows)
                if progress is not None:
                    progress(n, len(todo))
    report.seconds = time.perf_counter() - t0
    return report


def video_actors(library: Any, path: Path | str, label_set: str | None = None) -> dict[str, Any]:
    """The stored tubes of one video, JSON-ready: per scan its tubes with classes and boxes.

    Raises:
        InputError: the video is not in the library.
    """
    from vidsearch.store import actors as store

    abs_path = str(Path(path).expanduser().absolute())
    name = label_set_name(label_set) if label_set is not None else None
    with library.session() as s:
        scans = store.video_scans(s, abs_path, name)
    if scans is None:
        raise InputError(f"{abs_path} is not in the library; index it first (vidsearch index FOLDER)")
    return {
        "path": abs_path,
        "scans": [
            {
                "label_set": sc.label_set if sc.label_set in LABEL_SETS else Path(sc.label_set).name,
                "space": sc.space_key,
                "detector": sc.detector,
                "keyframes": sc.keyframes,
                "tubes": [
                    {
                        "track": tb.track,
                        "start": tb.start,
                        "end": tb.end,
                        "labels": [{"label": lab, "score": round(p, 4)} for lab, p in tb.labels],
                        "boxes": [
                            {
                                "t": b.t,
                                "box": [round(v, 4) for v in (b.x1, b.y1, b.x2, b.y2)],
                                "detected": b.det_score is not None,
                                "label": b.label,
                                "score": round(b.score, 4),
                            }
                            for b in tb.boxes
                        ],
                    }
                    for tb in sc.tubes
                ],
            }
            for sc in scans
        ],
    }
