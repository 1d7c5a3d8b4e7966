"""What the server holds for its lifetime: the library, the model, and search calls.

The searched space's text encoder is opened in the background when the server starts, through
the path ``vidsearch query`` takes (the torch-free ONNX Runtime graph when it is cached), so the
first search does not pay the load; ``/api/v1/health`` says ``loading`` until it is ready. Both
towers (for uploaded clips) are opened on first use.

Every search goes through :func:`vidsearch.usecases.query.search` (the code path of ``vidsearch
query``); this module turns a request into a :class:`~vidsearch.usecases.query.Query`, embeds
its text and uploads with the shared model, keeps the paging cursors and describes each hit for
the page.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import stat
import tempfile
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.errors import InputError, LibraryError, VidsearchError
from vidsearch.retrieval import why_matched
from vidsearch.serve.frames import DEFAULT_MAX_BYTES, FrameCache
from vidsearch.serve.playback import recorded_streams, stream_media
from vidsearch.usecases.videos import NotFound, VideoRecord

__all__ = [
    "ServeConfig",
    "ServeState",
    "NotFound",
    "UnsupportedMediaType",
    "BROWSER_CODECS",
    "parse_moment_id",
    "parse_video_id",
    "moment_id",
]

LOG = logging.getLogger(__name__)

# What Debian's Chromium (and other browsers) decode in a <video>: not HEVC, MPEG-4 Part 2, MJPEG.
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1", "theora"})
BROWSER_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".ogv", ".ogg"})
# A stream's moments are UTC times: 13 digits of milliseconds.
_MOMENT_ID = re.compile(r"^([0-9]{1,12})-([0-9]{1,15})-([0-9]{1,15})$")


def _iso(seconds: float) -> str | None:
    """UTC seconds as ISO 8601 (None for a time no calendar holds)."""
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


class UnsupportedMediaType(InputError):
    """A request body in a type the endpoint does not take (answered with 415)."""


@dataclass(frozen=True)
class ServeConfig:
    """How ``vidsearch serve`` runs; the defaults are the safe ones."""

    library: Path | None = None  # library directory (None: VIDSEARCH_LIBRARY or the user data dir)
    host: str = "127.0.0.1"  # address to bind; anything but loopback needs a token
    port: int = 8700
    token: str | None = None  # required on every request when set (Bearer header or cookie)
    allowed_hosts: tuple[str, ...] = ()  # extra Host header names accepted (DNS-rebinding guard)
    model: str | None = None  # embedding space to search (None: the most recently indexed)
    device: str = "auto"
    max_k: int = 100  # results per page, at most
    max_depth: int = 1000  # how far down the ranking paging may go
    max_upload_bytes: int = 200 * 1024 * 1024  # uploaded query clips
    max_body_bytes: int = 64 * 1024  # every other request body
    thumb_width: int = 320
    strip_frames: int = 8
    strip_width: int = 160  # per strip tile
    frame_cache_bytes: int = DEFAULT_MAX_BYTES  # thumbnails and strips kept on disk, at most
    clip_cache_bytes: int = 2 * 1024**3  # downloaded clips kept on disk, at most
    text_cache: int = 1024  # query embeddings kept (paging and repeated queries skip the model)


def _cache_dir(library_root: Path, kind: str = "frames") -> Path:
    """``<library>/cache/<kind>``, or a private temporary folder when the library is read-only."""

    path = library_root / "cache" / kind
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".writable"
        probe.touch()
        probe.unlink()
        return path
    except OSError:
        LOG.warning("library %s is read-only: %s are cached in a temporary folder", library_root.name, kind)
        return Path(tempfile.mkdtemp(prefix=f"vidsearch-{kind}-"))


def moment_id(video_id: int, start: float, end: float) -> str:
    """The public id of a moment: ``<video id>-<start ms>-<end ms>``."""
    return f"{int(video_id)}-{int(round(start * 1000))}-{int(round(end * 1000))}"


def parse_moment_id(mid: str) -> tuple[int, float, float]:
    """``(video_id, start, end)`` of a moment id.

    Raises:
        NotFound: not a moment id.
    """
    m = _MOMENT_ID.match(mid or "")
    if not m or int(m.group(3)) <= int(m.group(2)):
        raise NotFound(f"no moment {mid[:40]!r}; moment ids look like 12-4000-9500")
    return int(m.group(1)), int(m.group(2)) / 1000.0, int(m.group(3)) / 1000.0


def parse_video_id(text: str) -> int:
    """A video id from a URL segment.

    Raises:
        NotFound: not a number (``..``, paths and names never reach the library).
    """
    # ASCII digits only: str.isdigit() is also true of "²", which int() refuses
    if not re.fullmatch(r"[0-9]{1,12}", text):
        raise NotFound(f"no video {text[:40]!r} in the library; ids are numbers")
    return int(text)


class _TextBatcher:
    """Runs the text tower in one thread on every caption waiting, so concurrent searches share a call.

    No waiting window: while one batch is encoded, new requests queue up and form the next one.
    A batch of 8 captions costs about twice one caption on a CPU (the weights are read once and
    the matrix products are larger), so under load this multiplies throughput; alone, a request
    pays nothing extra.
    """

    def __init__(self, encode: Any, max_batch: int = 32) -> None:
        self._encode = encode
        self._max = max_batch
        self._queue: queue.Queue[tuple[list[str], Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="vidsearch-text-encoder", daemon=True)
        self._thread.start()

    def __call__(self, texts: list[str]) -> np.ndarray:
        done: Future = Future()
        self._queue.put((list(texts), done))
        return done.result()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            texts = [t for item, _ in batch for t in item]
            try:
                xq = self._encode(texts)
            except BaseException as exc:  # noqa: BLE001 -- every waiting request gets the error
                for _, done in batch:
                    done.set_exception(exc)
                continue
            at = 0
            for item, done in batch:
                done.set_result(xq[at : at + len(item)])
                at += len(item)


class _CachingEncoder:
    """The space's encoder with memoized, batched text embeddings and bounded video encodes."""

    def __init__(self, encoder: Any, size: int, slots: int) -> None:
        self.inner = encoder
        self.key = encoder.key
        # a text-only encoder (the ONNX Runtime graph) has no frames to take
        self.num_frames, self.resolution = getattr(encoder, "num_frames", 0), getattr(encoder, "resolution", 0)
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(slots)
        self._batched = _TextBatcher(encoder.encode_text)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        out: list[np.ndarray | None] = []
        with self._lock:
            for t in texts:
                v = self._cache.get(t)
                if v is not None:
                    self._cache.move_to_end(t)
                out.append(v)
        missing = [t for t, v in zip(texts, out, strict=False) if v is None]
        if missing:
            by_text = dict(zip(missing, self._batched(missing), strict=False))
            with self._lock:
                for t, v in by_text.items():
                    self._cache[t] = v
                    while len(self._cache) > self._size:
                        self._cache.popitem(last=False)
            out = [v if v is not None else by_text[t] for t, v in zip(texts, out, strict=False)]
        return np.stack(out)

    def encode_video(self, clips: np.ndarray) -> np.ndarray:
        with self.slots:
            return self.inner.encode_video(clips)


class ServeState:
    """The open library, the model (opened once per space and towers, then shared) and the upload decoder."""

    def __init__(self, config: ServeConfig, library: Any | None = None) -> None:
        from vidsearch.store.library import Library

        self.config = config
        # Read-only, as the README promises: serving never migrates or rewrites a library an
        # indexer may be writing, and works on a read-only mount.
        self.library = library if library is not None else Library.open(config.library, create=False, read_only=True)
        self.library.serve_concurrent_searches()  # requests run on their own threads already
        self.frames = FrameCache(_cache_dir(self.library.root), config.frame_cache_bytes)
        self.clips = FrameCache(_cache_dir(self.library.root, "clips"), config.clip_cache_bytes, suffix=".mp4")
        # (space key, towers) -> the encoder being opened or opened
        self._encoders: dict[tuple[str, str], Future[_CachingEncoder]] = {}
        self._model_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._pool: Any = None
        self._codecs: dict[tuple[int, str], str] = {}
        self._root: tuple[float, str | None] = (0.0, None)
        self.started = time.time()
        # set when the server stops: open event streams end, so shutdown does not wait on them
        self.stopping = threading.Event()

    def close(self) -> None:
        """Wait for a model still opening, stop the upload decoder and release the library.

        A stop (Ctrl-C) can come while the start-up thread is inside torch or ONNX Runtime; leaving
        it there as the interpreter exits aborts the process, so the opening is waited for.
        """
        self.stopping.set()
        wait(list(self._encoders.values()), timeout=300)
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        self.library.close()

    # -- model ---------------------------------------------------------------------------
    def space(self) -> Any | None:
        """The space searched (None while the library is still empty): ``--model`` as ``query --model`` takes it."""
        from vidsearch.usecases.spaces import resolve_space

        found = self.library.spaces()  # most recently indexed first
        if not found:
            return None
        # every search asks: without --model the latest space is the answer, with no second query
        return found[0] if self.config.model is None else resolve_space(self.library, self.config.model)

    def start_loading(self) -> None:
        """Open the searched space's text encoder in the background (``health`` says ``loading`` meanwhile)."""
        try:
            space = self.space()
        except VidsearchError:
            return
        if space is not None:
            self._opening(space, "text", background=True)

    def text_encoder(self, space: Any) -> _CachingEncoder:
        """The space's text encoder, opened once (or waited for); later calls (from any thread) share it."""
        return self._opening(space, "text").result()

    def encoder(self, space: Any) -> _CachingEncoder:
        """The space's encoder with both towers (for uploads), opened on first use."""
        return self._opening(space, "both").result()

    def _opening(self, space: Any, towers: str, background: bool = False) -> Future[_CachingEncoder]:
        """The future of the space's encoder with ``towers``; opened here (or in a thread) the first time."""
        with self._model_lock:
            done = self._encoders.get((space.key, towers))
            if done is not None and not (done.done() and done.exception() is not None):
                return done  # opened or opening; a failed opening is tried again
            future: Future[_CachingEncoder] = Future()
            self._encoders[(space.key, towers)] = future
        if background:
            threading.Thread(
                target=self._open, args=(future, space, towers), name="vidsearch-model-open", daemon=True
            ).start()
        else:
            self._open(future, space, towers)
        return future

    def _open(self, future: Future[_CachingEncoder], space: Any, towers: str) -> None:
        from vidsearch.usecases.encoders import space_encoder, text_encoder

        t0 = time.perf_counter()
        cores = max(1, os.cpu_count() or 1)
        try:
            if towers == "text":  # `query`'s path; batches of captions may use every core
                encoder = text_encoder(space, self.config.device, threads=cores)
            else:
                encoder = space_encoder(space, self.config.device)
            future.set_result(_CachingEncoder(encoder, self.config.text_cache, cores))
        except BaseException as exc:  # noqa: BLE001 -- every waiting request gets the error
            LOG.warning("could not open the model of %s: %s", space.key, exc)
            future.set_exception(exc)
            return
        LOG.info("opened %s (%s) in %.1f s", space.key, towers, time.perf_counter() - t0)

    def model_loaded(self) -> bool:
        """Whether some space's model is in memory."""
        return any(f.done() and f.exception() is None for f in list(self._encoders.values()))

    def model_state(self, space: Any | None) -> str:
        """``loading``, ``ready``, ``failed`` or ``idle`` (not opened yet): the searched space's text encoder."""
        future = self._encoders.get((space.key, "text")) if space is not None else None
        if future is None:
            return "idle"
        if not future.done():
            return "loading"
        return "failed" if future.exception() is not None else "ready"

    def embed_text(self, space: Any, text: str) -> np.ndarray:
        """A caption's vector (memoized, batched with concurrent requests): the use case's embedder."""
        from vidsearch.search import embed_text

        return embed_text(self.text_encoder(space), text)

    def embed_file(self, space: Any, path: Path, start: float | None, end: float | None) -> np.ndarray:
        """An uploaded clip's (or image's) vector: the use case's embedder (uploads have no span)."""
        return self.embed_upload(path, space)

    def embed_upload(self, path: Path, space: Any) -> np.ndarray:
        """Embed an uploaded clip: decoded in the crash-contained decode pool, sampled like an indexed video."""
        from vidsearch.media.jobs import DecodedVideo, DecodeJob
        from vidsearch.media.pool import DecodePool

        enc = self.encoder(space)
        with self._pool_lock:  # one upload decodes at a time; the pool's worker is kept warm
            if self._pool is None:
                self._pool = DecodePool(workers=1, timeout=60.0, timeout_per_second=1.0)
            job = DecodeJob(0, str(path), enc.num_frames, enc.resolution)
            (result,) = list(self._pool.run([job]))
        if not isinstance(result, DecodedVideo):
            raise InputError(f"the uploaded clip: {result.reason}")
        return enc.encode_video(result.clips()[:1])[0]  # the whole-video segment comes first

    # -- videos --------------------------------------------------------------------------
    def root(self) -> str | None:
        """The folder holding every indexed video (names are shown relative to it); cached for 5 s."""
        at, root = self._root
        if time.monotonic() - at > 5.0:
            from vidsearch.usecases.videos import library_root

            root = library_root(self.library)
            self._root = (time.monotonic(), root)
        return root

    def name(self, record: VideoRecord) -> str:
        """The video's path relative to :meth:`root` (never an absolute server path)."""
        root = self.root()
        if root and record.path.startswith(root.rstrip(os.sep) + os.sep):
            return record.path[len(root.rstrip(os.sep)) + 1 :]
        return os.path.basename(record.path)

    def codec(self, record: VideoRecord) -> str:
        """The recorded codec, or (for videos indexed before it was recorded) the file header's."""
        if record.codec:
            return record.codec
        key = (record.id, record.fingerprint)
        if key not in self._codecs:
            from vidsearch.media import video_codec

            try:
                self._codecs[key] = video_codec(record.path)
            except VidsearchError:
                self._codecs[key] = ""
        return self._codecs[key]

    def playable(self, record: VideoRecord) -> bool:
        """Whether a browser's ``<video>`` can play the file."""
        return self.codec(record) in BROWSER_CODECS and Path(record.path).suffix.lower() in BROWSER_CONTAINERS

    def video(self, video_id: int) -> VideoRecord:
        """An indexed video by id.

        Raises:
            NotFound: no such video, or it is not indexed (failed, removed).
        """
        from vidsearch.usecases.videos import indexed_video

        return indexed_video(self.library, video_id)

    def servable(self, video_id: int) -> VideoRecord:
        """An indexed video whose file is still the one that was indexed (size and mtime match).

        A file replaced since indexing, a symlink put in its place, or a file that is gone is
        refused: only what the library indexed is ever served.

        Raises:
            NotFound: see above.
        """
        record = self.video(video_id)
        try:
            st = os.stat(record.path)
        except OSError:
            raise NotFound(f"video {video_id}'s file is gone; run `vidsearch index` again") from None
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (record.size, record.mtime_ns):
            raise NotFound(f"video {video_id}'s file changed since it was indexed; run `vidsearch index` again")
        return record

    def version(self, record: VideoRecord) -> str:
        """The content address of a video's file (part of media and image URLs)."""
        return (record.fingerprint or f"{record.size}-{record.mtime_ns}")[:16]

    def rerank(self, space: Any, text: str, hits: list[Any], k: int) -> list[Any]:
        """The first ``k`` hits re-ranked by the space model's ITM head: the use case's embedder."""
        from vidsearch.rerank import check_itm, rerank_top

        enc = self.encoder(space)
        check_itm(enc.inner, space.key)
        with enc.slots:  # decoding and the vision tower: bounded like other video encodes
            return rerank_top(enc.inner, text, hits, k)

    # -- search --------------------------------------------------------------------------
    def search(self, req: Any, upload: Path | None = None) -> dict[str, Any]:
        """Run a search request (a :class:`~vidsearch.serve.models.SearchRequest`) and page it."""
        from vidsearch.usecases.query import MomentRef, Query, QueryFilters, search

        given = sum(x is not None for x in (req.query, req.clip, upload))
        if given != 1 and not (given == 0 and req.said):
            raise InputError("give exactly one of query (text), clip {video_id, start, end}, or an uploaded clip file")
        if req.query is not None and not req.query.strip():
            raise InputError("query is empty; type what you want to see, e.g. a dog catching a frisbee")
        if req.label_set and not req.label:
            raise InputError("label_set only applies together with label")
        from vidsearch.rerank import DEFAULT_RERANK_K, rerank_k_for

        rerank_k = rerank_k_for(req.rerank, req.rerank_k, default=DEFAULT_RERANK_K) or 0
        clip = req.clip
        query = Query(
            text=req.query,
            file=upload,
            moment=MomentRef(clip.video_id, clip.start, clip.end) if clip is not None else None,
            k=req.k,
            offset=self._offset(req),
            group_by=req.group_by,
            rerank_k=rerank_k,
            mode=req.mode,
            said=req.said,
            sort=req.sort,
            filters=QueryFilters(
                min_score=req.min_score,
                folder=req.path_prefix,
                min_duration=req.min_duration,
                max_duration=req.max_duration,
                label=req.label,
                label_set=req.label_set,
                indexed_after=req.indexed_after,
                date_from=req.date_from,
                date_to=req.date_to,
            ),
        )
        page = search(self.library, query, self, self.space())
        end = query.offset + query.k
        more = page.more and end < self.config.max_depth
        return {
            "results": self.describe(page.hits, page.matches),
            "next_cursor": self._cursor(req, end) if more else None,
            "model": page.space.key if page.space is not None else None,
        }

    def describe(self, hits: list[Any], matches: list[float]) -> list[dict[str, Any]]:
        """The API's form of ranked hits (``matches``: each hit's relative match)."""
        from vidsearch.usecases.videos import indexed_videos

        records = indexed_videos(self.library, [h.video_id for h in hits])
        recorded = recorded_streams(self.library, [r for r in records.values() if r.live])
        out = []
        for h, match in zip(hits, matches, strict=True):
            rec = records.get(h.video_id)
            if rec is None:  # removed while searching
                continue
            out.append(
                {
                    **self._moment(rec, h.start, h.end, recorded.get(rec.id)),
                    "rank": h.rank,
                    "score": round(float(h.score), 6),
                    "match": round(float(match), 4),
                    "matched": list(h.matched),
                    "why": why_matched(h.matched),
                    "said": None if h.said is None else dataclasses.asdict(h.said),
                }
            )
        return out

    def moment(self, mid: str) -> dict[str, Any]:
        """A moment (a shared link's) in the form of a search result, without the search's score.

        Raises:
            NotFound: not a moment id, or of a video the library does not have.
        """
        video_id, start, end = parse_moment_id(mid)
        rec = self.video(video_id)
        recorded_from = recorded_streams(self.library, [rec]).get(rec.id) if rec.live else None
        return self._moment(rec, start, end, recorded_from)

    def _moment(self, rec: VideoRecord, start: float, end: float, recorded_from: float | None) -> dict[str, Any]:
        """A moment's id, times, video and media URLs: a file's, or a stream's recording clip."""
        from vidsearch.usecases.ordering import moment_time

        mid, v = moment_id(rec.id, start, end), self.version(rec)
        media = {
            "thumbnail_url": f"/thumbs/{rec.id}/{int(round(1000 * (start + end) / 2))}.jpg?v={v}",
            "strip_url": f"/strips/{mid}.jpg?v={v}",
            "play_url": f"/media/{rec.id}?v={v}#t={start:.3f},{end:.3f}",
        }
        if rec.live:
            media = stream_media(mid, start, end, recorded_from)
        return {
            "moment_id": mid,
            "date": _iso(moment_time(rec, start)),
            "start": round(float(start), 3),
            "end": round(float(end), 3),
            "video": {
                "id": rec.id,
                "name": self.name(rec),
                "duration": rec.duration,
                "playable": media["play_url"] is not None if rec.live else self.playable(rec),
                "live": rec.live,
                **({"recorded_from": recorded_from} if rec.live else {}),
            },
            **media,
        }

    # -- paging --------------------------------------------------------------------------
    @staticmethod
    def _fingerprint(req: Any) -> str:
        fields = req.model_dump(mode="json", exclude={"cursor", "k"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def _cursor(self, req: Any, offset: int) -> str:
        raw = json.dumps({"o": offset, "f": self._fingerprint(req)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _offset(self, req: Any) -> int:
        if not req.cursor:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(req.cursor + "=" * (-len(req.cursor) % 4)))
            offset, fp = int(data["o"]), str(data["f"])
        except (binascii.Error, ValueError, KeyError, TypeError, OverflowError, RecursionError):
            raise InputError("cursor is not one this server gave out; start again without it") from None
        if fp != self._fingerprint(req):
            raise InputError("cursor belongs to another search; send it with the same query and filters")
        if not 0 <= offset < self.config.max_depth:
            raise InputError(f"cursor goes past the first {self.config.max_depth} results")
        return offset

    # -- status --------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Library, model and counts for ``/api/v1/health`` (and the page's empty/indexing notes)."""
        from vidsearch.usecases.videos import library_status

        try:
            space = self.space()
        except LibraryError:
            space = None
        status = library_status(self.library)
        state = self.model_state(space)
        return {
            "status": "loading" if state == "loading" else "ok",
            "library": self.library.root.name,
            "indexing": status["indexing"],
            "model": {"key": space.key if space else None, "loaded": self.model_loaded(), "state": state},
            "counts": {
                "videos": status["videos"],
                "failed": status["failed"],
                "segments": status["segments"],
                "hours": round(status["hours"], 3),
            },
            "uptime_s": round(time.time() - self.started, 1),
        }
