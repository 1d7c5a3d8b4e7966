"""Every moment of one video for a query: its score along the whole video and the spans that match.

The player's heat strip and span marks come from here. Nothing is decoded and no video model
runs: the query's vector (a text's comes from the embedder's cache when the search just ran) is
scored against the windows the index run stored for the video.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidsearch.errors import InputError
from vidsearch.search import window_scores
from vidsearch.spans import Span, Window, localize_windows
from vidsearch.store.library import Library, SpaceInfo
from vidsearch.usecases.encoders import QueryEmbedder
from vidsearch.usecases.query import Query, query_vector
from vidsearch.usecases.videos import NotFound, indexed_video

__all__ = ["MATCH_SHARE", "MAX_SPANS", "VideoTimeline", "video_timeline", "matching_spans"]

# A span matches when its score is at least this share of the way from the video's lowest
# window score to the best span's score: the peaks people would point at, not every ripple.
MATCH_SHARE = 0.5
MAX_SPANS = 20  # marks on one timeline, at most (a long video's curve has many small peaks)


@dataclass(frozen=True)
class VideoTimeline:
    """A query's scores over one video: each stored window, and the matching spans in time order."""

    video_id: int
    duration: float | None
    windows: list[Window]  # (start s, end s, score), in time order
    spans: list[Span]  # the matching spans, in time order
    low: float  # the lowest and highest window score (the heat strip's scale)
    high: float
    space: str  # the space's key


def matching_spans(windows: list[Window], min_score: float | None = None) -> list[Span]:
    """The spans of ``windows`` that match (see :data:`MATCH_SHARE`), in time order.

    Args:
        windows: ``(start, end, score)`` of each window of one video.
        min_score: with it, a span must also score at least this much.
    """
    if not windows:
        return []
    if len(windows) == 1:
        found = [Span(*windows[0])]
    else:
        found = localize_windows(windows, top=MAX_SPANS)
        if not found:  # a flat curve has no peak: its best window is where it matches most
            found = [Span(*max(windows, key=lambda w: w[2]))]
    # a span's score is the mean of the curve over it, so it is measured against the best span's
    lo = min(w[2] for w in windows)
    cut = lo + MATCH_SHARE * (max(s.score for s in found) - lo)
    if min_score is not None:
        cut = max(cut, min_score)
    return sorted((s for s in found if s.score >= cut - 1e-9), key=lambda s: s.start)


def video_timeline(
    library: Library, video_id: int, query: Query, embedder: QueryEmbedder, space: SpaceInfo | None = None
) -> VideoTimeline:
    """The query's timeline over one indexed video.

    Args:
        library: an open library.
        video_id: the video.
        query: a text or a stored moment (an uploaded file is not kept after its search);
            ``query.filters.min_score`` raises the bar of a matching span.
        embedder: turns a text into a vector of the space.
        space: the space searched; None: the most recently indexed one.

    Raises:
        InputError: neither a text nor a moment.
        NotFound: no such indexed video, or it has no vector in the space.
    """
    if query.file is not None or (query.text is None) == (query.moment is None):
        raise InputError("give a query text or a moment of the library", argument="q/similar")
    record = indexed_video(library, video_id)
    if space is None:
        spaces = library.spaces()
        if not spaces:
            raise NotFound(f"video {video_id} has no vectors yet")
        space = spaces[0]
    xq = query_vector(library, space, query, embedder)
    windows = sorted(window_scores(library, space, video_id, xq))
    if not windows:  # a short video is one whole-video segment
        xb, found = library.video_embeddings(space.key, [record.path])
        if not found:
            raise NotFound(f"video {video_id} has no vector in space {space.key}")
        windows = [(0.0, float(record.duration or 0.0), float(xb[0] @ xq))]
    scores = [w[2] for w in windows]
    return VideoTimeline(
        video_id=record.id,
        duration=record.duration,
        windows=windows,
        spans=matching_spans(windows, query.filters.min_score),
        low=min(scores),
        high=max(scores),
        space=space.key,
    )
