"""Tube linking on synthetic box sequences, box IoU and NMS, and square crops at frame borders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidsearch.errors import InputError
from vidsearch.media.crop import crop_clip, square_around
from vidsearch.tubes import LinkConfig, box_iou, link_tubes, nms, tubes_from_tracks


def box(cx: float, cy: float, half: float = 10.0) -> np.ndarray:
    return np.asarray([cx - half, cy - half, cx + half, cy + half], np.float64)


def dets(*boxes: np.ndarray, scores: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    b = np.stack(boxes) if boxes else np.zeros((0, 4))
    return b, np.asarray(scores if scores is not None else [0.9] * len(boxes))


def test_box_iou_by_hand() -> None:
    a = np.asarray([[0, 0, 10, 10]])
    b = np.asarray([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [3, 3, 3, 8]])
    iou = box_iou(a, b)[0]
    assert iou == pytest.approx([50 / 150, 0.0, 1.0, 0.0])  # the zero-area box overlaps nothing


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.asarray([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]])
    keep = nms(boxes, np.asarray([0.5, 0.9, 0.7, 0.9]), iou=0.5)
    assert keep.tolist() == [1, 2]  # 1 and 3 tie at 0.9: the lower index first, and 3 overlaps 1


def test_two_actors_with_crossing_paths_keep_their_tracks() -> None:
    # A moves right, B moves left along the same row; at k=5 their boxes coincide, and from then
    # on each is nearer the other's previous box: only the motion prediction keeps them apart.
    times = [float(k) for k in range(11)]
    frames = []
    for k in range(11):
        a, b = box(50 + 8 * k, 100), box(130 - 8 * k, 100)
        # the detector lists them in a varying order, and once only one (a merged box) at the crossing
        frames.append(dets(a, b) if k % 2 else dets(b, a))
    frames[5] = dets(box(90, 100))  # both at x=90: the detector sees one person
    tubes = link_tubes(times, frames, LinkConfig(iou=0.3, max_gap=1, min_length=2))
    assert len(tubes) == 2
    for tube in tubes:
        xs = (tube.boxes[:, 0] + tube.boxes[:, 2]) / 2
        assert len(tube.times) == 11 and int(tube.detected.sum()) >= 10
        steps = np.diff(xs)
        assert np.all(steps > 0) or np.all(steps < 0), xs  # each tube moves one way only


def test_a_detector_miss_is_bridged_by_interpolation() -> None:
    times = [0.0, 1.0, 2.0, 3.0, 4.0]
    frames = [dets(box(10 + 2 * k, 50)) for k in range(5)]
    frames[2] = dets()  # missed at t=2
    (tube,) = link_tubes(times, frames, LinkConfig(max_gap=1, min_length=2))
    assert tube.times == times
    assert tube.detected.tolist() == [True, True, False, True, True]
    assert math.isnan(float(tube.scores[2]))
    np.testing.assert_allclose(tube.boxes[2], box(14, 50), atol=1e-4)  # halfway between t=1 and t=3


def test_a_gap_longer_than_allowed_splits_the_tube() -> None:
    times = [float(k) for k in range(8)]
    frames = [dets(box(30, 30)) for _ in times]
    for k in (3, 4, 5):
        frames[k] = dets()
    short = link_tubes(times, frames, LinkConfig(max_gap=2, min_length=1))
    assert [t.times for t in short] == [[0.0, 1.0, 2.0], [6.0, 7.0]]
    long = link_tubes(times, frames, LinkConfig(max_gap=3, min_length=1))
    assert len(long) == 1 and long[0].times == times and int(long[0].detected.sum()) == 5


def test_spurious_detections_make_no_tube() -> None:
    times = [0.0, 1.0, 2.0, 3.0]
    frames = [dets(box(20, 20)) for _ in times]
    frames[1] = dets(box(20, 20), box(200, 200), scores=[0.9, 0.6])  # a one-off false positive
    tubes = link_tubes(times, frames, LinkConfig(min_length=2))
    assert len(tubes) == 1 and tubes[0].track == 0 and len(tubes[0].times) == 4


def test_link_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="increase"):
        link_tubes([1.0, 1.0], [dets(), dets()])
    with pytest.raises(ValueError, match="detection lists"):
        link_tubes([1.0], [])
    with pytest.raises(InputError, match="^link_iou must be in"):
        LinkConfig(iou=1.5)


def test_tubes_from_tracks_orders_by_first_appearance() -> None:
    tracks = {"b": [(2.0, box(1, 1)), (1.0, box(0, 0))], "a": [(3.0, box(5, 5))]}
    tubes = tubes_from_tracks(tracks)
    assert [t.times for t in tubes] == [[1.0, 2.0], [3.0]]
    assert [t.track for t in tubes] == [0, 1]
    np.testing.assert_allclose(tubes[0].boxes_between(0.5, 1.5), [box(0, 0)])


# --------------------------------------------------------------------------------------------
# crops


def test_square_grows_by_the_margin_and_centres_on_the_union() -> None:
    sq = square_around(np.asarray([[40, 50, 60, 60], [50, 50, 80, 70]]), 200, 200, margin=0.25)
    # union 40..80 x 50..70: longer side 40, side 60, centred at (60, 60)
    assert sq == pytest.approx((30, 30, 90, 90))


@pytest.mark.parametrize(
    "boxes, expected",
    [
        ([[0, 0, 20, 20]], (0, 0, 30, 30)),  # top-left corner: slides right and down
        ([[180, 90, 200, 100]], (170, 70, 200, 100)),  # bottom-right: slides back inside
    ],
)
def test_square_slides_inside_the_frame_at_borders(boxes: list[list[float]], expected: tuple[float, ...]) -> None:
    assert square_around(np.asarray(boxes, float), 200, 100, margin=0.25) == pytest.approx(expected)


def test_square_larger_than_the_frame_is_centred_and_padded() -> None:
    sq = square_around(np.asarray([[0, 10, 200, 60]], float), 200, 100, margin=0.0)
    assert sq == pytest.approx((0, -50, 200, 150))
    frames = np.zeros((2, 100, 200, 3), np.uint8)
    frames[:, 0, :] = 255  # top row white: the edge padding repeats it above the frame
    out = crop_clip(frames, sq, (200, 100), 20)
    assert out.shape == (2, 20, 20, 3) and out.dtype == np.uint8
    assert out[0, 0].min() == 255 and out[0, -1].max() == 0


def test_crop_of_a_squashed_frame_keeps_the_picture_square() -> None:
    # native 200 x 100 frames stored squashed as 64 x 64: a square region in the picture is a
    # 2:1-squashed rectangle in storage; the crop must undo that
    native = np.zeros((1, 100, 200, 3), np.uint8)
    native[:, 20:60, 100:140] = 200  # a 40 x 40 square in the picture
    import torch
    import torch.nn.functional as F

    squashed = (
        F.interpolate(torch.from_numpy(native).permute(0, 3, 1, 2).float(), size=(64, 64), mode="bilinear")
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .numpy()
    )
    out = crop_clip(squashed, (100, 20, 140, 60), (200, 100), 16)[0, :, :, 0]
    assert out.shape == (16, 16)
    assert out[2:-2, 2:-2].min() > 150  # the square fills the crop in both directions


def test_boxes_at_interpolates_and_extrapolates_at_the_ends() -> None:
    (tube,) = tubes_from_tracks({"a": [(1.0, box(10, 0)), (2.0, box(20, 0)), (3.0, box(40, 0))]})
    got = tube.boxes_at([0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose((got[:, 0] + got[:, 2]) / 2, [5, 15, 30, 50])  # speeds 10 then 20 px/s
    (still,) = tubes_from_tracks({"b": [(1.0, box(7, 7))]})
    np.testing.assert_allclose(still.boxes_at([0.0, 2.0]), [box(7, 7), box(7, 7)])
