"""Text->video and video->video search over a library, grouping segment hits into videos.

FAISS returns segments (whole videos and windows). A user wants videos, each with the span that
matched best, so hits are grouped per video: the video's score is its best segment's score and its
span comes from localizing the query over all of the video's stored windows (the whole video when
it has none).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError
from vidsearch.store.library import Library, SegmentInfo, SpaceInfo

__all__ = ["Filters", "VideoHit", "search_vectors", "search_text", "search_video", "encode_video_file", "load_space_encoder", "load_text_query_encoder"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Filters:
    """Result filters users ask for: a relevance cut-off, a path glob, a duration range."""

    min_score: float | None = None
    path_glob: str | None = None  # matched against the full path; a pattern without "/" against the file name
    min_duration: float | None = None
    max_duration: float | None = None
    video_ids: frozenset[int] | None = None  # only these videos (e.g. those with a recognized label)

    def accepts(self, info: SegmentInfo) -> bool:
        """Whether a video passes the path, duration and video-set filters."""
        if self.video_ids is not None and info.video_id not in self.video_ids:
            return False
        if self.path_glob:
            target = info.path if "/" in self.path_glob else Path(info.path).name
            if not fnmatch.fnmatch(target, self.path_glob):
                return False
        if self.min_duration is not None and (info.duration or 0.0) < self.min_duration:
            return False
        if self.max_duration is not None and (info.duration or 0.0) > self.max_duration:
            return False
        return True


@dataclass
class VideoHit:
    """One ranked video with its best-matching span (seconds)."""

    rank: int
    path: str
    score: float
    start: float
    end: float
    duration: float | None
    video_id: int
    segment_id: int
    kind: str  # "window": the span was localized over the video's windows; "video": the whole video

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _group(D: np.ndarray, I: np.ndarray, infos: dict[int, SegmentInfo], filters: Filters) -> list[VideoHit]:
    best: dict[int, VideoHit] = {}
    for score, sid in zip(D.tolist(), I.tolist()):
        if sid < 0:
            continue
        if filters.min_score is not None and score < filters.min_score:
            break  # scores arrive in decreasing order
        info = infos.get(sid)
        if info is None or not filters.accepts(info):
            continue
        if info.video_id not in best:  # the video's best segment; its span is refined later
            best[info.video_id] = VideoHit(0, info.path, float(score), info.start, info.end, info.duration, info.video_id, sid, info.kind)
    hits = sorted(best.values(), key=lambda h: (-h.score, h.path))
    for rank, hit in enumerate(hits, 1):
        hit.rank = rank
    return hits


def search_vectors(library: Library, space: SpaceInfo, xq: np.ndarray, k: int = 10, filters: Filters | None = None) -> list[VideoHit]:
    """The ``k`` best videos for one query vector ``xq`` (L2-normalized, ``[D]``)."""
    if k < 1:
        raise InputError(f"-k must be at least 1 (got {k})")
    filters = filters or Filters()
    index = library.vector_index(space)
    n = index.ntotal
    if n == 0:
        return []
    xq = np.ascontiguousarray(np.asarray(xq, dtype=np.float32).reshape(1, -1))
    # Several segments of one video may crowd the top: fetch more segments than videos wanted,
    # and widen until k videos survive grouping and filtering or the index is exhausted.
    kk = min(n, max(64, 16 * k))
    while True:
        D, I = index.search(xq, kk)
        valid = I[0] >= 0
        infos = library.segment_infos(I[0][valid].tolist())
        hits = _group(D[0], I[0], infos, filters)
        scores = D[0][valid]
        below_cutoff = filters.min_score is not None and scores.size > 0 and float(scores[-1]) < filters.min_score
        # -1 ids: the index has no more to give (IVF widens its probes itself; wrapped codes such
        # as OPQ do not), so asking for more finds no more.
        exhausted = kk >= n or below_cutoff or not valid.all()
        if len(hits) >= k or exhausted:
            return _refine_spans(library, space, hits[:k], xq[0])
        kk = min(n, kk * 4)


def _refine_spans(library: Library, space: SpaceInfo, hits: list[VideoHit], xq: np.ndarray) -> list[VideoHit]:
    """Give each hit the span the localization pass finds over all of the video's windows.

    Localization scores every stored window of the video (not only the retrieved ones) and can
    narrow or widen the span to where the similarity actually peaks.
    """
    from vidsearch.enrich.localize import best_spans_for_hits

    spans = best_spans_for_hits(library, space, [h.video_id for h in hits], xq)
    for hit in hits:
        if hit.video_id in spans:
            hit.start, hit.end, _ = spans[hit.video_id]
            hit.kind = "window"
    return hits


def load_space_encoder(space: SpaceInfo, device: str = "auto") -> Any:
    """Load the encoder that produced a space's vectors (from the spec stored with it)."""
    from vidsearch.models.lowprec import load_encoder_at

    spec = dict(space.model_spec)
    spec["device"] = device
    return load_encoder_at(**spec)


def load_text_query_encoder(space: SpaceInfo, device: str = "auto") -> Any:
    """An encoder for text queries into ``space``; without torch when its ONNX graph is cached."""
    from vidsearch.models.query_encoder import load_query_encoder

    return load_query_encoder(space.key, space.model_spec, device=device)


def search_text(library: Library, encoder: Any, text: str, space: SpaceInfo, k: int = 10, filters: Filters | None = None) -> list[VideoHit]:
    """Rank videos for a text query."""
    if not text or not text.strip():
        raise InputError("the query text is empty; type what you want to see, e.g. vidsearch query \"a dog catching a frisbee\"")
    xq = encoder.encode_text([text.strip()])[0]
    return search_vectors(library, space, xq, k, filters)


def encode_video_file(encoder: Any, path: Path | str, start: float | None = None, end: float | None = None, reader: str = "auto") -> np.ndarray:
    """Embed one video file (or its ``[start, end]`` span, seconds) the way the indexer does.

    The whole file is sampled exactly as the indexer samples a whole-video segment, so a file
    already in the library gets back its own embedding (score ~1.0).

    Raises:
        InputError: the span is empty or outside the video.
        MediaError: the file cannot be decoded.
    """
    from vidsearch.media import middle_indices, probe, read_frames

    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise InputError(f"--video {path}: no such file")
    info = probe(path)
    first, last = 0, info.num_frames
    if start is not None or end is not None:
        s = 0.0 if start is None else float(start)
        e = info.duration if end is None else float(end)
        if s < 0 or e <= s or s >= info.duration:
            raise InputError(f"--start/--end: span {s:g}-{e:g} s is empty or outside {path} (duration {info.duration:.2f} s)")
        first = min(info.num_frames - 1, int(round(s * info.fps)))
        last = max(first + 1, min(info.num_frames, int(round(e * info.fps))))
    indices = middle_indices(last - first, encoder.num_frames, start=first)
    frames, _ = read_frames(path, indices, encoder.resolution, reader=reader)
    order = {idx: i for i, idx in enumerate(sorted(set(indices)))}
    clip = frames[[order[i] for i in indices]][None]  # [1, T, res, res, 3]
    return encoder.encode_video(clip)[0]


def search_video(
    library: Library,
    encoder: Any,
    path: Path | str,
    space: SpaceInfo,
    k: int = 10,
    filters: Filters | None = None,
    start: float | None = None,
    end: float | None = None,
) -> list[VideoHit]:
    """Rank videos for a video query (the whole file or a ``[start, end]`` span)."""
    return search_vectors(library, space, encode_video_file(encoder, path, start, end), k, filters)
