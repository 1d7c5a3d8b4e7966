"""Spans from window scores: where along a video a query matches, as ``(start, end, score)``.

The input is *windows*: ``(start, end, score)`` triples, the similarity of a query with a
fixed-length window of a video. From windows to spans (:func:`localize_windows`):

1. **Coverage curve.** Time is cut at every window boundary into elementary intervals; an
   interval's value is the mean score of the windows covering it. A sliding window turns an
   event's boundary into a ramp about two windows wide, centred on the boundary.
2. **Smoothing.** A Gaussian over intervals (sigma in seconds; fine localization uses one
   stride, stored windows none) removes window-to-window noise before peaks are found.
3. **Peaks.** Every local maximum of the smoothed curve (a plateau counts once) seeds a span.
4. **Edges.** At every interval boundary ``x`` the edge strength is
   ``D(x) = mean(curve over [x - w, x)) - mean(curve over [x, x + w))`` with ``w`` the window
   length: a step-edge detector whose extremum sits in the middle of a ramp, i.e. on the event's
   boundary. From its peak a span extends right to the first falling edge whose drop ``D`` is at
   least ``min_step`` (1/8) of the peak's height above the curve's minimum (the first maximum of
   ``D`` there, with hysteresis: the climb ends once ``D`` falls tau/2 below its best), and left
   to the first such rising edge; a gap or the video's end also ends it. Taking the *nearest*
   significant edge keeps a span to its own event when a neighbouring event scores a little
   lower (a staircase), and averaging over ``w`` ignores ripples. A seed whose curve rises
   above it before any such edge is a ripple inside a higher region and is dropped (that
   region's own peak gives the span). Within half a window of the video's ends the bands are
   too short to call an edge, so spans near them reach the end.
   A span's ``score`` is the mean raw curve over it: a cosine similarity, comparable to query
   scores, and what spans are ranked by.
5. **Non-maximum suppression.** Greedily keep the best-scoring span and drop the others
   overlapping a kept one with temporal IoU (:func:`vidsearch.metrics.temporal_iou`) above
   ``nms_iou`` (default 0.5).

Pure numpy: nothing here knows about files, models or the library.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from vidsearch.metrics import temporal_iou

__all__ = [
    "Window",
    "Span",
    "as_windows",
    "score_windows",
    "window_rows",
    "window_list",
    "coverage_curve",
    "smooth_curve",
    "temporal_iou",
    "nms",
    "localize_windows",
    "best_span_from_windows",
]

LOG = logging.getLogger(__name__)

Window = tuple[float, float, float]  # (start s, end s, score)
NMS_IOU = 0.5  # spans overlapping a better one more than this are dropped (step 5)
MIN_STEP = 0.125  # an edge ends a span when it drops this share of the peak's height (step 4)


@dataclass(frozen=True)
class Span:
    """A localized moment.

    Attributes:
        start: start in seconds.
        end: end in seconds.
        score: mean of the coverage curve over the span: a cosine similarity (ranks spans).
    """

    start: float
    end: float
    score: float

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly form."""
        return {k: round(v, 4) for k, v in asdict(self).items()}


def score_windows(
    starts: Sequence[float] | np.ndarray, ends: Sequence[float] | np.ndarray, xb: np.ndarray, xq: np.ndarray
) -> list[Window]:
    """``(start, end, score)`` of each window: the dot product of its embedding with the query.

    Args:
        starts: ``[W]`` window starts (s).
        ends: ``[W]`` window ends (s).
        xb: ``[W, D]`` window embeddings (L2-normalized: scores are cosine similarities).
        xq: ``[D]`` query embedding.
    """
    return window_list(window_rows(starts, ends, xb, xq))


def window_rows(
    starts: Sequence[float] | np.ndarray, ends: Sequence[float] | np.ndarray, xb: np.ndarray, xq: np.ndarray
) -> np.ndarray:
    """:func:`score_windows` as a float64 ``[W, 3]`` array (what localizing takes, without a list between)."""
    rows = np.empty((len(starts), 3), dtype=np.float64)
    rows[:, 0], rows[:, 1] = starts, ends
    rows[:, 2] = np.asarray(xb, dtype=np.float32) @ np.asarray(xq, dtype=np.float32).reshape(-1)
    return rows


def window_list(rows: np.ndarray) -> list[Window]:
    """``[W, 3]`` window rows as ``(start, end, score)`` tuples of Python floats."""
    return [(a, b, c) for a, b, c in rows.tolist()]


def as_windows(windows: Sequence[Window] | np.ndarray) -> np.ndarray:
    """``windows`` as a checked float64 ``[W, 3]`` array (ValueError when empty or malformed)."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    if len(w) == 0:
        raise ValueError("no windows to localize in")
    if np.any(w[:, 1] <= w[:, 0]) or not np.all(np.isfinite(w)):
        raise ValueError("every window needs finite start < end and a finite score")
    return w


def coverage_curve(windows: Sequence[Window] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut time at every window boundary; each interval gets the mean score of the windows covering it.

    Args:
        windows: ``(start, end, score)`` triples (any order, may overlap or leave gaps).

    Returns:
        ``(edges, values)``: interval ``i`` is ``[edges[i], edges[i + 1]]``; intervals in a gap
        between windows get NaN.
    """
    w = as_windows(windows)
    grid = _grid(w)
    return grid.edges.copy(), grid.curve(w[:, 2])  # the grid's arrays are shared: the caller gets its own


@dataclass(frozen=True, eq=False)
class _Grid:
    """What localizing needs of the windows' times alone (steps 1 and 4 without the scores).

    A search localizes every hit's windows, and the next search the same videos' windows again:
    these arrays are cached per set of window times (:func:`_grid`), so a query pays only for
    what its scores change.
    """

    edges: np.ndarray  # every start and end, sorted: the grid points
    cover: np.ndarray  # [intervals, windows]: 1.0 where a window covers an interval
    counts: np.ndarray  # windows covering each interval (0: a gap)
    lens: np.ndarray  # each interval's covered length (0 in a gap)
    cum_w: np.ndarray  # covered time up to each grid point
    before_lo: np.ndarray  # each grid point's band before it: [before_lo, x)
    after_hi: np.ndarray  # and after it: [x, after_hi)
    time_before: np.ndarray  # covered time in each band
    time_after: np.ndarray
    near_end: np.ndarray  # grid points whose bands are too short to call an edge

    def curve(self, scores: np.ndarray) -> np.ndarray:
        """The coverage curve: each interval's mean score of the windows covering it (NaN in gaps)."""
        sums = self.cover @ scores
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, sums / np.maximum(self.counts, 1), np.nan)


# Grids of up to 64 windows (stored windows of videos up to about 4 minutes) are cached, 512 of
# them: at most ~38 KB each, ~19 MB in all. Longer videos' grids (which grow as windows^2) are
# made per call, where the arithmetic, not the fixed cost, is the time anyway.
_GRID_CACHE_MAX_WINDOWS = 64
_GRID_CACHE_SIZE = 512


def _grid(w: np.ndarray) -> _Grid:
    """The grid of windows already checked by :func:`as_windows` (cached for short videos)."""
    times = np.ascontiguousarray(w[:, :2])
    if len(times) > _GRID_CACHE_MAX_WINDOWS:
        return _make_grid(times)
    return _cached_grid(times.tobytes(), len(times))


@functools.lru_cache(maxsize=_GRID_CACHE_SIZE)
def _cached_grid(times: bytes, n: int) -> _Grid:
    return _make_grid(np.frombuffer(times, dtype=np.float64).reshape(n, 2))


def _make_grid(times: np.ndarray) -> _Grid:
    edges = np.unique(times)  # every start and end, sorted
    mids = (edges[:-1] + edges[1:]) / 2.0
    cover = (times[None, :, 0] <= mids[:, None]) & (mids[:, None] < times[None, :, 1])  # [intervals, windows]
    counts = cover.sum(axis=1)
    lens = np.where(counts > 0, np.diff(edges), 0.0)
    # Running integral of covered time: with the curve's (per query), the mean over any [x, y] in O(1).
    cum_w = np.concatenate([[0.0], np.cumsum(lens)])
    # Edge strength (step 4) compares the mean over one window length before each grid point with
    # the mean after it; within half a window of the video's ends a band is too short to call an edge.
    reach = _median(times[:, 1] - times[:, 0])
    t0, t1 = float(edges[0]), float(edges[-1])
    before_lo, after_hi = np.maximum(t0, edges - reach), np.minimum(t1, edges + reach)
    # At the grid points the running integrals are their own values (interp is exact at its knots).
    grid = _Grid(
        edges=edges,
        cover=cover.astype(np.float64),  # a bool matrix is converted on every product
        counts=counts,
        lens=lens,
        cum_w=cum_w,
        before_lo=before_lo,
        after_hi=after_hi,
        time_before=cum_w - np.interp(before_lo, edges, cum_w),
        time_after=np.interp(after_hi, edges, cum_w) - cum_w,
        near_end=(edges - before_lo < reach / 2) | (after_hi - edges < reach / 2),
    )
    for a in vars(grid).values():
        a.flags.writeable = False  # shared by every query of these windows
    return grid


def smooth_curve(edges: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing in seconds over intervals, weighted by interval length; NaNs are gaps.

    Gaps stay NaN and are not smoothed across. ``sigma <= 0`` returns a copy.
    """
    v = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(v) < 2:
        return v.copy()
    mids = (edges[:-1] + edges[1:]) / 2.0
    lens = np.diff(edges)
    ok = ~np.isnan(v)
    out = np.full_like(v, np.nan)
    vv = np.where(ok, v, 0.0)
    ww = np.where(ok, lens, 0.0)
    # Kernels truncated at 4 sigma, done interval by interval over the neighbours in reach, so a
    # long video costs O(n * reach) instead of an n x n matrix.
    lo = np.searchsorted(mids, mids - 4.0 * sigma, side="left")
    hi = np.searchsorted(mids, mids + 4.0 * sigma, side="right")
    # nor across a gap: each covered stretch is smoothed on its own
    idx = np.arange(len(v))
    run_lo = np.maximum.accumulate(np.where(~ok, idx + 1, 0))
    run_hi = np.minimum.accumulate(np.where(~ok, idx, len(v))[::-1])[::-1]
    lo, hi = np.maximum(lo, run_lo), np.minimum(hi, run_hi)
    for i in np.flatnonzero(ok):
        d = mids[lo[i] : hi[i]] - mids[i]
        k = np.exp(-0.5 * (d / sigma) ** 2) * ww[lo[i] : hi[i]]
        out[i] = float(k @ vv[lo[i] : hi[i]] / k.sum())
    return out


def nms(spans: Sequence[Span], iou: float = 0.5, top: int | None = None) -> list[Span]:
    """Greedy temporal non-maximum suppression by ``score`` (ties: earlier, then shorter span)."""
    order = sorted(spans, key=lambda s: (-s.score, s.start, s.end - s.start))
    kept: list[Span] = []
    for s in order:
        if all(temporal_iou((s.start, s.end), (k.start, k.end)) <= iou for k in kept):
            kept.append(s)
            if top is not None and len(kept) >= top:
                break
    return kept


# The scans below walk the curve point by point, so they take Python lists: indexing a numpy
# array element by element costs ~10x more, and a query refines the span of every hit.


def _peak_runs(v: list[float]) -> list[tuple[int, int]]:
    """Local maxima of ``v`` as runs ``[i, j)`` of equal values higher than both neighbours (-inf = gap)."""
    n = len(v)
    peaks = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and v[j] == v[i]:
            j += 1
        if math.isfinite(v[i]) and (i == 0 or v[i - 1] < v[i]) and (j == n or v[j] < v[i]):
            peaks.append((i, j))
        i = j
    return peaks


def _boundary(d: list[float], v: list[float], start: int, step: int, tau: float, peak: float) -> int | None:
    """Scan grid points from ``start`` in direction ``step`` for the edge ending a span (its grid point).

    ``d`` is the drop across each grid point seen from the peak (NaN where it cannot be
    measured). The span ends at the strongest drop of the first stretch of drops ``>= tau``;
    without one, at a gap or the video's end. Returns None when the curve rises above the peak
    before any such drop: the seed is a ripple inside a higher region, whose own seed covers it.
    """
    n = len(v)
    k = start
    drops: list[float] = []  # d at the grid points passed, in scan order
    while True:
        beyond = k if step > 0 else k - 1  # the interval past grid point k, seen from the peak
        if beyond < 0 or beyond >= n or not math.isfinite(v[beyond]):
            end_here: int | None = k  # video end or gap
            break
        if v[beyond] > peak:
            end_here = None
            break
        drops.append(d[k])
        k += step
    # NaN (not measurable) never counts as a drop: every comparison with it is False.
    first = next((m for m, x in enumerate(drops) if x >= tau), None)
    if first is None:
        return end_here
    # The first peak of the drop: follow the stretch while it rises; stop once it has fallen
    # tau/2 below its best (hysteresis: noise wiggles do not end the climb).
    best = first
    for m in range(first + 1, len(drops)):
        if not drops[m] >= drops[best] - tau / 2.0:
            break
        if drops[m] > drops[best]:
            best = m
    return start + step * best


def localize_windows(
    windows: Sequence[Window] | np.ndarray,
    *,
    smooth: float | None = None,
    nms_iou: float = NMS_IOU,
    top: int = 3,
    min_step: float = MIN_STEP,
) -> list[Span]:
    """Spans where the windows' scores are high (steps 1-5 of the module docstring).

    Args:
        windows: ``(start, end, score)`` of each window.
        smooth: Gaussian sigma in seconds for finding peaks; None or 0 = no smoothing.
        nms_iou: IoU above which a lower-ranked span is suppressed.
        top: spans returned at most.
        min_step: an edge ends a span when its drop is at least this share of the peak's
            height above the curve's minimum.

    Returns:
        Spans, best first.
    """
    return _localize(as_windows(windows), smooth, nms_iou, top, min_step)


def _median(x: np.ndarray) -> float:
    """``np.median`` of a 1-D array without its generic machinery (a query calls this per hit)."""
    s = np.sort(x)
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else float((s[m - 1] + s[m]) / 2.0)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is (numerically) zero: a mean over no covered time."""
    ok = den > 1e-12
    return np.where(ok, num / np.where(ok, den, 1.0), np.nan)


def _localize(w: np.ndarray, smooth: float | None, nms_iou: float, top: int, min_step: float) -> list[Span]:
    """:func:`localize_windows` of windows already checked by :func:`as_windows`.

    A query localizes every hit's windows, so this keeps numpy calls few: for a handful of
    windows their fixed cost, not the arithmetic, is the time.
    """
    grid = _grid(w)
    edges, raw = grid.edges, grid.curve(w[:, 2])
    finite = grid.counts > 0
    v = np.where(finite, smooth_curve(edges, raw, smooth) if smooth else raw, -np.inf)
    # Running integral of the raw curve (the grid has that of covered time): means in O(1).
    cum_w = grid.cum_w
    cum_r = np.concatenate([[0.0], np.cumsum(np.where(finite, raw, 0.0) * grid.lens)])

    # Edge strength at every grid point: mean over one window length before minus after it.
    with np.errstate(invalid="ignore", divide="ignore"):
        d = _ratio(cum_r - np.interp(grid.before_lo, edges, cum_r), grid.time_before) - _ratio(
            np.interp(grid.after_hi, edges, cum_r) - cum_r, grid.time_after
        )
    d[grid.near_end] = np.nan
    floor = float(np.min(v[np.isfinite(v)]))
    found: dict[tuple[float, float], tuple[int, int]] = {}  # span -> its grid points
    vl, el, dl, rise = v.tolist(), edges.tolist(), d.tolist(), (-d).tolist()
    for i, j in _peak_runs(vl):
        peak = vl[i]
        tau = max(min_step * (peak - floor), 1e-12)
        start = _boundary(rise, vl, i, -1, tau, peak)  # a rising edge: the drop seen leftwards is -D
        end = _boundary(dl, vl, j, 1, tau, peak)
        if start is None or end is None:
            continue
        found.setdefault((round(el[start], 6), round(el[end], 6)), (start, end))
    if not found:
        return nms([], nms_iou, top)
    # Every span's mean score in one pass; spans end on grid points, where the running integrals
    # are their own values (what interpolating there gives).
    at = np.array(list(found.values()))
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = _ratio(cum_r[at[:, 1]] - cum_r[at[:, 0]], cum_w[at[:, 1]] - cum_w[at[:, 0]]).tolist()
    spans = [Span(el[a], el[b], sc) for (a, b), sc in zip(found.values(), scores, strict=False)]
    return nms(spans, nms_iou, top)


def best_span_from_windows(windows: Sequence[Window] | np.ndarray) -> tuple[float, float, float]:
    """The best span ``(start, end, score)`` over a hit's stored windows (for query results).

    Uses :func:`localize_windows` with its defaults. Stored windows are coarse (8 s every 4 s),
    and on a nearly flat curve the coverage curve can peak beside the best window; a localized
    span is only trusted when it overlaps the best-scoring window with IoU >= 0.5, otherwise that
    window itself is the span. A single window is returned as it is.
    """
    w = as_windows(windows)
    top = int(np.argmax(w[:, 2]))
    best_window = (float(w[top, 0]), float(w[top, 1]), float(w[top, 2]))
    if len(w) == 1:
        return best_window
    best = _localize(w, None, NMS_IOU, 1, MIN_STEP)[0]  # localize_windows' defaults; the windows are checked
    if temporal_iou((best.start, best.end), best_window[:2]) < 0.5:
        return best_window
    return best.start, best.end, best.score
