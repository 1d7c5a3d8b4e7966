"""How a stream's moment plays in the page: a clip of the stream's recording around its span.

A watched stream's row has its URL for a path and UTC seconds for times: ``/media``, ``/thumbs``
and ``/strips`` (which read a file at a path) cannot serve it. Its search results link the clip
endpoint instead (:mod:`vidsearch.serve.clips`, which cuts from the recording's segments).
"""

from __future__ import annotations

from typing import Any

from vidsearch.store.library import Library
from vidsearch.usecases.clips import MAX_CLIP_SECONDS, recorded_since
from vidsearch.usecases.videos import VideoRecord

__all__ = ["STREAM_CONTEXT_S", "recorded_streams", "stream_media"]

STREAM_CONTEXT_S = 5.0  # a stream moment plays with this much of its recording before and after


def recorded_streams(library: Library, streams: list[VideoRecord]) -> dict[int, float]:
    """For each recorded stream among ``streams`` (by video id), when its kept recording begins (UTC s)."""
    since = {rec.id: recorded_since(library, rec) for rec in streams}
    return {vid: t for vid, t in since.items() if t is not None}


def stream_media(moment: str, start: float, end: float, recorded_from: float | None) -> dict[str, Any]:
    """A stream moment's media in a search result: a clip of its recording around the span.

    A stream's times are UTC seconds and its "file" is a URL the server cannot serve, so the
    player gets the span with :data:`STREAM_CONTEXT_S` either side, cut from the recording
    (``clip_start``: the UTC time of the clip's first frame; the fragment is relative to it). No
    recording: nothing to play and no stills (null URLs).
    """
    if recorded_from is None or end <= recorded_from:  # never recorded, or its recording is deleted
        return {"thumbnail_url": None, "strip_url": None, "play_url": None, "clip_start": None}
    # the clip starts no earlier than the recording (as the cut clamps it) and is at most the cap long
    lo = max(start - STREAM_CONTEXT_S, recorded_from)
    hi = min(end + STREAM_CONTEXT_S, lo + MAX_CLIP_SECONDS)
    return {
        "thumbnail_url": None,  # stills decode the file at a path; a stream's are in its recording's segments
        "strip_url": None,
        "play_url": f"/api/v1/moments/{moment}/clip.mp4?start={lo:.3f}&end={hi:.3f}"
        f"#t={max(0.0, start - lo):.3f},{end - lo:.3f}",
        "clip_start": round(lo, 3),
    }
