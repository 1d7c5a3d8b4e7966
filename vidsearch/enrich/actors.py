"""Spatio-temporal localization: who does what, where in the frame and when.

The pipeline for one video (each step one function here; docs/spatiotemporal.md has the why):

1. **Keyframes** every ``step`` seconds (1 s, as AVA annotates), decoded through the
   crash-contained decode pool (:class:`~vidsearch.media.pool.DecodePool`) as square frames of
   ``detect_size`` pixels, brought back to the video's aspect ratio for the detector.
2. **Detect** people on each keyframe (:mod:`vidsearch.models.detect`: a torchvision model or
   OpenCV's HOG), boxes mapped to native pixels.
3. **Link** the boxes into tubes (:func:`vidsearch.tubes.link_tubes`: IoU tracking with
   constant-velocity prediction and gap bridging) -- or take known tubes (ground-truth boxes).
4. **Crop** around each tube at each keyframe: the clip of ``clip`` seconds centred on the
   keyframe is decoded with the model's frame count (middle sampling over the clip, again through
   the pool); the crop is the square around the union of the tube's boxes at the clip's frames
   (interpolated between keyframes, extrapolated past the tube's ends), with a context margin (:mod:`vidsearch.media.crop`). The crop is fixed over the clip, so the actor's
   motion stays visible in it (a crop that followed the box would cancel the motion out).
5. **Encode** the tube clips with the video tower, in batches.
6. **Score** every tube clip against the text or the label set (zero-shot, the label set's
   classes prompt-ensembled as in recognition, :func:`vidsearch.labels.label_embeddings`):
   cosine similarities, and softmax probabilities at the model's temperature.

The result per tube is ``(start, end, box track, label/score)``: :class:`ActorTrack`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import InputError, MediaError
from vidsearch.labels import DEFAULT_TEMPERATURE
from vidsearch.media.crop import crop_clip, square_around
from vidsearch.media.info import VideoInfo
from vidsearch.media.jobs import DecodedVideo, DecodeFailure, DecodeJob
from vidsearch.media.pool import DecodePool
from vidsearch.metrics import softmax
from vidsearch.models.detect import DEFAULT_DETECTOR, Detections, Detector
from vidsearch.tubes import LinkConfig, Tube, link_tubes

__all__ = [
    "ActorConfig",
    "ActorTrack",
    "ActorHit",
    "keyframe_times",
    "clip_times",
    "detect_people",
    "encode_tubes",
    "track_video",
    "class_probs",
    "top_labels",
    "localize_actors",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorConfig:
    """Settings of the actor pipeline (module docstring)."""

    detector: str = DEFAULT_DETECTOR  # torchvision:NAME or hog
    detector_weights: str | None = None  # state dict of a torchvision detector (None: torchvision's default)
    detector_threshold: float | None = None  # least detection score (None: the detector's default)
    step: float = 1.0  # seconds between keyframes (AVA: 1 s)
    clip: float = 2.0  # seconds of video around a keyframe in a tube clip
    margin: float = 0.25  # context around a tube's boxes, share of their union's longer side
    detect_size: int = 512  # decoded keyframe side before the aspect ratio is restored
    link: LinkConfig = field(default_factory=LinkConfig)
    top: int = 5  # classes kept per tube
    chunk: int = 32  # keyframes per decoding job (bounds memory: frames of one job at a time)
    workers: int = 1  # decoding processes
    batch_size: int = 32  # tube clips per encoder call

    def __post_init__(self) -> None:
        for name in ("step", "clip"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"--{name} must be a positive number of seconds (got {value})")
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise InputError(f"must be >= 0 (got {self.margin})", argument="margin")
        if self.detect_size < 32:
            raise InputError(f"must be at least 32 pixels (got {self.detect_size})", argument="detect_size")
        if self.top < 1:
            raise InputError(f"must be at least 1 (got {self.top})", argument="top")


@dataclass
class ActorTrack:
    """One tube with its clip embeddings.

    Attributes:
        track: the tube's number in the video.
        times: keyframe times (s).
        boxes: float32 ``[K, 4]`` normalized ``x1, y1, x2, y2`` (AVA's convention).
        det_scores: float32 ``[K]`` detection scores, ``nan`` where a gap was bridged.
        xb: float32 ``[K, D]`` L2-normalized embedding of the tube clip at each keyframe.
    """

    track: int
    times: list[float]
    boxes: np.ndarray
    det_scores: np.ndarray
    xb: np.ndarray

    @property
    def start(self) -> float:
        """First keyframe (s)."""
        return self.times[0]

    @property
    def end(self) -> float:
        """Last keyframe (s)."""
        return self.times[-1]


@dataclass(frozen=True)
class ActorHit:
    """A tube scored against a text: ``(start, end, box track, score)``."""

    track: int
    start: float
    end: float
    score: float  # best keyframe cosine similarity
    best_time: float  # where it is best
    boxes: list[tuple[float, float, float, float, float, float]]  # (t, x1, y1, x2, y2, cosine) per keyframe

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "track": self.track,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
            "best_time": round(self.best_time, 3),
            "boxes": [
                {"t": round(t, 3), "box": [round(v, 4) for v in (a, b, c, d)], "score": round(s, 4)}
                for t, a, b, c, d, s in self.boxes
            ],
        }


def keyframe_times(duration: float, step: float = 1.0) -> list[float]:
    """Keyframe times of a video: every ``step`` seconds from ``step`` on, inside the video.

    A video shorter than one step gets one keyframe in its middle.
    """
    n = int(math.floor((duration - 1e-6) / step)) if duration > 0 else 0
    times = [round(k * step, 6) for k in range(1, n + 1)]
    return times or [max(0.0, duration / 2.0)]


def clip_times(t: float, clip: float, n: int) -> tuple[float, ...]:
    """Frame times of the clip of ``clip`` seconds centred on ``t``: middle sampling of ``n`` frames."""
    return tuple(t - clip / 2.0 + (2 * j + 1) * clip / (2.0 * n) for j in range(n))


def _decode(pool: DecodePool, jobs: list[DecodeJob]) -> Iterator[DecodedVideo]:
    for res in pool.run(jobs):
        if isinstance(res, DecodeFailure):
            raise MediaError(f"{res.path}: {res.reason}")
        yield res


def _probe(pool: DecodePool, path: str, size: int) -> VideoInfo:
    """The video's info, probed in a decoding worker (a crash there is contained too)."""
    return list(_decode(pool, [DecodeJob(0, path, 1, size, times=((0.0,),))]))[0].info


def _aspect_frames(frames: np.ndarray, info: VideoInfo) -> np.ndarray:
    """Square decoded frames ``[N, S, S, 3]`` back to the video's aspect ratio (longer side S)."""
    S = frames.shape[1]
    m = max(info.width, info.height, 1)
    w, h = max(1, round(S * info.width / m)), max(1, round(S * info.height / m))
    if (h, w) == frames.shape[1:3]:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # NHWC -> NCHW
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def detect_people(
    path: str,
    detector: Detector,
    config: ActorConfig,
    pool: DecodePool,
    info: VideoInfo | None = None,
    times: Sequence[float] | None = None,
) -> tuple[VideoInfo, list[float], list[Detections]]:
    """People on every keyframe of a video, boxes in native pixels.

    Args:
        path: the video.
        detector: the person detector.
        config: keyframe step and decoding size.
        pool: the decoding pool.
        info: the video's info if known (else probed in a worker).
        times: keyframe times (None: every ``config.step`` seconds).

    Returns:
        ``(info, times, detections)`` with one ``(boxes, scores)`` per keyframe.
    """
    info = info or _probe(pool, path, config.detect_size)
    times = list(times) if times is not None else keyframe_times(info.duration, config.step)
    found: dict[int, list[Detections]] = {}
    jobs = [
        DecodeJob(i, path, 1, config.detect_size, times=tuple((t,) for t in chunk))
        for i, chunk in enumerate(_chunks(times, config.chunk))
    ]
    m = max(info.width, info.height, 1)
    for res in _decode(pool, jobs):
        frames = _aspect_frames(res.frames[res.clip_index[:, 0]], info)
        to_native = m / float(max(frames.shape[1], frames.shape[2]))
        found[res.job_id] = [(boxes * to_native, scores) for boxes, scores in detector.detect(frames)]
    detections = [d for i in range(len(jobs)) for d in found[i]]
    LOG.info("%s: %d people boxes on %d keyframes", path, sum(len(s) for _, s in detections), len(times))
    return info, times, detections


def encode_tubes(
    path: str, info: VideoInfo, tubes: Sequence[Tube], encoder: Any, config: ActorConfig, pool: DecodePool
) -> list[np.ndarray]:
    """Embed every tube's clip at each of its keyframes (module docstring, steps 4 and 5).

    Args:
        path: the video.
        info: its info (native size for the crops).
        tubes: tubes with boxes in native pixels.
        encoder: the video tower (``encode_video``, ``num_frames``, ``resolution``).
        config: clip length, margin, decoding size, batch size.
        pool: the decoding pool.

    Returns:
        One float32 ``[K, D]`` per tube, row ``k`` the clip at ``tube.times[k]``.
    """
    times = sorted({t for tube in tubes for t in tube.times})
    if not times:
        return [np.zeros((0, encoder.embed_dim), np.float32) for _ in tubes]
    where: dict[float, list[tuple[int, int]]] = {t: [] for t in times}  # time -> (tube, row)
    for i, tube in enumerate(tubes):
        for k, t in enumerate(tube.times):
            where[t].append((i, k))
    out = [np.zeros((len(tube.times), encoder.embed_dim), np.float32) for tube in tubes]
    n = encoder.num_frames
    chunks = _chunks(times, config.chunk)
    jobs = [
        DecodeJob(c, path, n, config.detect_size, times=tuple(clip_times(t, config.clip, n) for t in chunk))
        for c, chunk in enumerate(chunks)
    ]
    size = (info.width, info.height)
    batch: list[np.ndarray] = []
    slots: list[tuple[int, int]] = []

    def flush() -> None:
        if batch:
            xb = encoder.encode_video(np.stack(batch))
            for (i, k), v in zip(slots, xb, strict=False):
                out[i][k] = v
            batch.clear()
            slots.clear()

    for res in _decode(pool, jobs):
        shown = [clip_times(t, config.clip, n) for t in chunks[res.job_id]]
        for r, t in enumerate(chunks[res.job_id]):
            frames = res.frames[res.clip_index[r]]  # [n, S, S, 3]
            for i, k in where[t]:
                # the actor's box at every frame of the clip: interpolated between keyframes and
                # extrapolated past the tube's ends, so the first and last keyframes frame the motion too
                square = square_around(tubes[i].boxes_at(shown[r]), *size, margin=config.margin)
                batch.append(crop_clip(frames, square, size, encoder.resolution))
                slots.append((i, k))
                if len(batch) >= config.batch_size:
                    flush()
    flush()
    return out


def track_video(
    path: str | Path,
    encoder: Any,
    detector: Detector | None,
    config: ActorConfig,
    pool: DecodePool,
    *,
    tubes: Sequence[Tube] | None = None,
    normalized: bool = False,
    info: VideoInfo | None = None,
    times: Sequence[float] | None = None,
) -> tuple[VideoInfo, list[ActorTrack]]:
    """Steps 1-5 for one video: tubes (detected and linked, or given) with their clip embeddings.

    Args:
        path: the video.
        encoder: the video tower.
        detector: the person detector (unused when ``tubes`` are given).
        config: pipeline settings.
        pool: the decoding pool.
        tubes: known tubes instead of detection (e.g. ground-truth boxes).
        normalized: the given tubes' boxes are normalized to ``[0, 1]`` (else native pixels).
        info: the video's info if known.
        times: keyframe times for detection (None: every ``config.step`` seconds).

    Raises:
        MediaError: the video cannot be decoded.
        ValueError: neither a detector nor tubes.
    """
    path = str(path)
    if tubes is None:
        if detector is None:
            raise ValueError("track_video needs a detector or tubes")
        info, times, dets = detect_people(path, detector, config, pool, info=info, times=times)
        tubes = link_tubes(times, dets, config.link)
    else:
        info = info or _probe(pool, path, config.detect_size)
        if normalized:
            scale = np.asarray([info.width, info.height, info.width, info.height], np.float32)
            tubes = [Tube(t.track, list(t.times), t.boxes * scale, t.scores) for t in tubes]
    xbs = encode_tubes(path, info, tubes, encoder, config, pool)
    norm = np.asarray([info.width, info.height, info.width, info.height], np.float32)
    tracks = [
        ActorTrack(t.track, list(t.times), (t.boxes / norm).astype(np.float32), t.scores.astype(np.float32), xb)
        for t, xb in zip(tubes, xbs, strict=False)
    ]
    return info, tracks


def class_probs(xb: np.ndarray, class_emb: np.ndarray, temperature: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and softmax probabilities ``[K, C]`` of clip embeddings ``[K, D]``.

    The temperature is the model's own (None: 0.01, CLIP's logit scale 100), as in recognition.
    """
    S = np.asarray(xb, np.float32) @ np.asarray(class_emb, np.float32).T
    return S, softmax(S / (temperature or DEFAULT_TEMPERATURE), axis=1)


def top_labels(probs: np.ndarray, labels: Sequence[str], top: int) -> list[tuple[str, float]]:
    """The ``top`` classes of a tube by mean probability over its keyframes, best first (ties: class order)."""
    mean = np.asarray(probs, np.float64).mean(axis=0)
    order = np.argsort(-mean, kind="stable")[: min(top, len(labels))]
    return [(labels[c], float(mean[c])) for c in order]


def localize_actors(
    path: str | Path,
    text: str,
    encoder: Any,
    detector: Detector,
    config: ActorConfig | None = None,
    *,
    top: int = 3,
    pool: DecodePool | None = None,
) -> list[ActorHit]:
    """The tubes of a video that best match ``text``: ``(start, end, box track, score)``, best first.

    A tube scores its best keyframe's cosine similarity to the text; every keyframe's box and
    similarity is returned, so the caller sees where and when it matches.

    Raises:
        InputError: empty text.
        MediaError: the video cannot be decoded.
        WeightsNotFoundError: the detector's weights are missing.
    """
    if not text or not text.strip():
        raise InputError("the text is empty", hint='say what to find, e.g. "a person jumps"', remedy="localize_usage")
    config = config or ActorConfig()
    xq = encoder.encode_text([text.strip()])[0]
    with contextlib.nullcontext(pool) if pool is not None else DecodePool(workers=config.workers) as p:
        _, tracks = track_video(path, encoder, detector, config, p)
    hits = []
    for tr in tracks:
        sims = tr.xb @ xq
        best = int(np.argmax(sims))
        rows = [(t, *map(float, b), float(s)) for t, b, s in zip(tr.times, tr.boxes, sims, strict=False)]
        hits.append(ActorHit(tr.track, tr.start, tr.end, float(sims[best]), tr.times[best], rows))
    hits.sort(key=lambda h: (-h.score, h.track))
    return hits[:top]
