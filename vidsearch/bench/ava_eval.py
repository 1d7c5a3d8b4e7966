"""The AVA protocol's files and metric: box CSVs, the label map, frame-level AP at IoU 0.5.

**Files** (AVA v2.2, https://research.google.com/ava/download.html):

- annotations ``ava_val_v2.2.csv``: ``video_id, timestamp, x1, y1, x2, y2, action_id[, person_id]``,
  one row per (keyframe, person, action); boxes normalized to ``[0, 1]``; keyframes at whole
  seconds. Detections use the same columns with a score in place of ``person_id``.
- label map ``ava_action_list_v2.2.pbtxt`` (80 classes) or
  ``ava_action_list_v2.2_for_activitynet_2019.pbtxt`` (the 60 evaluated ones):
  ``label { name: "..." label_id: N ... }`` blocks.
- optionally ``ava_val_excluded_timestamps_v2.2.csv``: ``video_id, timestamp`` keyframes left out.

**Evaluated classes**: the official evaluation scores 60 of the 80 classes (the other 20 have too
few validation examples). A label map of all 80 AVA classes is cut to :data:`AVA60`; any other
label map (e.g. synthetic data) is evaluated on every class it lists.

**Frame-level AP** (:func:`frame_ap`), as the official evaluation (PASCAL VOC matching at IoU 0.5):
per class, all detections of that class over all keyframes are ranked by score; each detection
is matched to the ground-truth box of its class in its keyframe with which its IoU is highest;
it is a true positive when that IoU is at least 0.5 and the box is not matched yet, otherwise a
false positive. AP is the area under the precision-recall curve with precision made monotone
(each precision replaced by the best precision at equal or higher recall). Two choices the
official code leaves to chance are fixed here: detections with **equal scores** are taken as one
group (precision and recall are measured only after the whole group, so the AP does not depend
on their order; with distinct scores this is the official value), and a class with **no
ground-truth box** has AP ``nan`` and is left out of the mean, as the official code does.
"""

from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsearch.errors import InputError
from vidsearch.tubes import box_iou

__all__ = [
    "AVA60",
    "BoxAnnotation",
    "Detection",
    "read_label_map",
    "evaluated_classes",
    "read_boxes",
    "read_excluded",
    "average_precision",
    "class_ap",
    "frame_ap",
]

# The 60 classes AVA's official evaluation scores (label ids of ava_action_list_v2.2.pbtxt).
AVA60: tuple[int, ...] = (
    1,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    17,
    20,
    22,
    24,
    26,
    27,
    28,
    29,
    30,
    34,
    36,
    37,
    38,
    41,
    43,
    45,
    46,
    47,
    48,
    49,
    51,
    52,
    54,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    66,
    67,
    68,
    69,
    70,
    72,
    73,
    74,
    76,
    77,
    78,
    79,
    80,
)
IOU = 0.5


@dataclass(frozen=True)
class BoxAnnotation:
    """One ground-truth row: a person's box at a keyframe with one of its actions."""

    video: str
    t: float
    box: tuple[float, float, float, float]  # normalized x1, y1, x2, y2
    action: int
    person: str  # the person id ("" when the file has none)


@dataclass(frozen=True)
class Detection:
    """One scored detection: a box at a keyframe, a class and a score."""

    video: str
    t: float
    box: tuple[float, float, float, float]
    action: int
    score: float


def read_label_map(path: str | Path) -> dict[int, str]:
    """``label_id -> name`` from an AVA ``.pbtxt`` label map (or a ``id,name`` / ``id name`` text file).

    Raises:
        InputError: unreadable file or no labels in it.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read label map {p}: {getattr(exc, 'strerror', None) or exc}") from None
    labels: dict[int, str] = {}
    blocks = re.findall(r"(?:label|item)\s*\{(.*?)\}", text, flags=re.S)
    for block in blocks:
        name = re.search(r'name:\s*"([^"]*)"', block)
        lid = re.search(r"(?:label_)?id:\s*(\d+)", block)
        if name and lid:
            labels[int(lid.group(1))] = name.group(1)
    if not blocks:
        for line in text.splitlines():
            m = re.match(r"\s*(\d+)\s*[,\s]\s*(.+?)\s*$", line)
            if m:
                labels[int(m.group(1))] = m.group(2)
    if not labels:
        raise InputError(f'label map {p} has no labels; expected AVA\'s pbtxt (label {{ name: "..." label_id: N }})')
    return dict(sorted(labels.items()))


def evaluated_classes(label_map: dict[int, str]) -> dict[int, str]:
    """The classes that are scored: :data:`AVA60` for the full 80-class AVA map, else all of them."""
    if len(label_map) == 80 and set(AVA60) <= set(label_map):
        return {k: label_map[k] for k in AVA60}
    return dict(label_map)


def _float(value: str, path: Path, line: int, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise InputError(f"{path}:{line}: {what} {value!r} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{path}:{line}: {what} {value!r} is not finite")
    return v


def read_boxes(path: str | Path) -> list[BoxAnnotation]:
    """Ground-truth rows of an AVA annotation CSV (7 or 8 columns, no header).

    Raises:
        InputError: unreadable file, a row with too few columns, or a value that is not a number.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"annotation file {p} does not exist")
    rows: list[BoxAnnotation] = []
    with open(p, newline="", encoding="utf-8-sig") as fh:
        for n, rec in enumerate(csv.reader(fh), 1):
            if not rec or not "".join(rec).strip():
                continue
            if len(rec) < 7:
                raise InputError(
                    f"{p}:{n}: expected video_id,timestamp,x1,y1,x2,y2,action_id[,person_id], got {len(rec)} columns"
                )
            box = tuple(_float(v, p, n, "box coordinate") for v in rec[2:6])
            rows.append(
                BoxAnnotation(
                    rec[0].strip(),
                    _float(rec[1], p, n, "timestamp"),
                    box,
                    int(_float(rec[6], p, n, "action id")),
                    rec[7].strip() if len(rec) > 7 else "",
                )
            )
    if not rows:
        raise InputError(f"annotation file {p} has no rows")
    return rows


def read_excluded(path: str | Path | None) -> set[tuple[str, float]]:
    """``(video_id, timestamp)`` keyframes to leave out (AVA's excluded-timestamps CSV); None: none."""
    if path is None:
        return set()
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"excluded-timestamps file {p} does not exist")
    with open(p, newline="", encoding="utf-8-sig") as fh:
        return {(r[0].strip(), _float(r[1], p, n, "timestamp")) for n, r in enumerate(csv.reader(fh), 1) if len(r) >= 2}


def average_precision(tp: np.ndarray, scores: np.ndarray, num_positives: int) -> float:
    """VOC area under the monotone precision-recall curve, with tied scores taken as one group.

    Args:
        tp: per detection, 1 when it is a true positive (matching already done).
        scores: per detection, its score.
        num_positives: ground-truth boxes of the class (0: ``nan``).
    """
    if num_positives <= 0:
        return math.nan
    tp = np.asarray(tp, np.float64)
    scores = np.asarray(scores, np.float64)
    if tp.size == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp, scores = tp[order], scores[order]
    ctp = np.cumsum(tp)
    # the last detection of each group of equal scores: the curve is measured only there
    ends = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    precision = ctp[ends] / (ends + 1.0)
    recall = ctp[ends] / float(num_positives)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at >= this recall
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


def class_ap(dets: Sequence[Detection], gts: Sequence[BoxAnnotation], iou: float = IOU) -> tuple[float, int]:
    """AP of one class's detections against that class's ground truth (module docstring).

    Returns:
        ``(ap, num_positives)``; ``ap`` is ``nan`` without positives.
    """
    by_frame: dict[tuple[str, float], list[tuple[float, float, float, float]]] = defaultdict(list)
    for g in gts:
        by_frame[(g.video, g.t)].append(g.box)
    num_pos = sum(len(v) for v in by_frame.values())
    if num_pos == 0:
        return math.nan, 0
    if not dets:
        return 0.0, num_pos
    scores = np.asarray([d.score for d in dets], np.float64)
    order = np.argsort(-scores, kind="stable")
    matched: dict[tuple[str, float], set[int]] = defaultdict(set)
    tp = np.zeros(len(dets))
    lo = 0
    while lo < len(order):
        hi = lo
        while hi + 1 < len(order) and scores[order[hi + 1]] == scores[order[lo]]:
            hi += 1
        # a tied group claims its boxes together: the TP count does not depend on the order inside it
        claims: dict[tuple[tuple[str, float], int], int] = {}
        for r in order[lo : hi + 1]:
            d = dets[r]
            key = (d.video, d.t)
            boxes = by_frame.get(key)
            if not boxes:
                continue
            ious = box_iou(np.asarray([d.box]), np.asarray(boxes))[0]
            j = int(np.argmax(ious))
            if ious[j] >= iou and j not in matched[key]:
                claims.setdefault((key, j), int(r))
        for (key, j), r in claims.items():
            matched[key].add(j)
            tp[r] = 1.0
        lo = hi + 1
    return average_precision(tp, scores, num_pos), num_pos


def frame_ap(
    detections: Iterable[Detection],
    ground_truth: Iterable[BoxAnnotation],
    classes: Sequence[int],
    iou: float = IOU,
) -> tuple[dict[int, float], dict[int, int], float]:
    """Frame-level AP per class and their mean (module docstring).

    Args:
        detections: scored detections (any classes; others are ignored).
        ground_truth: ground-truth rows.
        classes: the evaluated class ids.
        iou: least IoU of a true positive.

    Returns:
        ``(ap, positives, mAP)``: AP per class (``nan`` without positives), ground-truth boxes per
        class, and the mean over classes with positives (``nan`` when none has any).
    """
    wanted = set(classes)
    dets: dict[int, list[Detection]] = defaultdict(list)
    gts: dict[int, list[BoxAnnotation]] = defaultdict(list)
    for d in detections:
        if d.action in wanted:
            dets[d.action].append(d)
    for g in ground_truth:
        if g.action in wanted:
            gts[g.action].append(g)
    ap: dict[int, float] = {}
    pos: dict[int, int] = {}
    for c in classes:
        ap[c], pos[c] = class_ap(dets[c], gts[c], iou)
    valid = [v for v in ap.values() if not math.isnan(v)]
    return ap, pos, (float(np.mean(valid)) if valid else math.nan)
