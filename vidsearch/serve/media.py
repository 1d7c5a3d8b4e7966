"""Files for the page: the video by library id (HTTP Range), thumbnails and hover-scrub strips.

Only ids reach the library: a path from the client is never looked up, and a file is served only
while it is still the one that was indexed (see :meth:`ServeState.servable`). URLs carry the
file's content address (``?v=<fingerprint>``): with it the response is ``immutable``; a stale
address is a 404, so a browser cache can never show an old file's frames for a new file.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, Response

from vidsearch.errors import InputError
from vidsearch.serve.frames import make_strip, make_thumbnail, quantize
from vidsearch.serve.service import NotFound, ServeState, parse_moment_id, parse_video_id

__all__ = ["router", "THUMB_WIDTHS"]

router = APIRouter()
THUMB_WIDTHS = (160, 320, 480, 640)
IMMUTABLE = "private, max-age=31536000, immutable"
_JPG = re.compile(r"^([0-9]{1,9})\.jpg$")
_EXTRA_TYPES = {".mkv": "video/x-matroska", ".webm": "video/webm", ".m4v": "video/mp4", ".mov": "video/quicktime"}


def _state(request: Request) -> ServeState:
    return request.app.state.serve


def _cache_control(state: ServeState, record: Any, v: str | None) -> str:
    if v is None:
        return "no-cache"
    if v != state.version(record):
        raise NotFound(f"this link to video {record.id} is stale (the file changed); search again")
    return IMMUTABLE


@router.get("/media/{video_id}", summary="The video file (HTTP Range)")
@router.head("/media/{video_id}", include_in_schema=False)
def media(request: Request, video_id: str, v: str | None = Query(None, max_length=64)) -> Any:
    """The indexed file, by library id; answers Range requests (206, 416 past the end)."""
    state = _state(request)
    record = state.servable(parse_video_id(video_id))
    suffix = "." + record.path.rsplit(".", 1)[-1].lower() if "." in record.path else ""
    media_type = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(record.path)[0] or "application/octet-stream"
    return FileResponse(record.path, media_type=media_type, headers={"Cache-Control": _cache_control(state, record, v)})


@router.get("/thumbs/{video_id}/{name}", summary="A representative frame near a time (JPEG)")
def thumbnail(
    request: Request, video_id: str, name: str, w: int = Query(320), v: str | None = Query(None, max_length=64)
) -> Any:
    """A still at ``<ms>.jpg`` (the best frame within a second after it: no black fade-in)."""
    state = _state(request)
    record = state.servable(parse_video_id(video_id))
    m = _JPG.match(name)
    if not m:
        raise NotFound(f"no thumbnail {name[:40]!r}; thumbnails are /thumbs/<video id>/<ms>.jpg")
    if w not in THUMB_WIDTHS:
        raise InputError(f"w must be one of {', '.join(map(str, THUMB_WIDTHS))} (got {w})")
    control = _cache_control(state, record, v)
    last = max(0.0, (record.duration or 0.0) - 0.05)
    t = min(quantize(int(m.group(1)) / 1000.0, up=True), quantize(last))
    image = state.frames.get(
        ("thumb", record.fingerprint, record.size, record.mtime_ns, t, w),
        lambda: make_thumbnail(record.path, t, w),
    )
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": control})


@router.get("/strips/{name}", summary="A row of frames across a moment, for hover-scrubbing (JPEG)")
def strip(request: Request, name: str, v: str | None = Query(None, max_length=64)) -> Any:
    """``<moment id>.jpg``: ``strip_frames`` tiles, left to right across the moment's span."""
    state = _state(request)
    if not name.endswith(".jpg"):
        raise NotFound(f"no strip {name[:40]!r}; strips are /strips/<moment id>.jpg")
    video_id, start, end = parse_moment_id(name[:-4])
    record = state.servable(video_id)
    control = _cache_control(state, record, v)
    duration = record.duration or end
    start, end = min(start, duration), min(end, duration)
    if end <= start:
        raise NotFound(f"moment {name[:-4]} lies past the end of video {video_id}")
    start, end = quantize(start), min(quantize(end, up=True), duration)
    n, width = state.config.strip_frames, state.config.strip_width
    key = ("strip", record.fingerprint, record.size, record.mtime_ns, start, end, n, width)
    image = state.frames.get(key, lambda: make_strip(record.path, start, end, n, width))
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": control})
