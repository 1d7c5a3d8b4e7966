"""The library view's API under ``/api/v1/library``: what is indexed, what failed and why, live progress.

``GET /api/v1/library/events`` is a server-sent event stream: the library's counts (and a running
index's progress) are read every second through the use case and sent when they change, with a
comment line now and then so a client that left is noticed. A stream ends when the client leaves,
when the server stops (:attr:`ServeState.stopping`), or after :data:`STREAM_SECONDS` (the browser's
``EventSource`` reconnects by itself), so no stream holds a worker for ever.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from vidsearch.errors import InputError, VidsearchError
from vidsearch.serve.models import ErrorBody
from vidsearch.serve.service import ServeState
from vidsearch.usecases.library_view import VideoRow, library_pulse, library_spaces, library_videos

__all__ = ["router", "POLL_SECONDS", "STREAM_SECONDS"]

router = APIRouter(prefix="/api/v1/library")
_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (400, 401, 403, 404)}
POLL_SECONDS = 1.0  # how often a stream reads the library's counts
KEEPALIVE_SECONDS = 15.0  # a comment line at least this often: a gone client shows up as a failed write
STREAM_SECONDS = 600.0  # a stream's life; EventSource reconnects (after RETRY_MS) and goes on
RETRY_MS = 2000


def _state(request: Request) -> ServeState:
    return request.app.state.serve


@router.get("", responses=_ERRORS, summary="The library: counts, embedding spaces, transcripts, a running index")
def library(request: Request) -> Any:
    """Counts, each embedding space (model and precision), the space searched, and indexing progress."""
    state = _state(request)
    try:
        space = state.space()
    except VidsearchError:  # a --model the library no longer has: the view still shows the rest
        space = None
    return {
        "library": state.library.root.name,
        "searched_space": space.key if space is not None else None,
        "model_state": state.model_state(space),
        "spaces": library_spaces(state.library),
        **library_pulse(state.library),
    }


@router.get("/videos", responses=_ERRORS, summary="Every video of the library with its status; why failed ones failed")
def videos(
    request: Request,
    status: Literal["indexed", "failed"] | None = Query(None, description="Only videos with this status."),
    cursor: str | None = Query(None, max_length=20),
    limit: int = Query(100, ge=1, le=500),
) -> Any:
    """A page of videos of any status; pass ``next_cursor`` back as ``cursor`` for the next one."""
    state = _state(request)
    if cursor is not None and not re.fullmatch(r"[0-9]{1,12}", cursor):
        raise InputError("cursor is not one this server gave out; start again without it")
    rows = library_videos(state.library, status=status, after=int(cursor or 0), limit=limit + 1)
    page = rows[:limit]
    return {
        "videos": [_row(state, r) for r in page],
        "next_cursor": str(page[-1].id) if len(rows) > limit else None,
    }


def _row(state: ServeState, row: VideoRow) -> dict[str, Any]:
    name = state.name(row)  # type: ignore[arg-type]  # the name needs only the path
    reason = row.reason
    if reason:  # the stored reason names the file by its path: the shown name instead
        reason = reason.replace(row.path, name)
    return {
        "id": row.id,
        "name": name,
        "status": row.status,
        "reason": reason,
        "duration": row.duration,
        "updated_at": row.updated_at,
    }


@router.get(
    "/events",
    summary="Server-sent events: the library's counts and a running index's progress, as they change",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(request: Request) -> StreamingResponse:
    """``event: pulse`` with the counts as JSON, first at once, then each time they change."""
    state = _state(request)
    return StreamingResponse(
        _pulses(request, state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _pulses(request: Request, state: ServeState) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last: str | None = None
    quiet_since = started = time.monotonic()
    while not state.stopping.is_set() and time.monotonic() - started < STREAM_SECONDS:
        pulse = await run_in_threadpool(_shared_pulse, request)
        data = json.dumps(pulse, sort_keys=True)
        now = time.monotonic()
        if data != last:
            last, quiet_since = data, now
            yield f"event: pulse\ndata: {data}\n\n"
        elif now - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = now
            yield ": still here\n\n"
        if await request.is_disconnected():
            return
        await _sleep_unless(state, POLL_SECONDS)


class _PulseCache:
    """The last pulse read and when: every open stream shares one read of the library per poll."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = -1e9
        self.pulse: dict[str, Any] = {}


def _shared_pulse(request: Request) -> dict[str, Any]:
    app_state = request.app.state
    cache = getattr(app_state, "library_pulse", None)
    if cache is None:
        cache = app_state.library_pulse = _PulseCache()
    with cache.lock:  # the first stream of a round reads; the others wait for it and share
        if time.monotonic() - cache.at >= POLL_SECONDS * 0.8:
            cache.pulse = library_pulse(_state(request).library)
            cache.at = time.monotonic()
        return cache.pulse


async def _sleep_unless(state: ServeState, seconds: float) -> None:
    """Sleep ``seconds``, waking early when the server stops (it waits for open streams to end)."""
    deadline = time.monotonic() + seconds
    while not state.stopping.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(min(0.1, seconds))
