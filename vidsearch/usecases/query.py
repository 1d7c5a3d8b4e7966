"""The search use case: one :func:`search` for every kind of query and every front end.

``vidsearch query`` and the web server's search and "more like this" all build a :class:`Query`
and call :func:`search`, which

1. checks the query (before any model loads),
2. turns the user's filters into the engine's (labels, folders and dates become a set of videos),
3. embeds the query in the space (text, a file or an image, or a stored moment: no decoding),
4. asks every retriever of :func:`retrievers_for` and fuses their lists (:func:`vidsearch.retrieval.fuse`),
5. re-ranks a text query's best videos with the model's ITM head when asked (:mod:`vidsearch.rerank`),
6. drops the source moment of a "more like this" query and the moments outside the date range,
7. orders the results (by score, date or name; :mod:`vidsearch.usecases.ordering`) and cuts the
   requested page, each hit with its relative match.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from vidsearch.errors import InputError
from vidsearch.retrieval import GroupBy, RetrievalQuery, Retriever, VectorRetriever, fuse
from vidsearch.retrieval.transcripts import TranscriptRetriever
from vidsearch.search import Filters, VideoHit, check_text, moment_vector
from vidsearch.store import sources as stored_sources
from vidsearch.store.library import Library, SpaceInfo
from vidsearch.store.transcripts import has_transcripts
from vidsearch.usecases.encoders import QueryEmbedder
from vidsearch.usecases.ordering import (
    SORT_POOL,
    SORTS,
    Sort,
    dated_videos,
    relative_matches,
    sort_hits,
    utc_seconds,
    within_dates,
)
from vidsearch.usecases.videos import indexed_video, indexed_videos, videos_where

__all__ = [
    "MODES",
    "Mode",
    "MomentRef",
    "QueryFilters",
    "Query",
    "SearchPage",
    "check_query",
    "retrievers_for",
    "search",
    "query_vector",
]

# A hit of the source video sharing more than this share of the shorter of the two spans with the
# source moment is the moment itself (a shorter window inside it, or its video's localized span).
SAME_MOMENT_SHARE = 0.5

Mode = Literal["seen", "said", "both"]
# What a query searches: what is seen (the vectors), what is said (the transcripts), or both, fused.
MODES: tuple[Mode, ...] = ("seen", "said", "both")


@dataclass(frozen=True)
class MomentRef:
    """A moment of an indexed video ("more like this"): its video id and span (seconds)."""

    video_id: int
    start: float
    end: float


@dataclass(frozen=True)
class QueryFilters:
    """Every filter a user may set; ``None`` leaves it off."""

    min_score: float | None = None  # the vector retriever's cosine similarity
    path_glob: str | None = None  # matched against the full path; a pattern without "/" against the file name
    folder: str | None = None  # relative to the folder holding every indexed video (whole folder names)
    min_duration: float | None = None
    max_duration: float | None = None
    label: str | None = None  # recognized by `vidsearch enrich recognize`
    label_set: str | None = None  # with label: only this label set's
    indexed_after: datetime | None = None
    # when the moment happened (a stream moment's wall-clock time, else its file's modification time)
    date_from: datetime | None = None
    date_to: datetime | None = None
    # a stream's name, or a path/URL prefix (a folder, rtsp://cam1, ...) of the videos to search
    source: str | None = None


@dataclass(frozen=True)
class Query:
    """One search: exactly one of ``text``, ``file`` (a video clip or an image) and ``moment``."""

    text: str | None = None
    file: Path | None = None  # a clip or an image (its frame repeated as a still clip)
    start: float | None = None  # with file: the span of it to search with (seconds)
    end: float | None = None
    moment: MomentRef | None = None
    k: int = 10  # results on the page
    offset: int = 0  # results skipped before the page (paging)
    group_by: GroupBy = "video"
    filters: QueryFilters = field(default_factory=QueryFilters)
    rerank_k: int = 0  # text queries by video: re-rank this many best candidates by ITM (0: none)
    mode: Mode | None = None  # None: both when the library has transcripts, else seen
    said: str | None = None  # an exact spoken phrase for the transcripts (then text is optional)
    sort: Sort = "score"  # score (best first), date (newest first) or name


@dataclass
class SearchPage:
    """A page of ranked results."""

    hits: list[VideoHit]  # ranked from offset + 1
    more: bool  # whether results follow this page
    space: SpaceInfo | None  # the space searched; None: the library is empty
    matches: list[float] = field(default_factory=list)  # each hit's relative match (ordering.relative_matches)
    # video id -> the stream's name, for hits of live streams (their times are UTC seconds)
    streams: dict[int, str] = field(default_factory=dict)


def check_query(query: Query) -> None:
    """Check a query without touching the library or a model.

    Raises:
        InputError: not exactly one of text, file and moment; empty text; a span without a file;
            a label set without a label; ``k < 1``; a negative offset.
    """
    given = sum(x is not None for x in (query.text, query.file, query.moment))
    if query.mode is not None and query.mode not in MODES:
        raise InputError(f"{query.mode!r} is not a mode; use one of: {', '.join(MODES)}", argument="mode")
    if query.said is not None:
        if not query.said.strip():
            raise InputError('needs the words to find, e.g. "the bridge is closed"', argument="said")
        if query.mode == "seen":
            raise InputError("searches what is said; it does not apply to a search of what is seen", argument="said")
    if given != 1 and not (given == 0 and query.said is not None):
        raise InputError("give exactly one of a query text, a clip or image file, or a moment of the library")
    if query.mode == "said" and query.said is None and query.text is None:
        raise InputError(
            "said searches transcripts, which need words: give a query text or a spoken phrase", argument="mode"
        )
    if query.text is not None:
        check_text(query.text)
    if query.file is None and (query.start is not None or query.end is not None):
        raise InputError(
            "only apply to queries by a video clip",
            argument="start/end",
            hint="give the clip to search with",
            remedy="span_needs_video",
        )
    if query.filters.label_set is not None and query.filters.label is None:
        raise InputError(
            "a label set only applies together with a label", hint="give a label as well", remedy="label_with_set"
        )
    if query.k < 1:
        raise InputError(f"-k must be at least 1 (got {query.k})")
    if query.offset < 0:
        raise InputError(f"the offset must be 0 or more (got {query.offset})")
    if query.rerank_k and (query.text is None or query.group_by != "video"):
        raise InputError("re-ranking applies to text queries with one result per video")
    if query.sort not in SORTS:
        raise InputError(f"{query.sort!r} is not an order; use one of: {', '.join(SORTS)}", argument="sort")
    since, until = query.filters.date_from, query.filters.date_to
    if since is not None and until is not None and _aware(since) > _aware(until):
        raise InputError("the date range ends before it starts", argument="date_from/date_to")


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def query_mode(library: Library, query: Query) -> Mode:
    """The mode a query runs in: the one asked for, else ``said`` for a bare ``--said``, else
    ``both`` when the library has transcripts and ``seen`` when it has none."""
    if query.mode is not None:
        return query.mode
    if query.said is not None and query.text is None and query.file is None and query.moment is None:
        return "said"
    with library.session() as s:
        return "both" if has_transcripts(s) else "seen"


def retrievers_for(library: Library, space: SpaceInfo, mode: Mode = "seen", said: str | None = None) -> list[Retriever]:
    """The retrievers a search asks, in priority order (see :func:`vidsearch.retrieval.fuse`).

    ``seen``: the vectors; ``said``: the transcripts; ``both``: the two, fused. ``said``: the
    exact phrase the transcripts search instead of the query's text.
    """
    retrievers: list[Retriever] = []
    if mode in ("seen", "both"):
        retrievers.append(VectorRetriever(library, space))
    if mode in ("said", "both"):
        retrievers.append(TranscriptRetriever(library, said))
    return retrievers


def search(library: Library, query: Query, embedder: QueryEmbedder, space: SpaceInfo | None = None) -> SearchPage:
    """Rank the library's videos (or moments) for ``query`` and return the requested page.

    Args:
        library: an open library.
        query: what to find, its filters, grouping and page.
        embedder: turns the query into a vector of the space.
        space: the space to search (see :func:`vidsearch.usecases.resolve_space`); None: the
            most recently indexed one, and an empty page (``space`` None) for an empty library.

    Raises:
        InputError: a bad query (see :func:`check_query`), or a label no label set has.
        NotFound: a moment of a video the library does not have.
    """
    check_query(query)
    if space is None:
        spaces = library.spaces()
        if not spaces:
            return SearchPage([], False, None)
        space = spaces[0]
    filters = _engine_filters(library, space, query.filters)
    mode = query_mode(library, query)
    # A said-only search needs no model: nothing is embedded, so nothing loads.
    needs_vector = mode != "said" and (query.text is not None or query.file is not None or query.moment is not None)
    vector = query_vector(library, space, query, embedder) if needs_vector else None
    # One more than the page says whether a next page exists. A moment query drops its source:
    # one video, or (by moments) the source and at most one window overlapping it by more than half.
    want = query.offset + query.k + 1 + (2 if query.moment is not None else 0)
    dated = query.filters.date_from is not None or query.filters.date_to is not None
    # A date order or range works on a pool of the best results. (The match scale is not widened:
    # a page of MATCH_DEPTH - 1 results, the web page's, already retrieves its depth.)
    want = max(want, query.rerank_k, SORT_POOL if dated or query.sort != "score" else 0)
    asked = RetrievalQuery(text=query.text, vector=vector, k=want, group_by=query.group_by, filters=filters)
    lists = {r.name: r.retrieve(asked) for r in retrievers_for(library, space, mode, query.said)}
    hits = fuse(lists, want, query.group_by)  # one retriever's list passes through in its order
    if query.rerank_k:
        hits = embedder.rerank(space, query.text or "", hits, query.rerank_k)
    if query.moment is not None:
        hits = [h for h in hits if not _is_source(h, query.moment)]
    records = indexed_videos(library, [h.video_id for h in hits]) if dated or query.sort == "date" else {}
    if dated:  # a stream passes the video filter whatever its dates: its moments are checked here
        hits = within_dates(hits, records, query.filters.date_from, query.filters.date_to)
    matches = relative_matches(hits)
    order = sort_hits(hits, records, query.sort)
    end = query.offset + query.k
    shown = order[query.offset : end]
    page = [dataclasses.replace(hits[i], rank=rank) for rank, i in enumerate(shown, query.offset + 1)]
    return SearchPage(page, len(hits) > end, space, [matches[i] for i in shown], _streams_of(library, page))


def _streams_of(library: Library, hits: list[VideoHit]) -> dict[int, str]:
    """The stream names of the hits that are live streams (a stream without a recorded name: its URL)."""
    if not hits:
        return {}
    with library.session() as s:
        streams = stored_sources.stream_video_ids(s, [h.video_id for h in hits])
        live = {h.video_id: h.path for h in hits if h.video_id in streams}
        names = stored_sources.names_by_uri(s, sorted(set(live.values())))
    return {vid: names.get(uri, uri) for vid, uri in live.items()}


def _is_source(hit: VideoHit, moment: MomentRef) -> bool:
    if hit.video_id != moment.video_id:
        return False
    shared = min(hit.end, moment.end) - max(hit.start, moment.start)
    shorter = min(hit.end - hit.start, moment.end - moment.start)
    return shorter > 0 and shared / shorter > SAME_MOMENT_SHARE


def _engine_filters(library: Library, space: SpaceInfo, wanted: QueryFilters) -> Filters:
    """The engine's filters: labels, folders and dates become the set of videos that pass them."""
    ids: set[int] | None = None
    if wanted.label is not None:
        from vidsearch.enrich.recognize import videos_with_label

        ids = videos_with_label(library, wanted.label, label_set=wanted.label_set, space=space)
    if wanted.folder or wanted.indexed_after is not None:
        found = videos_where(library, wanted.folder, wanted.indexed_after)
        ids = found if ids is None else ids & found
    if wanted.source is not None:
        with library.session() as s:
            found = stored_sources.video_ids_from_source(s, wanted.source)
        ids = found if ids is None else ids & found
    streams: set[int] = set()
    if wanted.date_from is not None or wanted.date_to is not None:
        found = dated_videos(library, wanted.date_from, wanted.date_to)
        ids = found if ids is None else ids & found
        with library.session() as s:
            streams = stored_sources.stream_video_ids(s)  # their windows are dated one by one
    return Filters(
        min_score=wanted.min_score,
        path_glob=wanted.path_glob,
        min_duration=wanted.min_duration,
        max_duration=wanted.max_duration,
        video_ids=frozenset(ids) if ids is not None else None,
        wall_clock=frozenset(streams),
        since=utc_seconds(wanted.date_from) if wanted.date_from is not None else None,
        until=utc_seconds(wanted.date_to) if wanted.date_to is not None else None,
    )


def query_vector(library: Library, space: SpaceInfo, query: Query, embedder: QueryEmbedder) -> np.ndarray:
    """The query's vector in ``space``: a stored moment's (no decoding), a file's, or a text's.

    Raises:
        NotFound: a moment of a video the library does not have.
    """
    if query.moment is not None:
        m = query.moment
        indexed_video(library, m.video_id)  # NotFound for a video that is not (or no longer) indexed
        return moment_vector(library, space, m.video_id, m.start, m.end)
    if query.file is not None:
        return embedder.embed_file(space, query.file, query.start, query.end)
    return embedder.embed_text(space, query.text or "")
