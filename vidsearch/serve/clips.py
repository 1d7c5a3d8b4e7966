"""Keep the moment: a search result's span as an MP4 download (``/api/v1/moments/{id}/clip.mp4``).

Clips are cut once (:func:`vidsearch.usecases.clips.cut_moment`) and kept in the library's clip
cache (``cache/clips/``, least recently used evicted past its cap), keyed by the file's content
address and the span: concurrent requests for one clip wait for a single cut, a changed file never
gets an old clip. A stream's moment is cut from the stream's recordings (404 when not recorded).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from vidsearch.errors import DiskFullError, InputError
from vidsearch.serve.service import ServeState, parse_moment_id
from vidsearch.usecases.clips import clip_name, cut_moment, is_stream, moment_video

__all__ = ["router", "MAX_CLIP_SECONDS"]

router = APIRouter(prefix="/api/v1")
MAX_CLIP_SECONDS = 600.0  # one download cuts at most this much (re-encoding costs CPU time)
_CHUNK = 1024 * 1024


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def _span(moment: tuple[float, float], start: float | None, end: float | None) -> tuple[float, float]:
    """The span to cut: the moment's, with ``start``/``end`` moved where the client asks."""
    lo = moment[0] if start is None else start
    hi = moment[1] if end is None else end
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0:
        raise InputError("must be finite seconds, not negative", argument="start/end")
    if hi <= lo:
        raise InputError(f"must end after it starts (got {lo:g} to {hi:g} s)", argument="start/end")
    if hi - lo > MAX_CLIP_SECONDS:
        raise InputError(f"asks for {hi - lo:g} s; a clip is at most {MAX_CLIP_SECONDS:g} s", argument="start/end")
    return lo, hi


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


@router.get(
    "/moments/{moment}/clip.mp4",
    summary="The moment as an MP4 download",
    responses={200: {"content": {"video/mp4": {}}}, 400: {}, 404: {}},
)
async def moment_clip(
    request: Request,
    moment: str,
    start: float | None = Query(None, description="Start here instead (seconds; UTC seconds for a stream)."),
    end: float | None = Query(None, description="End here instead."),
) -> Any:
    """The moment's span of its video (or stream recording), starting on the frame at its start."""
    state = _state(request)
    video_id, m_start, m_end = parse_moment_id(moment)
    lo, hi = _span((m_start, m_end), start, end)
    record = moment_video(state.library, video_id)
    if is_stream(record):
        key: tuple[object, ...] = ("clip", record.path, round(lo, 3), round(hi, 3))
    else:
        record = state.servable(video_id)  # the file still the one indexed
        key = ("clip", record.fingerprint, record.size, record.mtime_ns, round(lo, 3), round(hi, 3))

    def make(path: Path) -> None:
        cut_moment(state.library, record, lo, hi, path)

    try:
        handle = await run_in_threadpool(state.clips.open, key, make)
    except OSError as exc:  # the cache's disk is full or read-only
        raise DiskFullError(f"cannot write the clip: {exc.strerror or exc}; free some disk space") from None
    if not is_stream(record) and record.duration:
        hi = min(hi, record.duration)
    name = clip_name(record, lo, hi)
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(os.fstat(handle.fileno()).st_size),
        "Cache-Control": "private, max-age=3600",
    }
    return StreamingResponse(_chunks(handle), media_type="video/mp4", headers=headers)
