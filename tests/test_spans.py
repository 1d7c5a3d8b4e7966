"""The span algorithm on hand-made curves (vidsearch.spans)."""

from __future__ import annotations

import numpy as np
import pytest

from vidsearch.metrics import temporal_iou
from vidsearch.spans import Span, best_span_from_windows, coverage_curve, localize_windows, nms, smooth_curve


def sliding(
    duration: float,
    window: float,
    stride: float,
    events: list[tuple[float, float, float]],
    base: float = 0.2,
    noise: float = 0.0,
    seed: int = 0,
):
    """Window scores = base + sum(height * share of the window covered by each event) (+ noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in np.arange(0.0, duration - window + 1e-9, stride):
        e = s + window
        score = base + sum(h * max(0.0, min(e, b) - max(s, a)) / window for a, b, h in events)
        out.append((float(s), float(e), score + float(rng.normal(0, noise))))
    return out


def test_coverage_curve_and_smoothing_by_hand() -> None:
    edges, values = coverage_curve([(0, 8, 0.1), (4, 12, 0.3), (8, 16, 0.5), (14, 20, 0.2)])
    assert edges.tolist() == [0, 4, 8, 12, 14, 16, 20]
    assert np.allclose(values, [0.1, 0.2, 0.4, 0.5, 0.35, 0.2])
    edges, values = coverage_curve([(0, 1, 1.0), (2, 3, 3.0)])  # a gap between the windows
    assert np.isnan(values[1]) and values[0] == 1.0 and values[2] == 3.0
    sm = smooth_curve(edges, values, 0.5)
    assert np.isnan(sm[1]) and sm[0] == pytest.approx(1.0) and sm[2] == pytest.approx(3.0)  # gaps neither give nor take
    e = np.arange(6, dtype=float)
    v = np.array([0, 0, 1, 0, 0], dtype=float)
    s = smooth_curve(e, v, 1.0)
    assert s.sum() < v.sum() + 1 and s[2] < 1 and s[1] == pytest.approx(s[3]) and s[1] > 0  # symmetric spread
    assert np.array_equal(smooth_curve(e, v, 0.0), v)


def test_nms_by_hand() -> None:
    spans = [Span(0, 10, 0.9), Span(1, 10, 0.8), Span(20, 30, 0.7), Span(0, 4, 0.6)]
    kept = nms(spans, iou=0.5)
    # (1,10) overlaps (0,10) with IoU 0.9 -> dropped; (0,4) IoU 0.4 with (0,10) -> kept
    assert [(s.start, s.end) for s in kept] == [(0, 10), (20, 30), (0, 4)]
    assert [(s.start, s.end) for s in nms(spans, iou=0.3)] == [(0, 10), (20, 30)]
    assert len(nms(spans, iou=0.5, top=1)) == 1


@pytest.mark.parametrize("event", [(2.0, 4.0), (0.0, 2.0), (4.0, 6.0), (1.0, 5.0)])
def test_clean_event_is_found_exactly(event: tuple[float, float]) -> None:
    windows = sliding(6.0, 1.0, 0.25, [(event[0], event[1], 0.3)])
    best = localize_windows(windows, smooth=0.25)[0]
    assert (best.start, best.end) == pytest.approx(event)
    assert best.score > 0.2


def test_staircase_keeps_to_the_best_event() -> None:
    # the query's event scores 0.5, its neighbour 0.4, the rest 0.2
    windows = sliding(6.0, 1.0, 0.25, [(2.0, 4.0, 0.3), (4.0, 6.0, 0.2)])
    best = localize_windows(windows, smooth=0.25)[0]
    assert (best.start, best.end) == pytest.approx((2.0, 4.0))


def test_noisy_events_localized_with_nms() -> None:
    ious = []
    for seed in range(10):
        windows = sliding(12.0, 1.5, 0.375, [(3.0, 6.0, 0.3), (8.0, 10.0, 0.15)], noise=0.02, seed=seed)
        spans = localize_windows(windows, smooth=0.375, top=3)
        ious.append(temporal_iou((spans[0].start, spans[0].end), (3.0, 6.0)))
        assert all(temporal_iou((a.start, a.end), (b.start, b.end)) <= 0.5 for a in spans for b in spans if a is not b)
        assert [s.score for s in spans] == sorted([s.score for s in spans], reverse=True)
    assert np.mean(ious) > 0.85 and min(ious) >= 0.7


def test_best_span_from_stored_windows() -> None:
    # 8 s windows every 4 s: the best window narrows to the half its better neighbour shares
    assert best_span_from_windows([(0, 8, 0.1), (4, 12, 0.1), (8, 16, 0.5), (12, 20, 0.1)]) == pytest.approx(
        (8.0, 16.0, 0.3)
    )
    assert best_span_from_windows([(0, 8, 0.1), (4, 12, 0.5), (8, 16, 0.5), (12, 20, 0.1)])[:2] == pytest.approx(
        (4.0, 16.0)
    )
    assert best_span_from_windows([(3, 11, 0.4)]) == (3.0, 11.0, 0.4)
    # Nearly flat: the coverage curve peaks beside the best window; the best window wins.
    flat = [(0, 8, 0.99), (4, 12, 0.98), (8, 16, 1.0), (12, 20, 0.999)]
    assert localize_windows(flat, top=1)[0].start == pytest.approx(12.0)
    assert best_span_from_windows(flat) == pytest.approx((8.0, 16.0, 1.0))
    flat = localize_windows([(0, 1, 0.5), (1, 2, 0.5)])
    assert [(s.start, s.end) for s in flat] == [(0.0, 2.0)]
    with pytest.raises(ValueError):
        best_span_from_windows([])


@pytest.mark.parametrize("duration", [40.0, 600.0])  # 9 windows (grid cached) and 149 (made per call)
def test_a_query_never_sees_another_querys_scores_on_the_same_windows(duration: float) -> None:
    """The windows' time grid is shared by every query of a video; the scores on it are each query's own."""
    early = sliding(duration, 8.0, 4.0, [(4.0, 12.0, 0.6)])
    late = sliding(duration, 8.0, 4.0, [(duration - 12.0, duration - 4.0, 0.6)])
    first = best_span_from_windows(early)
    assert first[:2] == pytest.approx((4.0, 12.0), abs=2.0)
    assert best_span_from_windows(late)[:2] == pytest.approx((duration - 12.0, duration - 4.0), abs=2.0)
    assert best_span_from_windows(early) == first  # exactly as before the other query
    edges, values = coverage_curve(late)
    edges[0] = -1.0  # a caller's copy: writing to it changes nothing shared
    assert coverage_curve(late)[0][0] == 0.0
