"""The JSON API under ``/api/v1``: search, similar moments, videos, their actor tubes and transcripts, health."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from vidsearch.errors import InputError, VidsearchError
from vidsearch.serve.models import ClipRef, ErrorBody, MomentInfo, SearchRequest, SearchResponse, VideoActors
from vidsearch.serve.service import NotFound, ServeState, UnsupportedMediaType, parse_moment_id, parse_video_id
from vidsearch.speech.transcript import to_srt, to_vtt

__all__ = ["router", "validation_message"]

router = APIRouter(prefix="/api/v1")
_ERRORS = {status: {"model": ErrorBody} for status in (400, 401, 403, 404, 413, 415)}
_SAFE_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,5}$")
_UPLOAD_FIELD = "file"


def _state(request: Request) -> ServeState:
    return request.app.state.serve


def validation_message(exc: ValidationError | Any) -> str:
    """One line from a pydantic/FastAPI validation error: the first problem, where it is."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    msg = str(first.get("msg", "invalid value")).replace("Value error, ", "")
    return f"{where}: {msg}" if where else msg


def _search_body_schema() -> dict[str, Any]:
    schema = SearchRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    form = {
        "type": "object",
        "properties": {
            _UPLOAD_FIELD: {
                "type": "string",
                "format": "binary",
                "description": "A query clip (any format FFmpeg reads).",
            },
            **{k: v for k, v in schema["properties"].items() if k not in ("query", "clip")},
        },
        "required": [_UPLOAD_FIELD],
    }
    return {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
            "multipart/form-data": {"schema": form},
        }
    }


@router.post(
    "/search",
    response_model=SearchResponse,
    responses=_ERRORS,
    openapi_extra={"requestBody": _search_body_schema()},
    summary="Search moments by text, by a moment of the library, or by an uploaded clip",
)
async def search(request: Request) -> Any:
    """Rank the library's moments; the ranking is the one of ``vidsearch query``."""
    state = _state(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _search_upload(request, state)
    if media_type != "application/json":
        # text/plain and form bodies are what another site's page may post without asking
        raise UnsupportedMediaType(
            f"send the search as Content-Type: application/json (got {media_type[:60] or 'none'}), "
            "or a clip as multipart/form-data"
        )
    try:
        data = json.loads(await request.body() or b"{}")
    except RecursionError:
        raise InputError("the JSON body is nested too deeply") from None
    except ValueError:
        raise InputError('the body is not JSON; send application/json like {"query": "a dog"}') from None
    if not isinstance(data, dict):
        raise InputError('the body must be a JSON object like {"query": "a dog"}')
    req = SearchRequest.model_validate(data)
    return await run_in_threadpool(state.search, req)


async def _search_upload(request: Request, state: ServeState) -> Any:
    async with request.form(max_files=1, max_fields=20, max_part_size=64 * 1024) as form:
        upload = form.get(_UPLOAD_FIELD)
        if not isinstance(upload, UploadFile):
            raise InputError(f"a multipart search needs the clip in the field {_UPLOAD_FIELD!r}")
        fields = {k: v for k, v in form.multi_items() if k != _UPLOAD_FIELD}
        if "query" in fields or "clip" in fields:
            raise InputError("give exactly one of query (text), clip {video_id, start, end}, or an uploaded clip file")
        req = SearchRequest.model_validate(fields)
        suffix = Path(upload.filename or "").suffix
        # the decoder picks the demuxer from the content; the name only keeps a harmless suffix
        fd, name = tempfile.mkstemp(prefix="vidsearch-upload-", suffix=suffix if _SAFE_SUFFIX.match(suffix) else ".bin")
        try:
            with os.fdopen(fd, "wb") as fh:
                await run_in_threadpool(shutil.copyfileobj, upload.file, fh, 1 << 20)
            return await run_in_threadpool(state.search, req, Path(name))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)  # deleted afterwards, whatever happened


@router.get(
    "/moments/{moment}", response_model=MomentInfo, responses=_ERRORS, summary="One moment, as a search result has it"
)
def moment(request: Request, moment: str) -> Any:
    """A moment's video, times and media URLs without a score: what a shared link opens.

    A stream's moment plays a clip of its recording, as in search results.
    """
    return _state(request).moment(moment)


@router.get(
    "/moments/{moment}/similar", response_model=SearchResponse, responses=_ERRORS, summary="More like this moment"
)
def similar(
    request: Request,
    moment: str,
    k: int = Query(20, ge=1, le=100),
    cursor: str | None = Query(None, max_length=200),
    group_by: Literal["video", "moment"] = Query("video"),
    min_score: float | None = Query(None, ge=-1, le=1),
    path_prefix: str | None = Query(None, max_length=1000, description="Only videos under this folder."),
    min_duration: float | None = Query(None, ge=0),
    max_duration: float | None = Query(None, ge=0),
    label: str | None = Query(None, max_length=200, description="Only videos recognized as this class."),
    label_set: str | None = Query(None, max_length=200),
    indexed_after: datetime | None = Query(None, description="Only videos indexed at or after this time."),
    sort: Literal["score", "date", "name"] = Query("score", description="score, date (newest first) or name."),
    date_from: datetime | None = Query(None, description="Only moments dated at or after this time."),
    date_to: datetime | None = Query(None, description="Only moments dated at or before this time."),
) -> Any:
    """Moments like the given one (``moment_id`` from a search result), under the same filters as a search.

    The moment itself is left out: the first result is the best *other* moment.
    """
    video_id, start, end = parse_moment_id(moment)
    req = SearchRequest(
        clip=ClipRef(video_id=video_id, start=start, end=end),
        k=k,
        cursor=cursor,
        group_by=group_by,
        min_score=min_score,
        path_prefix=path_prefix,
        min_duration=min_duration,
        max_duration=max_duration,
        label=label,
        label_set=label_set,
        indexed_after=indexed_after,
        sort=sort,
        date_from=date_from,
        date_to=date_to,
    )
    return _state(request).search(req)


@router.get("/videos", responses=_ERRORS, summary="The indexed videos, paged by id")
def videos(
    request: Request, cursor: str | None = Query(None, max_length=20), limit: int = Query(50, ge=1, le=500)
) -> Any:
    """A page of indexed videos; pass ``next_cursor`` back as ``cursor`` for the next one."""
    from vidsearch.usecases.videos import videos_page

    state = _state(request)
    if cursor is not None and not re.fullmatch(r"[0-9]{1,12}", cursor):
        raise InputError("cursor is not one this server gave out; start again without it")
    rows = videos_page(state.library, after=int(cursor or 0), limit=limit + 1)
    page = rows[:limit]
    return {
        "videos": [_video_summary(state, r) for r in page],
        "next_cursor": str(page[-1].id) if len(rows) > limit else None,
    }


def _video_summary(state: ServeState, r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": state.name(r),
        "duration": r.duration,
        "fps": r.fps,
        "width": r.width,
        "height": r.height,
        "codec": state.codec(r) or None,
        "playable": state.playable(r),
        "indexed_at": r.updated_at.isoformat() if r.updated_at else None,
        "media_url": f"/media/{r.id}?v={state.version(r)}",
        "thumbnail_url": f"/thumbs/{r.id}/{int(1000 * (r.duration or 0) / 2)}.jpg?v={state.version(r)}",
    }


@router.get("/videos/{video_id}", responses=_ERRORS, summary="One video: metadata, labels and their timeline")
def video(request: Request, video_id: str) -> Any:
    """A video's metadata, and its labels with their timeline when the library is enriched."""
    from vidsearch.enrich.recognize import video_labels

    state = _state(request)
    record = state.video(parse_video_id(video_id))
    out = _video_summary(state, record)
    out["size"] = record.size
    try:
        space = state.space()
        labels = video_labels(state.library, record.path, space=space)["label_sets"] if space else []
    except InputError:  # not enriched yet
        labels = []
    out["label_sets"] = labels
    out["actors_url"] = f"/api/v1/videos/{record.id}/actors"
    return out


@router.get(
    "/videos/{video_id}/actors",
    response_model=VideoActors,
    responses=_ERRORS,
    summary="One video's person tubes with their action labels",
)
def video_actors(
    request: Request,
    video_id: str,
    label_set: str | None = Query(
        None, max_length=200, description="Only this label set's scan (its name as listed in label_sets)."
    ),
) -> Any:
    """The tubes ``vidsearch enrich actors`` stored for a video: span, classes, and a box per keyframe.

    Boxes are normalized ``x1, y1, x2, y2`` (fractions of the source frame, as AVA's); a video that
    was never scanned has no scans.
    """
    from vidsearch.enrich.actors_library import video_actors as stored_actors

    state = _state(request)
    record = state.video(parse_video_id(video_id))
    # a watched stream is never scanned for people (its path is a URL, not a file)
    scans = [] if record.live else stored_actors(state.library, record.path)["scans"]
    if label_set is not None:
        # matched on the shown name: a client's string never becomes a path on the server
        wanted = [sc for sc in scans if sc["label_set"] == label_set]
        if not wanted:
            have = ", ".join(sorted({sc["label_set"] for sc in scans})) or "none; run `vidsearch enrich actors`"
            raise NotFound(f"video {record.id} has no actor scan under label set {label_set[:60]!r}; it has: {have}")
        scans = wanted
    try:
        space = state.space()
    except VidsearchError:  # a --model the library no longer has: the order does not matter then
        space = None
    served = space.key if space is not None else None
    scans.sort(key=lambda sc: sc["space"] != served)  # stable: stored order otherwise
    for sc in scans:
        for tube in sc["tubes"]:
            best = tube["labels"][0] if tube["labels"] else {"label": "", "score": 0.0}
            tube["label"], tube["score"] = best["label"], best["score"]
    return {
        "video_id": record.id,
        "width": record.width,
        "height": record.height,
        "duration": record.duration,
        "coordinates": "normalized",
        "label_sets": [sc["label_set"] for sc in scans],
        "scans": scans,
    }


def _transcript(request: Request, video_id: str, fmt: str) -> Any:
    from vidsearch.usecases.transcripts import video_transcript

    state = _state(request)
    found = video_transcript(state.library, state.video(parse_video_id(video_id)).id)
    if fmt == "vtt":  # what the player's <track> loads: an empty WebVTT file when nothing is said
        return PlainTextResponse(to_vtt(found.lines), media_type="text/vtt; charset=utf-8")
    if fmt == "srt":
        return PlainTextResponse(to_srt(found.lines), media_type="application/x-subrip; charset=utf-8")
    out = found.to_dict()
    out.pop("path")  # no server path leaves: the shown name instead
    out["name"] = state.name(state.video(found.video_id))
    return out


@router.get("/videos/{video_id}/transcript", responses=_ERRORS, summary="What is said in a video, with word times")
def video_transcript_json(request: Request, video_id: str) -> Any:
    """The video's transcript lines (start, end, text, word times), where they came from and notes."""
    return _transcript(request, video_id, "json")


@router.get("/videos/{video_id}/transcript.vtt", responses=_ERRORS, summary="The transcript as WebVTT captions")
def video_transcript_vtt(request: Request, video_id: str) -> Any:
    """WebVTT: the player's captions track."""
    return _transcript(request, video_id, "vtt")


@router.get("/videos/{video_id}/transcript.srt", responses=_ERRORS, summary="The transcript as SubRip")
def video_transcript_srt(request: Request, video_id: str) -> Any:
    """SubRip, for download."""
    return _transcript(request, video_id, "srt")


@router.get("/health", summary="Library, model and counts")
def health(request: Request) -> Any:
    """Whether the server is up, what it serves, and whether an index run is under way."""
    return _state(request).health()
