"""Frame-level AP at IoU 0.5 (AVA protocol): hand-computed cases, ties, empty classes, and an
independent direct implementation on random cases; the AVA file readers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidsearch.bench.ava_eval import (
    AVA60,
    BoxAnnotation,
    Detection,
    average_precision,
    class_ap,
    evaluated_classes,
    frame_ap,
    read_boxes,
    read_excluded,
    read_label_map,
)
from vidsearch.errors import InputError

B1 = (0.1, 0.1, 0.4, 0.4)
B2 = (0.5, 0.5, 0.9, 0.9)
NEAR_B1 = (0.12, 0.1, 0.42, 0.4)  # IoU with B1 ~0.875
OFF_B1 = (0.25, 0.1, 0.55, 0.4)  # IoU with B1 ~0.33: below 0.5


def gt(video: str, t: float, b: tuple, action: int = 1) -> BoxAnnotation:
    return BoxAnnotation(video, t, b, action, "")


def det(video: str, t: float, b: tuple, score: float, action: int = 1) -> Detection:
    return Detection(video, t, b, action, score)


def test_ap_by_hand() -> None:
    # 3 positives; ranked TP, FP, TP: P = 1, 1/2, 2/3 at R = 1/3, 1/3, 2/3
    # monotone precision: 1 at R=1/3, 2/3 at R=2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7]), 3) == pytest.approx(5 / 9)
    # perfect ranking of all positives
    assert average_precision(np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1]), 2) == pytest.approx(1.0)
    # FP first: P = 0, 1/2 at R = 0, 1 -> AP = 1/2
    assert average_precision(np.array([0, 1]), np.array([0.9, 0.8]), 1) == pytest.approx(0.5)
    # no detections, or no positives
    assert average_precision(np.array([]), np.array([]), 2) == 0.0
    assert math.isnan(average_precision(np.array([1]), np.array([0.5]), 0))


def test_tied_scores_are_one_group_whatever_their_order() -> None:
    # a TP and a FP tied at 0.8: measured after both -> P = 1/2 at R = 1 whichever comes first
    a = average_precision(np.array([1, 0]), np.array([0.8, 0.8]), 1)
    b = average_precision(np.array([0, 1]), np.array([0.8, 0.8]), 1)
    assert a == b == pytest.approx(0.5)
    # ties after a sure hit: TP 0.9, then {TP, FP} at 0.5 -> P = 1 at R = 1/2, 2/3 at R = 1
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.5, 0.5]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_matching_by_hand() -> None:
    gts = [gt("v", 1, B1), gt("v", 1, B2), gt("v", 2, B1)]
    dets = [
        det("v", 1, NEAR_B1, 0.9),  # TP (B1 at t=1)
        det("v", 1, B1, 0.8),  # FP: B1 at t=1 is taken, even though the IoU is 1
        det("v", 2, OFF_B1, 0.7),  # FP: IoU below 0.5
        det("v", 1, B2, 0.6),  # TP
        det("w", 1, B1, 0.95),  # FP: another video has no ground truth
    ]
    ap, pos = class_ap(dets, gts)
    # ranks: FP(.95) TP(.9) FP(.8) FP(.7) TP(.6): P = 0, 1/2, 1/3, 1/4, 2/5 at R = 0, 1/3, 1/3, 1/3, 2/3
    # monotone: 1/2 at R=1/3, 2/5 at R=2/3 -> AP = 1/3 * 1/2 + 1/3 * 2/5
    assert pos == 3
    assert ap == pytest.approx(1 / 6 + 2 / 15)


def test_frame_ap_per_class_and_mean_skip_classes_without_positives() -> None:
    gts = [gt("v", 1, B1, action=1), gt("v", 1, B2, action=2)]
    dets = [det("v", 1, B1, 0.9, action=1), det("v", 1, B2, 0.9, action=3), det("v", 1, B1, 0.2, action=2)]
    ap, pos, mAP = frame_ap(dets, gts, classes=[1, 2, 3])
    assert ap[1] == pytest.approx(1.0)
    assert ap[2] == 0.0  # its only detection is on the wrong box
    assert math.isnan(ap[3]) and pos[3] == 0  # detections but no ground truth: left out
    assert mAP == pytest.approx(0.5)
    _, _, none = frame_ap(dets, [], classes=[1])
    assert math.isnan(none)


def direct_ap(dets: list[Detection], gts: list[BoxAnnotation], iou: float = 0.5) -> float:
    """An independent implementation: recompute precision and recall from scratch at every
    distinct score threshold (VOC matching in score order), then integrate the monotone curve."""
    npos = len(gts)
    if npos == 0:
        return math.nan
    thresholds = sorted({d.score for d in dets}, reverse=True)
    points = []
    for th in thresholds:
        kept = [d for d in dets if d.score >= th]
        used: set[int] = set()
        tp = 0
        # within one score, the TP count does not depend on the order; any order will do
        for d in sorted(kept, key=lambda d: -d.score):
            best, best_iou = None, -1.0
            for gi, g in enumerate(gts):
                if (g.video, g.t) != (d.video, d.t):
                    continue
                x1, y1 = max(d.box[0], g.box[0]), max(d.box[1], g.box[1])
                x2, y2 = min(d.box[2], g.box[2]), min(d.box[3], g.box[3])
                inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
                union = (
                    (d.box[2] - d.box[0]) * (d.box[3] - d.box[1])
                    + (g.box[2] - g.box[0]) * (g.box[3] - g.box[1])
                    - inter
                )
                v = inter / union if union > 0 else 0.0
                if v > best_iou:
                    best, best_iou = gi, v
            if best is not None and best_iou >= iou and best not in used:
                used.add(best)
                tp += 1
        points.append((tp / npos, tp / len(kept)))
    ap, prev_r = 0.0, 0.0
    for i, (r, _) in enumerate(points):
        p_interp = max(p for rr, p in points[i:])
        ap += (r - prev_r) * p_interp
        prev_r = r
    return ap


@pytest.mark.parametrize("seed", range(25))
def test_frame_ap_matches_a_direct_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(6, 2))
    gts, dets = [], []
    for f in range(4):
        for c in centres[rng.choice(6, size=rng.integers(0, 4), replace=False)]:
            gts.append(gt("v", float(f), (c[0] - 0.1, c[1] - 0.1, c[0] + 0.1, c[1] + 0.1)))
        for _ in range(rng.integers(0, 6)):
            c = centres[rng.integers(6)] + rng.normal(0, 0.04, 2)
            # coarse scores: many ties
            dets.append(
                det("v", float(f), (c[0] - 0.1, c[1] - 0.1, c[0] + 0.1, c[1] + 0.1), float(rng.integers(0, 4)) / 4)
            )
    ap, pos = class_ap(dets, gts)
    expected = direct_ap(dets, gts)
    if math.isnan(expected):
        assert math.isnan(ap) and pos == 0
    else:
        assert ap == pytest.approx(expected, abs=1e-12)


def test_read_label_map_and_the_60_evaluated_classes(tmp_path) -> None:
    pb = tmp_path / "ava.pbtxt"
    pb.write_text(
        "".join(
            f'label {{\n  name: "action {i}"\n  label_id: {i}\n  label_type: PERSON_MOVEMENT\n}}\n'
            for i in range(1, 81)
        )
    )
    labels = read_label_map(pb)
    assert len(labels) == 80 and labels[3] == "action 3"
    ev = evaluated_classes(labels)
    assert list(ev) == list(AVA60) and len(ev) == 60 and 2 not in ev
    small = tmp_path / "dirs.pbtxt"
    small.write_text('item { name: "left" id: 1 }\nitem { name: "right" id: 2 }\n')
    assert evaluated_classes(read_label_map(small)) == {1: "left", 2: "right"}
    (tmp_path / "empty.pbtxt").write_text("nothing here\n")
    with pytest.raises(InputError, match="no labels"):
        read_label_map(tmp_path / "empty.pbtxt")


def test_read_boxes_and_excluded(tmp_path) -> None:
    f = tmp_path / "ava.csv"
    f.write_text("vid1,0902,0.1,0.2,0.3,0.4,12,0\nvid1,0902,0.1,0.2,0.3,0.4,80,0\nvid2,1000,0,0,1,1,5\n")
    rows = read_boxes(f)
    assert rows[0] == BoxAnnotation("vid1", 902.0, (0.1, 0.2, 0.3, 0.4), 12, "0")
    assert rows[2].person == "" and rows[2].action == 5
    (tmp_path / "bad.csv").write_text("vid1,0902,0.1,x,0.3,0.4,12\n")
    with pytest.raises(InputError, match="bad.csv:1: box coordinate 'x'"):
        read_boxes(tmp_path / "bad.csv")
    (tmp_path / "short.csv").write_text("vid1,0902,0.1\n")
    with pytest.raises(InputError, match="columns"):
        read_boxes(tmp_path / "short.csv")
    ex = tmp_path / "ex.csv"
    ex.write_text("vid1,0902\n")
    assert read_excluded(ex) == {("vid1", 902.0)} and read_excluded(None) == set()
