"""Request and response bodies of the HTTP API (pydantic: validated, and documented in /docs)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "MAX_ID",
    "ClipRef",
    "SearchRequest",
    "VideoRef",
    "MomentInfo",
    "Moment",
    "SearchResponse",
    "ScoredSpan",
    "VideoScores",
    "ErrorBody",
    "ActorClass",
    "ActorBox",
    "ActorTube",
    "ActorScan",
    "VideoActors",
]


# Ids are SQLite integers; a larger number names nothing, and must not reach the database (overflow).
MAX_ID = 10**12 - 1


class ClipRef(BaseModel):
    """A moment already in the library: search for more like it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    video_id: int = Field(ge=1, le=MAX_ID)
    start: float = Field(ge=0)
    end: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ClipRef:
        if self.end <= self.start:
            raise ValueError("clip.end must be greater than clip.start")
        return self


class SearchRequest(BaseModel):
    """``POST /api/v1/search``: exactly one of ``query``, ``clip`` or an uploaded file."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    query: str | None = Field(None, max_length=1000, description="What you want to see (or hear: see mode).")
    said: str | None = Field(None, max_length=1000, description="An exact spoken phrase searched in the transcripts.")
    mode: Literal["seen", "said", "both"] | None = Field(
        None, description="seen: the video model; said: transcripts; both: fused (default when there are transcripts)."
    )
    clip: ClipRef | None = Field(None, description="More like this moment of an indexed video.")
    k: int = Field(20, ge=1, le=100, description="Results per page.")
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page.")
    min_score: float | None = Field(None, ge=-1, le=1, description="Drop results scoring below this cosine similarity.")
    group_by: Literal["video", "moment"] = Field(
        "video", description="One result per video (as vidsearch query), or every moment."
    )
    path_prefix: str | None = Field(
        None, max_length=1000, description="Only videos under this folder (relative to the library's folder)."
    )
    min_duration: float | None = Field(None, ge=0)
    max_duration: float | None = Field(None, ge=0)
    label: str | None = Field(
        None, max_length=200, description="Only videos recognized as this class (vidsearch enrich recognize)."
    )
    label_set: str | None = Field(None, max_length=200)
    indexed_after: datetime | None = Field(None, description="Only videos indexed at or after this time (ISO 8601).")
    rerank: Literal["itm"] | None = Field(
        None, description="Re-rank a text query's best videos with the model's matching head (InternVideo2)."
    )
    rerank_k: int | None = Field(None, ge=1, le=128, description="With rerank: candidates re-ranked (default 16).")
    sort: Literal["score", "date", "name"] = Field(
        "score",
        description="score: best first; date: newest first (a stream moment's wall-clock time, else the file's "
        "modification time); name: by the video's path. Date and name order the best 200 results.",
    )
    date_from: datetime | None = Field(None, description="Only moments dated at or after this time (ISO 8601).")
    date_to: datetime | None = Field(None, description="Only moments dated at or before this time (ISO 8601).")

    @field_validator("indexed_after", "date_from", "date_to")
    @classmethod
    def _in_utc(cls, when: datetime | None) -> datetime | None:
        # year 1 at +01:00 (or 9999 at -01:00) has no UTC time: refuse it here, not as a 500 later
        if when is None or when.tzinfo is None:
            return when
        try:
            return when.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("the time is out of range once converted to UTC") from None


class VideoRef(BaseModel):
    """The video a moment belongs to."""

    id: int
    name: str = Field(description="Path relative to the library's folder.")
    duration: float | None
    playable: bool = Field(description="Whether a browser can play the file (else show the strip and stills).")
    live: bool = Field(False, description="A watched stream: its moments' times are UTC seconds, not offsets.")
    recorded_from: float | None = Field(
        None, description="A stream's: when its kept recording begins (UTC seconds; None: not recorded)."
    )


class SaidWords(BaseModel):
    """The transcript line a result matched, the matched words in it and when they are said."""

    text: str
    match: str
    start: float
    end: float


class MomentInfo(BaseModel):
    """A span of a video with its images and a link that plays it (what a shared link opens)."""

    moment_id: str
    date: str | None = Field(
        description="When the moment happened (ISO 8601, UTC): a stream moment's wall-clock time, "
        "else the file's modification time."
    )
    start: float
    end: float
    video: VideoRef
    thumbnail_url: str | None = Field(description="A still of the moment (None for a stream's moment).")
    strip_url: str | None = Field(description="Frames across the moment, for hover-scrubbing (None for a stream's).")
    play_url: str | None = Field(
        description="Plays the span (a media fragment #t=start,end); a stream's moment plays a clip of its "
        "recording around the span (None: not recorded)."
    )
    clip_start: float | None = Field(
        None, description="A stream moment's clip: the UTC time its first frame shows (its fragment counts from it)."
    )


class Moment(MomentInfo):
    """One ranked result: a moment with its rank, scores and why it matched."""

    rank: int
    score: float = Field(description="The raw score: a cosine similarity (a BM25 value for a said-only match).")
    match: float = Field(
        description="Relative match in [0, 1]: 1 is this search's best result, 0 its 25th, or its last when "
        "a first page of under 24 results was asked for (not a probability)."
    )
    matched: list[str] = Field(
        description="The retrievers that found it (vectors: the embedding space; transcripts: what is said)."
    )
    why: str = Field(description="seen, said or both.")
    said: SaidWords | None = Field(None, description="The spoken words it matched, with their span.")


class SearchResponse(BaseModel):
    """A page of ranked moments."""

    results: list[Moment]
    next_cursor: str | None
    model: str | None = Field(description="The embedding space searched (None: the library is empty).")


class ScoredSpan(BaseModel):
    """A span of a video with its score (seconds; a cosine similarity)."""

    start: float
    end: float
    score: float


class VideoScores(BaseModel):
    """``GET /api/v1/videos/{id}/scores``: a query's score over a whole video, and where it matches."""

    video_id: int
    duration: float | None
    model: str = Field(description="The embedding space scored.")
    low: float = Field(description="The lowest window score (the heat strip's cold end).")
    high: float = Field(description="The highest window score (its hot end).")
    windows: list[ScoredSpan] = Field(description="Every stored window of the video, in time order.")
    spans: list[ScoredSpan] = Field(description="The matching spans, in time order.")


class ErrorBody(BaseModel):
    """Every error: one line, no traceback, no server path."""

    error: str


class ActorClass(BaseModel):
    """A class and its probability (softmax over the label set)."""

    label: str
    score: float


class ActorBox(BaseModel):
    """A tube's box at one keyframe."""

    t: float = Field(description="Keyframe time (s).")
    box: list[float] = Field(
        min_length=4,
        max_length=4,
        description="x1, y1, x2, y2 normalized to [0, 1] by the source frame's width and height (AVA's convention); "
        "multiply by VideoActors.width/height for source pixels.",
    )
    detected: bool = Field(description="False where the tracker bridged a detector miss (interpolated box).")
    label: str = Field(description="The best class at this keyframe.")
    score: float


class ActorTube(BaseModel):
    """One person followed over time: its span, classes (best first) and keyframe boxes (in time order)."""

    track: int
    start: float = Field(description="First keyframe (s).")
    end: float = Field(description="Last keyframe (s).")
    label: str = Field(description="The tube's best class (mean probability over its keyframes); empty when unscored.")
    score: float
    labels: list[ActorClass]
    boxes: list[ActorBox]


class ActorScan(BaseModel):
    """One ``vidsearch enrich actors`` scan of the video under one label set."""

    label_set: str = Field(description="A shipped label set's name, or a label file's name.")
    space: str = Field(description="The embedding space whose model scored the tubes.")
    detector: str
    keyframes: int
    tubes: list[ActorTube]


class VideoActors(BaseModel):
    """``GET /api/v1/videos/{id}/actors``: the person tubes stored for a video (none: never scanned)."""

    video_id: int
    width: int | None = Field(description="Source frame width (px).")
    height: int | None = Field(description="Source frame height (px).")
    duration: float | None
    coordinates: Literal["normalized"] = Field(description="How boxes are given: fractions of the source frame.")
    label_sets: list[str] = Field(description="The label sets of the scans, in the order of scans.")
    scans: list[ActorScan] = Field(description="The served model's scans first.")
