"""The streams view's API: watched streams' status and latest frame, their alerts and clips, live events.

``vidsearch watch`` writes a status file and a latest frame per stream
(:mod:`vidsearch.indexer.stream_status`) and an alert row per event with a clip
(:mod:`vidsearch.store.alerts`); this router only reads them. ``/api/v1/streams/events`` pushes
changes as server-sent events: the server polls the files and the table every
:data:`POLL_SECONDS` (they are written by another process, which cannot notify this one) and
sends what changed, with heartbeat comments between; the stream ends when the client goes away
or the server stops (sse-starlette watches uvicorn's exit).

Paths: a frame is looked up by the stream's name among the status files found under the
recordings root, and a clip by its alert's id; the clip's stored path must resolve inside the
library. Nothing from the client is ever joined to a path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import mimetypes
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse

from vidsearch.errors import InputError, VidsearchError
from vidsearch.indexer.stream_status import (
    FRAME_FILE,
    StreamStatus,
    is_stale,
    read_statuses,
)
from vidsearch.media.recorder import RECORDINGS_DIR
from vidsearch.media.uri import redact_uri
from vidsearch.serve.service import NotFound, ServeState
from vidsearch.usecases.alerts import StoredAlert, find_alert, recent_alerts

__all__ = ["router", "POLL_SECONDS", "HEARTBEAT_SECONDS"]

LOG = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")
POLL_SECONDS = 1.0  # how often an event stream looks for changes
HEARTBEAT_SECONDS = 10  # a comment line this often keeps proxies and the browser from closing an idle stream
EVENT_ALERTS = 50  # newest alerts an event stream compares between polls
NO_STORE = {"Cache-Control": "no-store"}
_CLIP_TYPES = {".mkv": "video/x-matroska", ".mp4": "video/mp4", ".webm": "video/webm"}


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def _recordings(state: ServeState) -> Path:
    return Path(state.library.root, RECORDINGS_DIR)


def _stream_json(status: StreamStatus, now: float) -> dict[str, Any]:
    stale = is_stale(status, now)
    return {
        "name": status.name,
        "uri": status.uri,
        "state": status.state,
        "stale": stale,
        # a watch is running for it: fresh, and not a stream the watch has finished with
        "running": not stale and status.state not in ("stopped", "failed"),
        "last_window": status.last_window,
        "windows": status.windows,
        "drops": status.drops,
        "gaps": status.gaps,
        "error": status.error,
        "updated_at": status.updated_at,
        "frame_url": None
        if status.frame_at is None
        else f"/api/v1/streams/{quote(status.name, safe='')}/frame.jpg?at={status.frame_at:.3f}",
    }


def _alert_json(alert: StoredAlert) -> dict[str, Any]:
    return {
        "id": alert.key,
        "stream": alert.stream,
        "uri": redact_uri(alert.uri),
        "query": alert.query,
        "kind": alert.kind,
        "threshold": alert.threshold,
        "start": alert.start,
        "end": alert.end,
        "ongoing": alert.end is None,
        "score": alert.score,
        "peak": alert.peak,
        "peak_time": alert.peak_time,
        "clip_url": f"/api/v1/alerts/{quote(alert.key, safe='')}/clip.mp4" if alert.clip else None,
    }


def _streams(state: ServeState) -> list[dict[str, Any]]:
    now = time.time()
    return [_stream_json(status, now) for status, _ in read_statuses(_recordings(state))]


def parse_since(text: str | None) -> float | None:
    """``since`` as UTC seconds: a number of seconds since the epoch, or an ISO 8601 time.

    Raises:
        InputError: anything else.
    """
    if text is None or not text.strip():
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise InputError(f"since {text[:40]!r} is not a time; give a finite number of seconds since the epoch")
        return seconds
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"since {text[:40]!r} is not a time; give seconds since the epoch or ISO 8601 (2026-12-07T10:00:00Z)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@router.get("/streams", summary="Watched streams: status, counts, latest frame")
def streams(request: Request) -> Any:
    """Each stream a ``vidsearch watch`` of this library has written a status for.

    ``stale`` is true when the status has not been rewritten lately: no watch is running for it.
    """
    return {"streams": _streams(_state(request)), "now": time.time()}


@router.get("/streams/{name:path}/frame.jpg", summary="A stream's latest frame (JPEG)")
def stream_frame(request: Request, name: str) -> Any:
    """The newest frame the watch stored for stream ``name`` (rewritten every few seconds)."""
    for status, folder in read_statuses(_recordings(_state(request))):
        frame = folder / FRAME_FILE
        if status.name == name and frame.is_file():
            return FileResponse(frame, media_type="image/jpeg", headers=NO_STORE)
    raise NotFound(f"no frame of a stream named {name[:80]!r}; GET /api/v1/streams lists them")


@router.get("/alerts", summary="Recent alerts of watched streams, newest first")
def alerts(
    request: Request,
    stream: str | None = Query(None, max_length=500, description="Only this stream (its name)."),
    since: str | None = Query(None, max_length=64, description="Started at or after: epoch seconds or ISO 8601."),
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Alerts as ``vidsearch watch`` stored them (ongoing ones have no ``end`` yet)."""
    state = _state(request)
    found = recent_alerts(state.library, stream=stream or None, since=parse_since(since), limit=limit)
    return {"alerts": [_alert_json(a) for a in found]}


@router.get("/alerts/{key:path}/clip.mp4", summary="An alert's clip (HTTP Range)")
@router.head("/alerts/{key:path}/clip.mp4", include_in_schema=False)
def alert_clip(request: Request, key: str) -> Any:
    """The clip cut around alert ``key`` (pre- and post-roll); 404 once retention deleted it."""
    state = _state(request)
    alert = find_alert(state.library, key)
    if alert is None:
        raise NotFound(f"no alert {key[:80]!r}; it may have been deleted with its stream's old recordings")
    if not alert.clip:
        raise NotFound(f"alert {key[:80]!r} has no clip (yet): it is cut once the event ends")
    root = Path(state.library.root).resolve()
    path = (root / alert.clip).resolve()
    # a row naming a file outside the library (edited, or a bug) is never served
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"the clip of alert {key[:80]!r} is gone (deleted with the recordings it came from)")
    media_type = _CLIP_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "video/mp4"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


def _snapshot(state: ServeState) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return _streams(state), [_alert_json(a) for a in recent_alerts(state.library, limit=EVENT_ALERTS)]


def _event(kind: str, data: Any) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data, ensure_ascii=False)}


async def _changes(state: ServeState) -> AsyncIterator[dict[str, str]]:
    """Server-sent events: every stream at first, then what changed; ``ready`` after the first look.

    Events: ``stream`` (a stream's status, when anything but its heartbeat time changed),
    ``alert`` (a new alert), ``alert_end`` (an alert that ended or got its clip), ``ready``.
    """
    shown_streams: dict[str, dict[str, Any]] = {}
    shown_alerts: dict[str, dict[str, Any]] = {}
    first = True
    while True:
        try:
            streams_now, alerts_now = await run_in_threadpool(_snapshot, state)
        except (VidsearchError, OSError) as exc:  # a busy or briefly unreadable library: look again
            LOG.warning("streams events: %s", exc)
            await asyncio.sleep(POLL_SECONDS)
            continue
        for s in streams_now:
            key = {k: v for k, v in s.items() if k != "updated_at"}
            if shown_streams.get(s["name"]) != key:
                shown_streams[s["name"]] = key
                yield _event("stream", s)
        for a in reversed(alerts_now):  # oldest first, as they happened
            before = shown_alerts.get(a["id"])
            if not first and before != a:
                yield _event("alert" if before is None else "alert_end", a)
        shown_alerts = {a["id"]: a for a in alerts_now}  # bounded: only the newest are compared
        if first:
            first = False
            yield _event("ready", {"now": time.time()})
        await asyncio.sleep(POLL_SECONDS)


@router.get("/streams/events", summary="Live changes of streams and alerts (server-sent events)")
async def stream_events(request: Request) -> Any:
    """``text/event-stream``: ``stream``, ``alert``, ``alert_end`` and ``ready`` events, heartbeats between."""
    return EventSourceResponse(_changes(_state(request)), ping=HEARTBEAT_SECONDS, headers={"Cache-Control": "no-store"})
