"""Keep the moment: a search result's span as an MP4 download (``/api/v1/moments/{id}/clip.mp4``).

Clips are cut once (:func:`vidsearch.usecases.clips.cut_moment`) and kept in the library's clip
cache (``cache/clips/``, least recently used evicted past its cap), keyed by the file's content
address and the span: concurrent requests for one clip wait for a single cut, a changed file never
gets an old clip. A stream's moment is cut from the stream's recordings (404 when not recorded).
The clip answers a single-range ``Range`` request (206) too: the page's ``<video>`` plays and seeks
a stream's moment from it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from vidsearch.errors import DiskFullError, InputError
from vidsearch.serve.service import ServeState, parse_moment_id
from vidsearch.usecases.clips import MAX_CLIP_SECONDS, clip_name, cut_moment, is_stream, moment_video

__all__ = ["router", "MAX_CLIP_SECONDS"]

router = APIRouter(prefix="/api/v1")
_CHUNK = 1024 * 1024
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


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


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The bytes ``[first, last]`` one ``Range`` header asks for; None: send the whole clip.

    Several ranges, or a header this does not read, get the whole clip (HTTP lets a server ignore
    Range). Raises ValueError when the range lies past the end (the answer is a 416).
    """
    m = _RANGE.match((header or "").strip())
    if m is None or not (m.group(1) or m.group(2)):
        return None
    if not m.group(1):  # bytes=-N: the last N bytes
        return max(0, size - int(m.group(2))), size - 1
    first = int(m.group(1))
    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if first >= size or last < first:
        raise ValueError(f"bytes {first}-{last} lie past the clip's {size} bytes")
    return first, last


def _chunks(handle: BinaryIO, first: int = 0, length: int | None = None) -> Iterator[bytes]:
    with handle:
        handle.seek(first)
        left = math.inf if length is None else length
        while left > 0 and (chunk := handle.read(int(min(_CHUNK, left)))):
            left -= len(chunk)
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
    size = os.fstat(handle.fileno()).st_size
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
    }
    try:
        wanted = _byte_range(request.headers.get("range"), size)
    except ValueError:
        handle.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(handle), media_type="video/mp4", headers=headers)
    first, last = wanted
    headers.update({"Content-Length": str(last - first + 1), "Content-Range": f"bytes {first}-{last}/{size}"})
    return StreamingResponse(
        _chunks(handle, first, last - first + 1), status_code=206, media_type="video/mp4", headers=headers
    )
