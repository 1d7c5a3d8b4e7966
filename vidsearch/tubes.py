"""Actor tubes: boxes detected on keyframes linked over time into tracks (IoU tracking with gaps).

A *tube* is one actor followed over keyframes: a box ``(x1, y1, x2, y2)`` (pixels of the
detection frame) at each keyframe from its first to its last, with the detector's score where it
was detected and ``nan`` where a gap was bridged.

Linking (:func:`link_tubes`) goes through the keyframes in time order. Each live tube predicts
its box at the next keyframe by constant velocity from its last two boxes (a tube seen once
stays put), and detections are assigned to tubes greedily by the IoU of prediction and detection,
highest first, each at most once, above ``iou``; tubes and detections left over are then paired
by the distance of the predicted and the detected centre, nearest first, when it is at most
``max_shift`` box diagonals and the two boxes are of similar size (area ratio within 2). The
second pass catches actors that move more than their own size between keyframes (at 1 s apart a
running person does), where boxes no longer overlap. The prediction is what keeps two actors whose
paths cross on their own tracks: at the crossing their boxes overlap each other, but each still
overlaps its own prediction more. A tube that finds no detection is kept alive for ``max_gap``
keyframes (a missed detection, an occlusion); when it is matched again the missing keyframes get
boxes interpolated linearly between the two sides. An unmatched detection starts a new tube.
Tubes shorter than ``min_length`` keyframes are dropped at the end (detector noise).

Box arithmetic (:func:`box_iou`, :func:`nms`) is plain numpy on ``[N, 4]`` arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vidsearch.errors import InputError

__all__ = ["Tube", "LinkConfig", "box_iou", "nms", "link_tubes", "tubes_from_tracks"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``[N, 4]`` with every box in ``b`` ``[M, 4]`` (xyxy): ``[N, M]``.

    Empty boxes (zero area) have IoU 0 with everything, themselves included.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    Ties in score keep the lower index first (a stable order).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = list(np.argsort(-np.asarray(scores, np.float64), kind="stable"))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if order:
            ious = box_iou(boxes[i : i + 1], boxes[order])[0]
            order = [j for j, v in zip(order, ious, strict=False) if v <= iou]
    return np.asarray(keep, np.int64)


@dataclass
class Tube:
    """One actor over consecutive keyframes.

    Attributes:
        track: the tube's number in its video (0, 1, ... in order of first appearance).
        times: keyframe times in seconds, consecutive keyframes of the video.
        boxes: float ``[K, 4]`` xyxy, one box per keyframe.
        scores: float ``[K]``, the detection score, ``nan`` where the box was interpolated.
    """

    track: int
    times: list[float] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    @property
    def start(self) -> float:
        """Time of the first keyframe (s)."""
        return self.times[0]

    @property
    def end(self) -> float:
        """Time of the last keyframe (s)."""
        return self.times[-1]

    @property
    def detected(self) -> np.ndarray:
        """Boolean ``[K]``: where the box came from the detector (not interpolated)."""
        return ~np.isnan(self.scores)

    def box_at(self, t: float) -> np.ndarray | None:
        """The box at keyframe time ``t`` (None: the tube is not there)."""
        for i, ti in enumerate(self.times):
            if abs(ti - t) < 1e-6:
                return self.boxes[i]
        return None

    def boxes_at(self, times: Sequence[float]) -> np.ndarray:
        """Boxes ``[len(times), 4]`` at any times: linear between keyframes, and extrapolated at
        the tube's velocity at the first and last segment beyond its ends (held still when the
        tube has one keyframe)."""
        t = np.asarray(self.times, np.float64)
        b = np.asarray(self.boxes, np.float64)
        q = np.asarray(times, np.float64)
        out = np.stack([np.interp(q, t, b[:, c]) for c in range(4)], axis=1)
        if len(t) >= 2:
            lo, hi = q < t[0], q > t[-1]
            v0 = (b[1] - b[0]) / (t[1] - t[0])
            v1 = (b[-1] - b[-2]) / (t[-1] - t[-2])
            out[lo] = b[0] + (q[lo] - t[0])[:, None] * v0
            out[hi] = b[-1] + (q[hi] - t[-1])[:, None] * v1
        return out

    def boxes_between(self, t0: float, t1: float) -> np.ndarray:
        """Boxes ``[k, 4]`` at the tube's keyframes within ``[t0, t1]`` (ends included)."""
        sel = [i for i, t in enumerate(self.times) if t0 - 1e-6 <= t <= t1 + 1e-6]
        return self.boxes[sel]


@dataclass(frozen=True)
class LinkConfig:
    """How detections become tubes (see the module docstring)."""

    iou: float = 0.3  # least IoU of a detection with a tube's predicted box to continue it
    max_gap: int = 2  # keyframes a tube may miss and still continue
    min_length: int = 2  # tubes with fewer detected keyframes are dropped
    max_shift: float = 2.0  # second pass: largest centre distance, in box diagonals (0: off)

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou <= 1.0:
            raise InputError(f"must be in [0, 1] (got {self.iou})", argument="link_iou")
        if self.max_gap < 0:
            raise InputError(f"must be >= 0 keyframes (got {self.max_gap})", argument="max_gap")
        if self.max_shift < 0:
            raise InputError(f"must be >= 0 box diagonals (got {self.max_shift})", argument="max_shift")
        if self.min_length < 1:
            raise InputError(f"must be at least 1 keyframe (got {self.min_length})", argument="min_tube")


@dataclass
class _Live:
    tube: Tube
    last: int  # keyframe index of the last detection
    boxes: list[np.ndarray]
    scores: list[float]
    steps: list[int]  # keyframe indices of boxes (gaps filled when the tube continues)

    def predict(self, k: int) -> np.ndarray:
        """Constant-velocity prediction of the box at keyframe ``k``."""
        if len(self.steps) < 2:
            return self.boxes[-1]
        dk = self.steps[-1] - self.steps[-2]
        v = (self.boxes[-1] - self.boxes[-2]) / max(dk, 1)
        return self.boxes[-1] + v * (k - self.steps[-1])

    def add(self, k: int, box: np.ndarray, score: float) -> None:
        """Continue the tube at keyframe ``k``, bridging missed keyframes by linear interpolation."""
        box = np.asarray(box, np.float64)
        a, gap = self.boxes[-1], k - self.steps[-1]
        for j in range(1, gap):
            w = j / gap
            self.boxes.append((1 - w) * a + w * box)
            self.scores.append(math.nan)
            self.steps.append(self.steps[-1] + 1)
        self.boxes.append(box)
        self.scores.append(float(score))
        self.steps.append(k)
        self.last = k


def _shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Centre distance of boxes ``a`` ``[N, 4]`` and ``b`` ``[M, 4]`` in mean box diagonals; ``inf``
    where their areas differ by more than a factor of 2."""
    ca = (a[:, :2] + a[:, 2:]) / 2.0
    cb = (b[:, :2] + b[:, 2:]) / 2.0
    da = np.hypot(a[:, 2] - a[:, 0], a[:, 3] - a[:, 1])
    db = np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    d = np.linalg.norm(ca[:, None] - cb[None], axis=2) / np.maximum((da[:, None] + db[None]) / 2.0, 1e-9)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    ratio = np.maximum(area_a[:, None], area_b[None]) / np.maximum(np.minimum(area_a[:, None], area_b[None]), 1e-9)
    return np.where(ratio <= 2.0, d, np.inf)


def link_tubes(
    times: Sequence[float],
    detections: Sequence[tuple[np.ndarray, np.ndarray]],
    config: LinkConfig | None = None,
) -> list[Tube]:
    """Link per-keyframe detections into tubes (module docstring).

    Args:
        times: keyframe times (s), increasing.
        detections: per keyframe ``(boxes [N, 4] xyxy, scores [N])``.
        config: linking thresholds.

    Returns:
        Tubes ordered by their first keyframe (then by best score), numbered 0, 1, ...
    """
    config = config or LinkConfig()
    if len(times) != len(detections):
        raise ValueError(f"{len(times)} keyframe times but {len(detections)} detection lists")
    if any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("keyframe times must increase")
    live: list[_Live] = []
    done: list[_Live] = []
    for k, (boxes, scores) in enumerate(detections):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        # tubes past their gap allowance end before this keyframe
        still: list[_Live] = []
        for lv in live:
            (still if k - lv.last <= config.max_gap + 1 else done).append(lv)
        live = still
        taken_det: set[int] = set()
        if live and len(boxes):
            preds = np.stack([lv.predict(k) for lv in live])
            taken_tube: set[int] = set()
            iou = box_iou(preds, boxes)
            pairs = [
                (-iou[i, j], i, j)
                for i in range(len(live))
                for j in range(len(boxes))
                if iou[i, j] >= config.iou and iou[i, j] > 0
            ]
            if config.max_shift > 0:
                dist = _shift(preds, boxes)
                pairs += [
                    (1.0 + dist[i, j], i, j)
                    for i in range(len(live))
                    for j in range(len(boxes))
                    if dist[i, j] <= config.max_shift
                ]
            for _, i, j in sorted(pairs):  # IoU pairs first (negative keys), then by centre distance
                if i in taken_tube or j in taken_det:
                    continue
                taken_tube.add(i)
                taken_det.add(j)
                live[i].add(k, boxes[j], scores[j])
        for j in np.argsort(-scores, kind="stable"):
            if int(j) not in taken_det:
                live.append(_Live(Tube(-1), k, [boxes[j]], [float(scores[j])], [k]))
    done.extend(live)
    kept = [lv for lv in done if int(np.sum(~np.isnan(lv.scores))) >= config.min_length]
    kept.sort(key=lambda lv: (lv.steps[0], -np.nanmax(lv.scores)))
    tubes = []
    for n, lv in enumerate(kept):
        tubes.append(
            Tube(
                track=n,
                times=[float(times[s]) for s in lv.steps],
                boxes=np.stack(lv.boxes).astype(np.float32),
                scores=np.asarray(lv.scores, np.float32),
            )
        )
    return tubes


def tubes_from_tracks(tracks: dict[object, list[tuple[float, np.ndarray]]]) -> list[Tube]:
    """Tubes from known tracks (ground-truth actor ids): ``id -> [(time, box)]``, score 1 each.

    The boxes of a track are put in time order; tubes are numbered in order of first appearance.
    """
    items = sorted(
        ((sorted(v, key=lambda p: p[0]), key) for key, v in tracks.items() if v), key=lambda p: (p[0][0][0], str(p[1]))
    )
    tubes = []
    for n, (pts, _) in enumerate(items):
        tubes.append(
            Tube(
                track=n,
                times=[float(t) for t, _ in pts],
                boxes=np.stack([np.asarray(b, np.float32) for _, b in pts]),
                scores=np.ones(len(pts), np.float32),
            )
        )
    return tubes
