"""Still frames for the page: thumbnails and hover-scrub strips, made with PyAV and cached on disk.

A thumbnail is one representative frame near a time; a strip is a row of frames across a moment.
Both are JPEG bytes cached under the library (``cache/frames/``), keyed by the file's fingerprint,
the time(s) on a quarter-second grid and the width, so a changed file never gets an old image, a
second request decodes nothing, and the cache stays under its size cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from vidsearch.errors import MediaError
from vidsearch.fileio import atomic_write
from vidsearch.media.jpeg import encode_jpeg

__all__ = [
    "FrameCache",
    "quantize",
    "TIME_QUANTUM",
    "grab_frames",
    "pick_representative",
    "encode_jpeg",
    "make_thumbnail",
    "make_strip",
    "decode_count",
]

LOG = logging.getLogger(__name__)

# How far after the asked time a thumbnail may look for a better frame (seconds), and how many
# frames it weighs: enough to step past a fade-in, few enough to stay fast.
LOOKAHEAD_S = 1.0
CANDIDATES = 6
# Stills are cached on a time grid: URLs a few milliseconds apart share one image instead of each
# costing a decode and a file. A quarter second is under a thumbnail's lookahead and a strip tile.
TIME_QUANTUM = 0.25
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # the frame cache's size cap (ServeConfig.frame_cache_bytes)
EVICT_TO = 0.8  # eviction frees down to this share of the cap, so it does not run on every write
_decodes = 0  # files opened for decoding: tests read it to prove the cache is used
_decodes_lock = threading.Lock()


def decode_count() -> int:
    """How many times this process has opened a video to make a still (for tests and stats)."""
    return _decodes


def _scaled(frame, width: int):
    """``frame`` resized to ``width`` (even height, aspect kept) as RGB uint8 ``[h, w, 3]``."""
    w = max(2, int(width) // 2 * 2)
    h = max(2, int(round(frame.height * w / max(1, frame.width) / 2)) * 2)
    return frame.reformat(width=w, height=h, format="rgb24").to_ndarray()


def grab_frames(
    path: str, times: Sequence[float], width: int, per_time: int = 1, step: float = 0.0
) -> list[list[np.ndarray]]:
    """Decode frames at (or just after) each time, resized to ``width``.

    Args:
        path: the video file.
        times: seconds, in any order.
        width: output width in pixels (height follows the aspect ratio).
        per_time: frames to return per time: the one at the time and the following ones.
        step: with ``per_time > 1``, seconds between those frames (0: consecutive frames).

    Returns:
        For each time, up to ``per_time`` RGB frames (the last frames of the file for times past
        its end; an empty list if nothing decodes there).

    Raises:
        MediaError: the file cannot be opened or has no video stream.
    """
    import av

    global _decodes
    with _decodes_lock:
        _decodes += 1
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as exc:  # noqa: BLE001 -- FFmpeg errors come in many classes
        raise MediaError(f"{Path(path).name}: cannot be opened: {type(exc).__name__}") from None
    out: list[list[np.ndarray]] = [[] for _ in times]
    try:
        if not container.streams.video:
            raise MediaError(f"{Path(path).name}: no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        tb = float(stream.time_base or Fraction(1, 1000))
        origin = float(stream.start_time or 0) * tb
        for slot, t in sorted(enumerate(times), key=lambda x: x[1]):
            target = origin + max(0.0, float(t))
            try:
                container.seek(int(target / tb), stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:  # a file that cannot seek: decode from the start instead
                container.close()
                container = av.open(path, mode="r", metadata_errors="ignore")
                stream = container.streams.video[0]
            last = None
            want_next = target
            try:
                for frame in container.decode(stream):
                    ft = float(frame.pts) * tb if frame.pts is not None else want_next
                    last = frame
                    if ft + 1e-6 < want_next - 0.5 / max(1.0, float(stream.average_rate or 25)):
                        continue
                    out[slot].append(_scaled(frame, width))
                    if len(out[slot]) >= per_time:
                        break
                    want_next = ft + step if step > 0 else ft
            except av.FFmpegError as exc:
                LOG.debug("%s: decoding stopped at %.2f s: %s", path, t, exc)
            if not out[slot] and last is not None:  # past the end: the last frame there is
                out[slot].append(_scaled(last, width))
    finally:
        container.close()  # the one open now (a file that cannot seek is reopened)
    return out


def pick_representative(frames: Sequence[np.ndarray]) -> int:
    """Index of the frame that best shows the scene: not a black or white fade, most detail.

    A frame counts as a fade when its mean luma is under 24 or over 232 or it is nearly flat; the
    first frame that is no fade and has at least half the best contrast is chosen, so the
    thumbnail stays close to the asked time.
    """
    if not frames:
        raise ValueError("no frames to choose from")
    luma = [f.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) for f in frames]
    means = [float(y.mean()) for y in luma]
    stds = [float(y.std()) for y in luma]
    best = max(stds)
    for i, (m, sd) in enumerate(zip(means, stds, strict=False)):
        if 24.0 <= m <= 232.0 and sd >= 4.0 and sd >= 0.5 * best:
            return i
    return int(np.argmax(stds))


def make_thumbnail(path: str, t: float, width: int) -> bytes:
    """A JPEG of the representative frame in ``[t, t + LOOKAHEAD_S]`` (see :func:`pick_representative`)."""
    (frames,) = grab_frames(path, [t], width, per_time=CANDIDATES, step=LOOKAHEAD_S / CANDIDATES)
    if not frames:
        raise MediaError(f"{Path(path).name}: no frame decodes at {t:.2f} s")
    return encode_jpeg(frames[pick_representative(frames)])


def strip_times(start: float, end: float, n: int) -> list[float]:
    """``n`` times spread across ``[start, end]``: the middle of ``n`` equal parts."""
    span = max(0.0, end - start)
    return [start + span * (i + 0.5) / n for i in range(n)]


def make_strip(path: str, start: float, end: float, n: int, width: int) -> bytes:
    """A JPEG of ``n`` frames across ``[start, end]`` side by side, each ``width`` pixels wide."""
    frames = [f[0] for f in grab_frames(path, strip_times(start, end, n), width) if f]
    if not frames:
        raise MediaError(f"{Path(path).name}: no frame decodes in {start:.2f}-{end:.2f} s")
    h = min(f.shape[0] for f in frames)
    while len(frames) < n:  # a short file: repeat its last frame so tiles keep their positions
        frames.append(frames[-1])
    return encode_jpeg(np.concatenate([f[:h] for f in frames], axis=1))


def quantize(t: float, up: bool = False) -> float:
    """``t`` on the cache's time grid (:data:`TIME_QUANTUM`), so near-equal times share one image.

    Args:
        t: seconds.
        up: the grid time at or after ``t`` (a thumbnail shows a frame after the asked time);
            else the one at or before it.
    """
    steps = max(0.0, float(t)) / TIME_QUANTUM
    return (math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)) * TIME_QUANTUM


class FrameCache:
    """Files on disk under ``root`` (JPEG stills, or MP4 clips), made once per key and kept under ``max_bytes`` in all.

    Concurrent requests for a key wait for one maker. Past the cap the least recently used images
    (a hit refreshes a file's mtime) are deleted down to :data:`EVICT_TO` of it, so a client
    asking for many distinct stills cannot fill the disk. Images are returned as bytes: a file
    evicted between a lookup and the response cannot break the response. A write that fails (a
    full disk) serves the image uncached.
    """

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES, suffix: str = ".jpg") -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.suffix = suffix  # what the cache holds: ".jpg" stills, ".mp4" clips
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._size_lock = threading.Lock()
        self._bytes = sum(size for _, _, size in self._files())

    def path_for(self, *key: object) -> Path:
        """Where the image for ``key`` lives (a hash of the key: no client text in file names)."""
        digest = hashlib.sha256(repr(key).encode("utf-8")).hexdigest()
        return self.root / digest[:2] / f"{digest}{self.suffix}"

    def size(self) -> int:
        """Bytes the cache holds (as this process counted them)."""
        return self._bytes

    def get(self, key: tuple[object, ...], make: Callable[[], bytes]) -> bytes:
        """The image for ``key``: the cached bytes, or ``make()``'s, saved atomically when there is room."""
        path = self.path_for(*key)
        data = self._read(path)
        if data is not None:
            return data
        with self._making(path):
            data = self._read(path)
            if data is None:
                data = make()
                self._store(path, data)
        return data

    def open(self, key: tuple[object, ...], make: Callable[[Path], object]) -> BinaryIO:
        """The file for ``key``, open for reading: the cached one, or the one ``make(path)`` writes.

        For files too large to hold in memory (clips). ``make`` writes a new file at the path it
        is given (a temporary name: a failed ``make`` leaves nothing). The file is opened before
        any eviction, so an eviction cannot break the caller's read.

        Raises:
            OSError: the file could not be written (a full disk); whatever ``make`` raises.
        """
        path = self.path_for(*key)
        with contextlib.suppress(OSError):
            return self._opened(path)
        with self._making(path):
            with contextlib.suppress(OSError):
                return self._opened(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.part")
            try:
                make(tmp)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            handle = path.open("rb")
            with self._size_lock:
                self._bytes += os.fstat(handle.fileno()).st_size
                over = self._bytes > self.max_bytes
        if over:
            self._evict()
        return handle

    @staticmethod
    def _opened(path: Path) -> BinaryIO:
        handle = path.open("rb")
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return handle

    @contextlib.contextmanager
    def _making(self, path: Path) -> Iterator[None]:
        """Held while the entry at ``path`` is made: concurrent requests for it wait for one maker."""
        with self._guard:
            lock = self._locks.setdefault(str(path), threading.Lock())
        try:
            with lock:
                yield
        finally:
            with self._guard:
                self._locks.pop(str(path), None)

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        return data

    def _store(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, lambda fh: fh.write(data))
        except OSError as exc:  # a full or read-only disk: the image is still good to send
            LOG.warning("frame cache: cannot save an image (%s); serving it uncached", exc.strerror or exc)
            return
        with self._size_lock:
            self._bytes += len(data)
            over = self._bytes > self.max_bytes
        if over:
            self._evict()

    def _files(self) -> list[tuple[int, Path, int]]:
        out = []
        for entry in self.root.glob(f"??/*{self.suffix}"):
            with contextlib.suppress(OSError):
                st = entry.stat()
                out.append((st.st_mtime_ns, entry, st.st_size))
        return out

    def _evict(self) -> None:
        with self._size_lock:
            files = sorted(self._files())  # oldest first
            total = sum(size for _, _, size in files)
            target = int(self.max_bytes * EVICT_TO)
            for _, path, size in files:
                if total <= target:
                    break
                with contextlib.suppress(OSError):
                    path.unlink()
                    total -= size
            self._bytes = total
