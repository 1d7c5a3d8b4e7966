"""Temporal localization: where in a video does a text match, as spans ``(start, end, score)``.

The machinery works on *windows*: ``(start, end, score)`` triples, the cosine similarity of the
query with a fixed-length window of the video. It serves two callers:

* on-demand fine localization (:func:`localize_video`): the video is cut into short windows at a
  fine stride (default: window = duration / 8 clamped to [1 s, 8 s], stride = window / 4), each
  window is embedded like an indexed segment (``num_frames`` "middle" frames), and the window
  embeddings are cached per video content, model and geometry (:class:`WindowCache`), so a
  second query on the same video decodes nothing;
* query results (:func:`best_span_from_windows`, :func:`best_span_for_hit`): the windows the
  library already stores for a hit (8 s every 4 s by default) give its best span.

From windows to spans (:func:`localize_windows`):

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
   overlapping a kept one with temporal IoU above ``nms_iou`` (default 0.5).

Evaluation (:func:`temporal_iou`, :func:`localization_metrics`) follows Charades-STA: R@K at
IoU m is the share of queries with a top-K span of IoU >= m with the ground truth; mIoU is the
mean IoU of the top-1 span.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError

__all__ = [
    "Span",
    "LocalizeConfig",
    "WindowEmbeddings",
    "WindowCache",
    "coverage_curve",
    "smooth_curve",
    "nms",
    "temporal_iou",
    "localize_windows",
    "best_span_from_windows",
    "windows_scores",
    "window_scores",
    "best_spans_for_hits",
    "best_span_for_hit",
    "auto_window",
    "fine_window_plans",
    "embed_windows",
    "localize_video",
    "localization_metrics",
    "IOU_THRESHOLDS",
]

LOG = logging.getLogger(__name__)

IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
_WINDOW_MIN, _WINDOW_MAX = 1.0, 8.0
_ENCODE_CHUNK = 64  # windows decoded and encoded per pass: bounds memory on long videos

Window = tuple[float, float, float]


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


@dataclass(frozen=True)
class LocalizeConfig:
    """Window geometry and span extraction settings (None = automatic, see module docstring)."""

    window: float | None = None  # window length (s); None: duration / 8 clamped to [1, 8] s
    stride: float | None = None  # seconds between window starts; None: window / 4
    smooth: float | None = None  # Gaussian sigma (s) over the curve; None: one stride; 0: off
    nms_iou: float = 0.5  # drop candidates overlapping a better one above this IoU
    top: int = 3  # spans returned

    def __post_init__(self) -> None:
        for name in ("window", "stride"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise InputError(f"--{name} must be a positive number of seconds (got {value})")
        if self.smooth is not None and not (self.smooth >= 0 and math.isfinite(self.smooth)):
            raise InputError(f"--smooth must be >= 0 seconds (got {self.smooth})")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise InputError(f"--nms-iou must be in [0, 1] (got {self.nms_iou})")
        if self.top < 1:
            raise InputError(f"--top must be at least 1 (got {self.top})")


# --------------------------------------------------------------------------------------------
# curves, proposals, NMS


def _as_windows(windows: Sequence[Window] | np.ndarray) -> np.ndarray:
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
    w = _as_windows(windows)
    edges = np.unique(np.concatenate([w[:, 0], w[:, 1]]))
    mids = (edges[:-1] + edges[1:]) / 2.0
    cover = (w[None, :, 0] <= mids[:, None]) & (mids[:, None] < w[None, :, 1])  # [intervals, windows]
    counts = cover.sum(axis=1)
    sums = cover @ w[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return edges, values


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


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time spans ``(start, end)`` (0 when disjoint or empty)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return float(inter / union) if union > 0 else 0.0


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


def _peak_runs(v: np.ndarray) -> list[tuple[int, int]]:
    """Local maxima of ``v`` as runs ``[i, j)`` of equal values higher than both neighbours (-inf = gap)."""
    n = len(v)
    peaks = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and v[j] == v[i]:
            j += 1
        if np.isfinite(v[i]) and (i == 0 or v[i - 1] < v[i]) and (j == n or v[j] < v[i]):
            peaks.append((i, j))
        i = j
    return peaks


def _boundary(edges: np.ndarray, d: np.ndarray, v: np.ndarray, start: int, step: int, tau: float, peak: float) -> float | None:
    """Scan grid points from ``start`` in direction ``step`` for the edge ending a span.

    ``d`` is the drop across each grid point seen from the peak (NaN where it cannot be
    measured). The span ends at the strongest drop of the first stretch of drops ``>= tau``;
    without one, at a gap or the video's end. Returns None when the curve rises above the peak
    before any such drop: the seed is a ripple inside a higher region, whose own seed covers it.
    """
    n = len(v)
    k = start
    ks: list[int] = []
    while True:
        beyond = k if step > 0 else k - 1  # the interval past grid point k, seen from the peak
        if beyond < 0 or beyond >= n or not np.isfinite(v[beyond]):
            end_here: float | None = float(edges[k])  # video end or gap
            break
        if v[beyond] > peak:
            end_here = None
            break
        ks.append(k)
        k += step
    if ks:
        drops = d[ks]
        above = np.flatnonzero(np.nan_to_num(drops, nan=-np.inf) >= tau)
        if above.size:
            # The first peak of the drop: follow the stretch while it rises; stop once it has
            # fallen tau/2 below its best (hysteresis: noise wiggles do not end the climb).
            best = int(above[0])
            for m in range(best + 1, len(ks)):
                if not drops[m] >= drops[best] - tau / 2.0:
                    break
                if drops[m] > drops[best]:
                    best = m
            return float(edges[ks[best]])
    return end_here


def localize_windows(
    windows: Sequence[Window] | np.ndarray,
    *,
    smooth: float | None = None,
    nms_iou: float = 0.5,
    top: int = 3,
    min_step: float = 0.125,
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
    w = _as_windows(windows)
    edges, raw = coverage_curve(w)
    finite = ~np.isnan(raw)
    v = np.where(finite, smooth_curve(edges, raw, smooth or 0.0), -np.inf)
    lens = np.where(finite, np.diff(edges), 0.0)
    # Running integrals of covered time and of the raw curve: the mean over any [x, y] in O(1).
    cum_w = np.concatenate([[0.0], np.cumsum(lens)])
    cum_r = np.concatenate([[0.0], np.cumsum(np.where(finite, raw, 0.0) * lens)])

    def mean(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        cw = np.interp(y, edges, cum_w) - np.interp(x, edges, cum_w)
        cr = np.interp(y, edges, cum_r) - np.interp(x, edges, cum_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cw > 1e-12, cr / np.where(cw > 1e-12, cw, 1.0), np.nan)

    # Edge strength at every grid point: mean over one window length before minus after it.
    # Near the video's ends a band shorter than half a window is too noisy to call an edge.
    reach = float(np.median(w[:, 1] - w[:, 0]))
    t0, t1 = float(edges[0]), float(edges[-1])
    before_lo, after_hi = np.maximum(t0, edges - reach), np.minimum(t1, edges + reach)
    d = mean(before_lo, edges) - mean(edges, after_hi)
    d[(edges - before_lo < reach / 2) | (after_hi - edges < reach / 2)] = np.nan
    floor = float(np.min(v[np.isfinite(v)]))
    spans: dict[tuple[float, float], Span] = {}
    for i, j in _peak_runs(v):
        peak = float(v[i])
        tau = max(min_step * (peak - floor), 1e-12)
        start = _boundary(edges, -d, v, i, -1, tau, peak)  # a rising edge: the drop seen leftwards is -D
        end = _boundary(edges, d, v, j, 1, tau, peak)
        if start is None or end is None:
            continue
        key = (round(start, 6), round(end, 6))
        if key not in spans:
            spans[key] = Span(start, end, float(mean(start, end)))
    return nms(list(spans.values()), nms_iou, top)


def best_span_from_windows(windows: Sequence[Window] | np.ndarray) -> tuple[float, float, float]:
    """The best span ``(start, end, score)`` over a hit's stored windows (for query results).

    Uses :func:`localize_windows` with its defaults. Stored windows are coarse (8 s every 4 s),
    and on a nearly flat curve the coverage curve can peak beside the best window; a localized
    span is only trusted when it overlaps the best-scoring window with IoU >= 0.5, otherwise that
    window itself is the span. A single window is returned as it is.
    """
    w = _as_windows(windows)
    top = int(np.argmax(w[:, 2]))
    best_window = (float(w[top, 0]), float(w[top, 1]), float(w[top, 2]))
    if len(w) == 1:
        return best_window
    best = localize_windows(w, top=1)[0]
    if temporal_iou((best.start, best.end), best_window[:2]) < 0.5:
        return best_window
    return best.start, best.end, best.score


def windows_scores(library: Any, space: Any, video_ids: Sequence[int], xq: np.ndarray) -> dict[int, list[Window]]:
    """Video id -> ``(start, end, score)`` of each stored window for query vector ``xq``.

    One SQLite query serves all the videos; videos without windows are left out.
    """
    q = np.asarray(xq, dtype=np.float32).reshape(-1)
    out: dict[int, list[Window]] = {}
    for vid, (spans, xb) in library.window_vectors(space.id, [int(v) for v in video_ids]).items():
        out[vid] = [(float(a), float(b), float(sc)) for (a, b), sc in zip(spans, xb @ q)]
    return out


def window_scores(library: Any, space: Any, video_id: int, xq: np.ndarray) -> list[Window]:
    """``(start, end, score)`` of every stored window of a video in a space, for query vector ``xq``."""
    return windows_scores(library, space, [video_id], xq).get(int(video_id), [])


def best_spans_for_hits(library: Any, space: Any, video_ids: Sequence[int], xq: np.ndarray) -> dict[int, tuple[float, float, float]]:
    """Video id -> best span of each query hit from its stored windows (videos without windows left out)."""
    return {vid: best_span_from_windows(w) for vid, w in windows_scores(library, space, video_ids, xq).items()}


def best_span_for_hit(library: Any, space: Any, video_id: int, xq: np.ndarray) -> tuple[float, float, float] | None:
    """Best span of a query hit from its stored windows; None when the video has no windows."""
    return best_spans_for_hits(library, space, [video_id], xq).get(int(video_id))


# --------------------------------------------------------------------------------------------
# fine windows: plan, embed, cache


def auto_window(duration: float) -> float:
    """Default fine window length: an eighth of the video, at least 1 s, at most 8 s."""
    return float(min(_WINDOW_MAX, max(_WINDOW_MIN, duration / 8.0)))


def fine_window_plans(info: Any, num_frames: int, window: float, stride: float) -> list[Any]:
    """Window plans (:class:`vidsearch.media.SegmentPlan`) covering the whole video.

    A video no longer than ``window`` is one window: the whole video.
    """
    from vidsearch.media import plan_segments

    plans = plan_segments(info, num_frames, window=window, stride=stride, min_video_for_windows=-1.0)
    windows = [p for p in plans if p.kind == "window"]
    return windows or plans[:1]


@dataclass
class WindowEmbeddings:
    """Embeddings of a video's fine windows.

    Attributes:
        starts: float64 ``[W]`` window starts (s).
        ends: float64 ``[W]`` window ends (s).
        xb: float32 ``[W, D]`` L2-normalized.
        duration: the video's duration (s).
        window: window length asked for (s).
        stride: stride asked for (s).
        cached: loaded from the cache instead of decoded.
    """

    starts: np.ndarray
    ends: np.ndarray
    xb: np.ndarray
    duration: float
    window: float
    stride: float
    cached: bool = False

    def windows(self, xq: np.ndarray) -> list[Window]:
        """``(start, end, score)`` of every window for a query vector."""
        scores = self.xb @ np.asarray(xq, dtype=np.float32).reshape(-1)
        return [(float(a), float(b), float(c)) for a, b, c in zip(self.starts, self.ends, scores)]


class WindowCache:
    """``.npz`` files of window embeddings keyed by video content, model and window geometry.

    The key is the video's content fingerprint (the indexer's: size plus head, middle and tail
    bytes), the model's ``key`` (name + checkpoint hash), its frames and resolution, and the
    window and stride, so a renamed file hits and a changed one misses. Writes are atomic.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, video_fp: str, model_key: str, num_frames: int, resolution: int, window: float, stride: float) -> Path:
        """The cache file of one (video, model, geometry)."""
        ident = json.dumps([video_fp, model_key, num_frames, resolution, round(window, 6), round(stride, 6)])
        return self.root / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".npz")

    def load(self, path: Path) -> WindowEmbeddings | None:
        """The cached embeddings, or None when missing or unreadable."""
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                return WindowEmbeddings(
                    z["starts"], z["ends"], z["xb"].astype(np.float32), meta["duration"], meta["window"], meta["stride"], True
                )
        except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file: recompute
            LOG.warning("ignoring unreadable window cache %s: %s", path, exc)
            return None

    def save(self, path: Path, emb: WindowEmbeddings) -> None:
        """Write atomically (``.tmp`` then rename); failures only log (the cache is optional)."""
        meta = json.dumps({"duration": emb.duration, "window": emb.window, "stride": emb.stride})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
            np.savez(tmp, starts=emb.starts, ends=emb.ends, xb=emb.xb, meta=np.array(meta))
            os.replace(tmp, path)
        except OSError as exc:
            LOG.warning("could not write window cache %s: %s", path, exc)


def embed_windows(
    path: Path | str,
    encoder: Any,
    window: float | None = None,
    stride: float | None = None,
    cache: WindowCache | None = None,
    reader: str = "auto",
    batch_size: int = 16,
) -> WindowEmbeddings:
    """Embed a video's fine windows (or load them from ``cache``).

    Args:
        path: the video file.
        encoder: an encoder (``encode_video``, ``num_frames``, ``resolution``, ``key``).
        window: window length (s); None: :func:`auto_window` of the duration.
        stride: seconds between window starts; None: ``window / 4``.
        cache: where to keep the embeddings (None: no caching).
        reader: media reader (``auto``, ``decord``, ``pyav``).
        batch_size: clips per encoder call.

    Raises:
        InputError: no such file.
        MediaError: the file cannot be decoded.
    """
    from vidsearch.media import probe, read_frames

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{p}: no such video file")
    info = probe(str(p), reader=reader)
    w = float(window) if window is not None else auto_window(info.duration)
    st = float(stride) if stride is not None else w / 4.0
    cache_path = None
    if cache is not None:
        from vidsearch.indexer.scan import fingerprint

        fp = fingerprint(str(p), p.stat().st_size)
        cache_path = cache.path(fp, str(encoder.key), int(encoder.num_frames), int(encoder.resolution), w, st)
        hit = cache.load(cache_path)
        if hit is not None:
            return hit
    plans = fine_window_plans(info, int(encoder.num_frames), w, st)
    out: list[np.ndarray] = []
    for lo in range(0, len(plans), _ENCODE_CHUNK):
        chunk = plans[lo : lo + _ENCODE_CHUNK]
        wanted = [i for pl in chunk for i in pl.frame_indices]
        frames, _ = read_frames(str(p), wanted, int(encoder.resolution), reader=reader)
        row = {idx: r for r, idx in enumerate(sorted(set(wanted)))}
        clips = np.stack([frames[[row[i] for i in pl.frame_indices]] for pl in chunk])  # [B, T, res, res, 3]
        for b in range(0, len(clips), batch_size):
            out.append(encoder.encode_video(clips[b : b + batch_size]))
    emb = WindowEmbeddings(
        np.array([pl.start for pl in plans], np.float64),
        np.array([pl.end for pl in plans], np.float64),
        np.concatenate(out).astype(np.float32),
        float(info.duration),
        w,
        st,
    )
    LOG.info("embedded %d windows of %.2f s (stride %.2f s) of %s", len(plans), w, st, p)
    if cache is not None and cache_path is not None:
        cache.save(cache_path, emb)
    return emb


def localize_video(
    path: Path | str,
    text: str,
    encoder: Any,
    config: LocalizeConfig | None = None,
    cache: WindowCache | None = None,
    xq: np.ndarray | None = None,
) -> tuple[list[Span], WindowEmbeddings]:
    """The ``config.top`` best spans of ``text`` in a video, from fine windows (cached).

    Args:
        path: the video file.
        text: what to find.
        encoder: the encoder (its text and video towers).
        config: window geometry and span extraction.
        cache: window embedding cache (None: none).
        xq: the text's embedding, when the caller already has it.

    Raises:
        InputError: empty text or no such file.
        MediaError: the file cannot be decoded.
    """
    config = config or LocalizeConfig()
    if xq is None:
        if not text or not text.strip():
            raise InputError('the text is empty; say what to find, e.g. vidsearch localize clip.mp4 "a dog jumps"')
        xq = encoder.encode_text([text.strip()])[0]
    emb = embed_windows(path, encoder, config.window, config.stride, cache)
    smooth = config.smooth if config.smooth is not None else emb.stride
    spans = localize_windows(emb.windows(xq), smooth=smooth, nms_iou=config.nms_iou, top=config.top)
    return spans, emb


# --------------------------------------------------------------------------------------------
# metrics


def localization_metrics(
    predictions: Sequence[Sequence[tuple[float, float]]],
    truths: Sequence[tuple[float, float]],
    thresholds: Sequence[float] = IOU_THRESHOLDS,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """R@K at IoU m (percent) and mIoU of the top-1 span (percent), Charades-STA style.

    Args:
        predictions: per query, its spans best first (may be empty: counts as a miss, IoU 0).
        truths: per query, the ground-truth span.
        thresholds: IoU thresholds m.
        ks: K values.

    Returns:
        ``{"R@1,IoU=0.5": ..., "mIoU": ..., "count": n}``.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} ground truths")
    n = len(truths)
    if n == 0:
        raise InputError("no queries to evaluate")
    ious = [[temporal_iou(tuple(p), tuple(t)) for p in preds] for preds, t in zip(predictions, truths)]
    out: dict[str, float] = {}
    for k in ks:
        for m in thresholds:
            hits = sum(1 for row in ious if any(v >= m - 1e-9 for v in row[:k]))
            out[f"R@{k},IoU={m:g}"] = 100.0 * hits / n
    out["mIoU"] = 100.0 * float(np.mean([row[0] if row else 0.0 for row in ious]))
    out["count"] = float(n)
    return out
