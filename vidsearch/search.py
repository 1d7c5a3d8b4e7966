"""The vector engine: FAISS hits of a query vector grouped into videos or moments, with spans.

It answers for :class:`vidsearch.retrieval.VectorRetriever`; front ends search through
:func:`vidsearch.usecases.search`. It also holds the loaders of a space's encoders.

FAISS returns segments (whole videos and windows). A user wants videos, each with the span that
matched best, so hits are grouped per video: the video's score is its best segment's score and its
span comes from localizing the query over all of the video's stored windows (the whole video when
it has none).
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError
from vidsearch.metrics import temporal_iou
from vidsearch.spans import Window, best_span_from_windows, window_list, window_rows
from vidsearch.store.library import Library, SegmentInfo, SpaceInfo

__all__ = [
    "Said",
    "Filters",
    "VideoHit",
    "search_vectors",
    "search_moments",
    "moment_vector",
    "embed_text",
    "check_text",
    "encode_video_file",
    "windows_rows",
    "windows_scores",
    "window_scores",
    "best_spans_for_hits",
    "best_span_for_hit",
]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Result filters users ask for: a relevance cut-off, a path glob, a duration range."""

    min_score: float | None = None
    path_glob: str | None = None  # matched against the full path; a pattern without "/" against the file name
    min_duration: float | None = None
    max_duration: float | None = None
    video_ids: frozenset[int] | None = None  # only these videos (e.g. those with a recognized label)
    # live streams (their segments' times are wall-clock UTC s): only their moments starting within
    # [since, until], so a stream's recent windows compete without its older ones crowding them out
    wall_clock: frozenset[int] = frozenset()
    since: float | None = None
    until: float | None = None

    def accepts(self, info: SegmentInfo) -> bool:
        """Whether a segment passes the path, duration, video-set and stream-time filters."""
        if self.video_ids is not None and info.video_id not in self.video_ids:
            return False
        if info.video_id in self.wall_clock and not (
            (self.since is None or info.start >= self.since) and (self.until is None or info.start <= self.until)
        ):
            return False
        if self.path_glob:
            target = info.path if "/" in self.path_glob else Path(info.path).name
            if not fnmatch.fnmatch(target, self.path_glob):
                return False
        if self.min_duration is not None and (info.duration or 0.0) < self.min_duration:
            return False
        if self.max_duration is not None and (info.duration or 0.0) > self.max_duration:
            return False
        return True


@dataclass(frozen=True)
class Said:
    """The spoken words a result matched: the transcript line, the matched part and its span (s)."""

    text: str  # the whole line, as quoted to the user
    match: str  # the matched words within it
    start: float  # when the matched words start (from word times; interpolated for subtitle lines)
    end: float


@dataclass
class VideoHit:
    """One ranked video with its best-matching span (seconds)."""

    rank: int
    path: str
    score: float
    start: float
    end: float
    duration: float | None
    video_id: int
    segment_id: int
    kind: str  # "window": the span was localized over the video's windows; "video": the whole video
    matched: tuple[str, ...] = ()  # the retrievers that found it (vidsearch.retrieval.fuse fills it in)
    said: Said | None = None  # the words of a transcript match (vidsearch.retrieval.transcripts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _group(D: np.ndarray, I: np.ndarray, infos: dict[int, SegmentInfo], filters: Filters) -> list[VideoHit]:
    best: dict[int, VideoHit] = {}
    for score, sid in zip(D.tolist(), I.tolist(), strict=False):
        if sid < 0:
            continue
        if filters.min_score is not None and score < filters.min_score:
            break  # scores arrive in decreasing order
        info = infos.get(sid)
        if info is None or not filters.accepts(info):
            continue
        if info.video_id not in best:  # the video's best segment; its span is refined later
            best[info.video_id] = VideoHit(
                0, info.path, float(score), info.start, info.end, info.duration, info.video_id, sid, info.kind
            )
    hits = sorted(best.values(), key=lambda h: (-h.score, h.path))
    for rank, hit in enumerate(hits, 1):
        hit.rank = rank
    return hits


def _check_k(k: int) -> None:
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k})")


def check_text(text: str | None) -> None:
    """Raise when a text query is empty (or only blanks).

    Raises:
        InputError: see above.
    """
    if not text or not text.strip():
        raise InputError(
            'the query text is empty; type what you want to see, e.g. vidsearch query "a dog catching a frisbee"'
        )


# Normalised vectors score in [-1, 1]; approximate indexes (PQ codes) may overshoot a little.
_SCORE_SLACK = 0.05


def _sane(D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop hits whose score no normalised vector can have (a damaged index), clip the rest."""
    bad = ~np.isfinite(D) | (np.abs(D) > 1.0 + _SCORE_SLACK)
    if bad.any():
        LOG.warning(
            "ignored %d hit(s) with impossible scores; run `vidsearch reindex` to rebuild the index", int(bad.sum())
        )
        I = np.where(bad, -1, I)
        order = np.argsort(bad, axis=1, kind="stable")  # good hits first, in their order
        D, I = np.take_along_axis(np.where(bad, -np.inf, D), order, 1), np.take_along_axis(I, order, 1)
    return np.clip(D, -1.0, 1.0), I


def search_vectors(
    library: Library, space: SpaceInfo, xq: np.ndarray, k: int = 10, filters: Filters | None = None
) -> list[VideoHit]:
    """The ``k`` best videos for one query vector ``xq`` (L2-normalized, ``[D]``)."""
    filters = filters or Filters()
    with library.snapshot():  # the index, the rows and the windows as of one moment
        hits, xq = _widening_search(library, space, xq, k, filters, lambda D, I, infos: _group(D, I, infos, filters))
        return _refine_spans(library, space, hits[:k], xq) if hits else hits


def _widening_search(
    library: Library,
    space: SpaceInfo,
    xq: np.ndarray,
    k: int,
    filters: Filters,
    collect: Callable[[np.ndarray, np.ndarray, dict[int, SegmentInfo]], list[VideoHit]],
) -> tuple[list[VideoHit], np.ndarray]:
    """Segment hits turned into results by ``collect(D, I, infos)``, widened until ``k`` survive.

    Returns the results (possibly more than ``k``) and the query as a ``[D]`` float32 vector.
    """
    _check_k(k)
    xq = np.ascontiguousarray(np.asarray(xq, dtype=np.float32).reshape(1, -1))
    index = library.vector_index(space)
    n = index.ntotal
    if n == 0:
        return [], xq[0]
    # Several segments of one video may crowd the top: fetch more segments than videos wanted,
    # and widen until k videos survive grouping and filtering or the index is exhausted.
    kk = min(n, max(64, 16 * k))
    while True:
        D, I = _sane(*index.search(xq, kk))
        valid = I[0] >= 0
        infos = library.segment_infos(I[0][valid].tolist())
        hits = collect(D[0], I[0], infos)
        scores = D[0][valid]
        below_cutoff = filters.min_score is not None and scores.size > 0 and float(scores[-1]) < filters.min_score
        # -1 ids: the index has no more to give (IVF widens its probes itself; wrapped codes such
        # as OPQ do not), so asking for more finds no more.
        exhausted = kk >= n or below_cutoff or not valid.all()
        if len(hits) >= k or exhausted:
            return hits, xq[0]
        kk = min(n, kk * 4)


def _moment_overlap(a: VideoHit, b: VideoHit) -> float:
    return temporal_iou((a.start, a.end), (b.start, b.end))


def search_moments(
    library: Library,
    space: SpaceInfo,
    xq: np.ndarray,
    k: int = 10,
    filters: Filters | None = None,
    overlap: float = 0.5,
) -> list[VideoHit]:
    """The ``k`` best moments (stored segments, several per video allowed) for a query vector.

    Unlike :func:`search_vectors`, hits are not grouped per video: each result is one stored
    window (or the whole video, for videos too short to have windows) with its own score. A
    window overlapping a better moment of the same video by more than ``overlap`` (temporal IoU)
    is dropped, so the list does not repeat one moment with shifted edges.

    Raises:
        InputError: ``k < 1``.
    """
    filters = filters or Filters()
    # the whole-video segment of a video that has windows summarizes them; the windows are the moments
    min_windowed = float(space.sampling.get("min_video_for_windows", float("inf")))

    def collect(D: np.ndarray, I: np.ndarray, infos: dict[int, SegmentInfo]) -> list[VideoHit]:
        kept: list[VideoHit] = []
        for score, sid in zip(D.tolist(), I.tolist(), strict=False):
            info = infos.get(sid)
            if sid < 0 or info is None or not filters.accepts(info):
                continue
            if filters.min_score is not None and score < filters.min_score:
                break  # scores arrive in decreasing order
            if info.kind == "video" and (info.duration or 0.0) > min_windowed:
                continue
            hit = VideoHit(
                len(kept) + 1,
                info.path,
                float(score),
                info.start,
                info.end,
                info.duration,
                info.video_id,
                sid,
                info.kind,
            )
            if not any(h.video_id == hit.video_id and _moment_overlap(h, hit) > overlap for h in kept):
                kept.append(hit)
        return kept

    with library.snapshot():  # the index and the rows as of one moment
        return _widening_search(library, space, xq, k, filters, collect)[0][:k]


def moment_vector(library: Library, space: SpaceInfo, video_id: int, start: float, end: float) -> np.ndarray:
    """The stored embedding of a moment of an indexed video ("more like this" without decoding).

    The windows overlapping ``[start, end]`` are averaged, each weighted by its overlap; a video
    without windows (or a span no window overlaps) gives its whole-video embedding.

    Raises:
        InputError: the video has no embedding in this space, or the span is empty.
    """
    if not end > start:
        raise InputError(f"clip span {start:g}-{end:g} s is empty; give end > start")
    windows = library.window_vectors(space.id, [video_id]).get(video_id)
    if windows is not None:
        spans, xb = windows
        w = np.array([max(0.0, min(e, end) - max(s, start)) for s, e in spans], dtype=np.float32)
        if w.sum() > 0:
            v = (w[:, None] * xb).sum(axis=0)
            return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)
    from vidsearch.store.catalog import get_video

    record = get_video(library, video_id)
    xb, found = library.video_embeddings(space.key, [record.path]) if record is not None else (None, [])
    if not found:
        raise InputError(f"video {video_id} has no embedding in space {space.key}; index it first")
    return xb[0]


def windows_rows(library: Library, space: SpaceInfo, video_ids: Sequence[int], xq: np.ndarray) -> dict[int, np.ndarray]:
    """Video id -> float64 ``[W, 3]`` rows ``(start, end, score)`` of its stored windows for query vector ``xq``.

    One SQLite query serves all the videos; videos without windows are left out.
    """
    return {
        vid: window_rows([a for a, _ in spans], [b for _, b in spans], xb, xq)
        for vid, (spans, xb) in library.window_vectors(space.id, [int(v) for v in video_ids]).items()
    }


def windows_scores(
    library: Library, space: SpaceInfo, video_ids: Sequence[int], xq: np.ndarray
) -> dict[int, list[Window]]:
    """:func:`windows_rows` as ``(start, end, score)`` tuples."""
    return {vid: window_list(rows) for vid, rows in windows_rows(library, space, video_ids, xq).items()}


def window_scores(library: Library, space: SpaceInfo, video_id: int, xq: np.ndarray) -> list[Window]:
    """``(start, end, score)`` of every stored window of a video in a space, for query vector ``xq``."""
    return windows_scores(library, space, [video_id], xq).get(int(video_id), [])


def best_spans_for_hits(
    library: Library, space: SpaceInfo, video_ids: Sequence[int], xq: np.ndarray
) -> dict[int, tuple[float, float, float]]:
    """Video id -> best span of each query hit from its stored windows (videos without windows left out)."""
    # the rows go to localization as arrays: a list of tuples between would be converted back
    return {vid: best_span_from_windows(rows) for vid, rows in windows_rows(library, space, video_ids, xq).items()}


def best_span_for_hit(
    library: Library, space: SpaceInfo, video_id: int, xq: np.ndarray
) -> tuple[float, float, float] | None:
    """Best span of a query hit from its stored windows; None when the video has no windows."""
    return best_spans_for_hits(library, space, [video_id], xq).get(int(video_id))


def _refine_spans(library: Library, space: SpaceInfo, hits: list[VideoHit], xq: np.ndarray) -> list[VideoHit]:
    """Give each hit the span :func:`vidsearch.spans.best_span_from_windows` finds over all of its windows.

    Localization scores every stored window of the video (not only the retrieved ones) and can
    narrow or widen the span to where the similarity actually peaks.
    """
    spans = best_spans_for_hits(library, space, [h.video_id for h in hits], xq)
    for hit in hits:
        if hit.video_id in spans:
            hit.start, hit.end, _ = spans[hit.video_id]
            hit.kind = "window"
    return hits


@contextlib.contextmanager
def _one_thread_on_cpu(encoder: Any) -> Iterator[None]:
    """Encode on one torch thread when the encoder runs on the CPU (restored afterwards).

    One caption is too little work to split across threads: a single thread is about as fast on
    an idle machine and 20x faster when another process holds a core. An encoder without a
    ``device`` (the ONNX Runtime text encoder) sets its own threads and must not import torch.
    """
    device = getattr(encoder, "device", None)
    if device is None or getattr(device, "type", "cpu") != "cpu":
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def embed_text(encoder: Any, text: str) -> np.ndarray:
    """The query vector of a caption (encoded on one thread when on the CPU), ``[D]``.

    Raises:
        InputError: empty text.
    """
    check_text(text)
    with _one_thread_on_cpu(encoder):
        return encoder.encode_text([text.strip()])[0]


def encode_video_file(
    encoder: Any, path: Path | str, start: float | None = None, end: float | None = None, reader: str = "auto"
) -> np.ndarray:
    """Embed one video file (or its ``[start, end]`` span, seconds) the way the indexer does.

    The whole file is sampled exactly as the indexer samples a whole-video segment, so a file
    already in the library gets back its own embedding (score ~1.0).

    Raises:
        InputError: the span is empty or outside the video.
        MediaError: the file cannot be decoded.
    """
    from vidsearch.media.span import read_span

    frames = read_span(
        path,
        encoder.num_frames,
        encoder.resolution,
        start,
        end,
        reader=reader,
        antialias=bool(getattr(encoder, "antialias", False)),
    )  # in clip order
    return encoder.encode_video(frames[None])[0]  # [1, T, res, res, 3]
