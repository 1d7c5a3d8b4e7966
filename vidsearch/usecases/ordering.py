"""How a search's results are ordered, dated and scored for people: sorting, date ranges, relative match.

A moment's *date* is when it happened as far as the library knows: the wall-clock start of a
watched stream's moment (stream segment times are UTC seconds), else the modification time of
its file (the time a camera or phone wrote it).

Raw similarity scores (cosines like 0.21 or -0.24) mean little to people and differ between
models, so each result also gets a *relative match*: where its score sits between the score of
the search's best result (1.0) and that of its :data:`MATCH_DEPTH`-th (0.0; the last one
retrieved when a search retrieves fewer). It is relative to this search, not a probability;
scores of different retrievers (cosines, BM25) are scaled apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Literal

from vidsearch.search import VideoHit
from vidsearch.store import catalog
from vidsearch.store.catalog import VideoRecord
from vidsearch.store.library import Library

__all__ = [
    "SORTS",
    "Sort",
    "SORT_POOL",
    "MATCH_DEPTH",
    "moment_time",
    "utc_seconds",
    "dated_videos",
    "within_dates",
    "sort_hits",
    "relative_matches",
]

Sort = Literal["score", "date", "name"]
# score: best first; date: newest first; name: by the video's path, then by time in it.
SORTS: tuple[Sort, ...] = ("score", "date", "name")
# Ordering by date or name reorders this many best results: ordering the whole library would
# mean scoring every video, and a result that ranks below this is no match people look for.
SORT_POOL = 200
# The relative match runs from the best result's score down to this rank's.
MATCH_DEPTH = 25


def moment_time(record: VideoRecord, start: float) -> float:
    """When a moment happened (UTC seconds): a stream moment's start, else its file's modification time."""
    return float(start) if record.live else record.mtime_ns / 1e9


def utc_seconds(when: datetime) -> float:
    """A time as UTC seconds (a naive time is taken as UTC, like every time the library stores)."""
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def dated_videos(library: Library, since: datetime | None, until: datetime | None) -> set[int]:
    """The videos that may hold moments in ``[since, until]``: files modified then, and every stream."""
    return catalog.video_ids_modified(
        library, utc_seconds(since) if since else None, utc_seconds(until) if until else None
    )


def within_dates(
    hits: Sequence[VideoHit], records: Mapping[int, VideoRecord], since: datetime | None, until: datetime | None
) -> list[VideoHit]:
    """The hits whose moment happened in ``[since, until]`` (a stream's moments are checked one by one)."""
    lo = utc_seconds(since) if since else float("-inf")
    hi = utc_seconds(until) if until else float("inf")
    out = []
    for h in hits:
        rec = records.get(h.video_id)
        if rec is not None and lo <= moment_time(rec, h.start) <= hi:
            out.append(h)
    return out


def sort_hits(hits: Sequence[VideoHit], records: Mapping[int, VideoRecord], sort: Sort) -> list[int]:
    """The order (indices into ``hits``) for ``sort``; equal keys keep the ranking's order.

    ``records`` (video id -> record) is needed by the date order only.
    """
    order = list(range(len(hits)))
    if sort == "score":
        return order

    def date_key(i: int) -> float:
        rec = records.get(hits[i].video_id)
        return -moment_time(rec, hits[i].start) if rec is not None else float("inf")

    def name_key(i: int) -> tuple[str, float]:
        return (hits[i].path.casefold(), hits[i].start)

    return sorted(order, key=date_key) if sort == "date" else sorted(order, key=name_key)


def relative_matches(hits: Sequence[VideoHit], depth: int = MATCH_DEPTH) -> list[float]:
    """Each hit's relative match in [0, 1] (see the module docstring), in the order of ``hits`` (ranked).

    A hit's scale is that of the retriever whose score it shows (``matched[0]``); a retriever
    with a single result in the top ``depth`` (or equal scores there) gives 1.0 to the hits
    scoring that much and 0.0 to those below, and one with none there gives its hits 0.0 (they
    all rank below the reference).
    """
    scales: dict[str, tuple[float, float]] = {}
    for h in hits[:depth]:
        kind = h.matched[0] if h.matched else ""
        lo, hi = scales.get(kind, (h.score, h.score))
        scales[kind] = (min(lo, h.score), max(hi, h.score))
    out = []
    for h in hits:
        scale = scales.get(h.matched[0] if h.matched else "")
        if scale is None:
            out.append(0.0)
            continue
        lo, hi = scale
        if hi - lo <= 1e-9:  # one score on the scale: at it (or above) is the best, below is the bottom
            out.append(1.0 if h.score >= hi - 1e-9 else 0.0)
        else:
            out.append(min(1.0, max(0.0, (h.score - lo) / (hi - lo))))
    return out
