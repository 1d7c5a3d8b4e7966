"""``GET /api/v1/videos/{id}/scores``: a query's score over a whole video, for the player's timeline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from vidsearch.errors import InputError
from vidsearch.serve.models import ErrorBody, VideoScores
from vidsearch.serve.service import ServeState, parse_moment_id, parse_video_id

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (400, 401, 403, 404)}


@router.get(
    "/videos/{video_id}/scores",
    response_model=VideoScores,
    responses=_ERRORS,
    summary="A query's score over one whole video, and the spans where it matches",
)
async def video_scores(
    request: Request,
    video_id: str,
    q: str | None = Query(None, max_length=1000, description="The text searched."),
    similar: str | None = Query(None, max_length=40, description="Or: the moment id a 'more like this' started from."),
    min_score: float | None = Query(None, ge=-1, le=1, description="A matching span scores at least this."),
) -> Any:
    """Every stored window's score for the query (the heat strip) and the matching spans (the marks).

    The text's vector is the one the search just made (the server keeps recent ones); nothing is
    decoded.
    """
    from vidsearch.usecases.query import MomentRef, QueryFilters
    from vidsearch.usecases.query import Query as SearchQuery
    from vidsearch.usecases.timeline import video_timeline

    state: ServeState = request.app.state.serve
    vid = parse_video_id(video_id)
    if (q is None) == (similar is None):
        raise InputError("give exactly one of q (a text) or similar (a moment id)")
    if q is not None and not q.strip():
        raise InputError("q is empty; give the text that was searched")
    moment = MomentRef(*parse_moment_id(similar)) if similar is not None else None
    query = SearchQuery(text=q, moment=moment, filters=QueryFilters(min_score=min_score))
    found = await run_in_threadpool(video_timeline, state.library, vid, query, state, state.space())
    return {
        "video_id": found.video_id,
        "duration": found.duration,
        "model": found.space,
        "low": round(found.low, 6),
        "high": round(found.high, 6),
        "windows": [_span(*w) for w in found.windows],
        "spans": [_span(s.start, s.end, s.score) for s in found.spans],
    }


def _span(start: float, end: float, score: float) -> dict[str, float]:
    return {"start": round(start, 3), "end": round(end, 3), "score": round(score, 6)}
