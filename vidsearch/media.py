"""Reading and sampling video: probing, frame-index plans and one-pass frame decoding.

Readers. decord is the primary reader (it is what ViCLIP's official code uses), PyAV (bundled
FFmpeg) the fallback. ``reader="auto"`` uses decord except where it is known to return wrong
frames, and falls back to PyAV whenever decord fails on a file:

* VP8/VP9 streams (webm) go straight to PyAV: decord's seeks land at the wrong place in many
  VP8 files (dmlc/decord#91: every index returns a frame from the start of the video).
* Variable-frame-rate files go to PyAV: decord numbers frames by sorted packet timestamps and
  seeks by timestamp, which is where its VFR mistakes come from; PyAV identifies each decoded
  frame by its own timestamp, so a wrong seek cannot produce a wrong frame silently.
* Any decord exception, a frame count of zero, or a frame that cannot be decoded makes the
  read start over with PyAV.

Decoding cost. Decoding, not seeking, is what costs: a non-key frame can only be decoded after
every frame since the previous keyframe. :func:`read_frames` therefore serves all requested
indices of a video (the whole-video clip and every window) in ONE forward pass over sorted
indices: it decodes forward within a keyframe interval (frames it does not need are decoded
but never converted to RGB) and jumps to a later keyframe only when the next wanted frame lies
beyond it, so no frame is ever decoded twice. (decord's ``get_batch`` on sorted indices walks
the file the same way, measured here, but it allocates every frame at full size first, several
GB for 4K windows; we step with ``seek_accurate``/``next`` and resize each frame as it comes.)

Fast mode (``fast=True``) snaps every wanted index to the nearest keyframe and decodes only
keyframes (decord ``get_key_indices``; PyAV ``skip_frame="NONKEY"``). It is several times
faster on long-GOP files, at the price of frame positions off by up to half a keyframe
interval (e.g. +-4 s at 250-frame GOPs and 30 fps); use it when coarse positions are enough.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import stat
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence, TypeVar

import numpy as np

from vidsearch.errors import MediaError

__all__ = [
    "READERS",
    "VideoInfo",
    "SamplingConfig",
    "SegmentPlan",
    "probe",
    "middle_indices",
    "plan_segments",
    "snap_to_keyframes",
    "keyframe_indices",
    "read_frames",
    "video_codec",
]

LOG = logging.getLogger(__name__)
T = TypeVar("T")

READERS = ("auto", "decord", "pyav")
# decord mis-seeks in VP8/VP9 (dmlc/decord#91); these codecs always use PyAV under "auto"
_PYAV_CODECS = frozenset({"vp8", "vp9", "libvpx", "libvpx-vp9"})
# frame durations varying by more than this fraction of the median mean variable frame rate
# (timestamps quantized to 1/1000 s at 29.97 fps vary by ~3%, which is constant-rate)
_VFR_TOLERANCE = 0.25


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns about a video (display orientation, after rotation metadata).

    Attributes:
        path: the file.
        num_frames: frames in the video stream (counted from packets, not taken from headers).
        fps: average frame rate.
        duration: seconds from the first frame's start to the last frame's end.
        width: frame width in pixels.
        height: frame height in pixels.
        codec: FFmpeg's name of the video stream's codec (``"h264"``, ``"hevc"``, ``"vp9"``, ...),
            so front ends know whether a browser can play the file; ``""`` when unknown.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str = ""


@dataclass(frozen=True)
class SamplingConfig:
    """Which segments of a video get an embedding (see :func:`plan_segments`).

    The defaults follow the model: ViCLIP was trained on InternVid clips of about 10 s with
    8 frames each, so an 8 s window at 8 frames samples 1 frame/s, close to its training
    distribution. A stride of half the window (50% overlap) means any moment up to 4 s long lies
    entirely inside some window, so a short event is never split across two windows only.
    Videos up to 12 s are about one training clip long: the whole-video segment already is the
    clip, and windows would repeat it.
    """

    window: float = 8.0  # window length in seconds
    stride: float = 4.0  # seconds between window starts (window / 2: 50% overlap)
    min_video_for_windows: float = 12.0  # only videos longer than this get windows


@dataclass(frozen=True)
class SegmentPlan:
    """One segment to embed: the whole video or one window, with its sampled frame indices.

    Attributes:
        kind: ``"video"`` (the whole video) or ``"window"``.
        start: start time in seconds.
        end: end time in seconds.
        frame_indices: ``num_frames`` frame indices into the video (padded by repetition).
    """

    kind: str
    start: float
    end: float
    frame_indices: tuple[int, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# errors


def _media_error(path: str, reason: str) -> MediaError:
    """A one-line MediaError naming the file; ``.path`` and ``.reason`` keep the parts."""
    reason = " ".join(str(reason).split())
    err = MediaError(f"{path}: {reason}")
    err.path = path  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    return err


_DECORD_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")


def _short_reason(exc: BaseException, limit: int = 120) -> str:
    """A short one-line reason from a PyAV/decord/OS exception (no paths, no C++ noise)."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        text = strerror
    else:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = lines[0] if lines else type(exc).__name__
        text = _DECORD_PREFIX.sub("", text)
        if text.startswith("Error reading "):  # decord's open failure names the file again
            text = "not a readable video container"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_file(path: str) -> None:
    """Fail early, with a clear reason, on paths no decoder should be given."""
    try:
        st = os.stat(path)  # follows symlinks: a dangling link or a loop fails here
    except FileNotFoundError:
        raise _media_error(path, "file not found (or a broken symlink)") from None
    except OSError as exc:  # ELOOP, ENAMETOOLONG, EACCES on a parent, ...
        raise _media_error(path, f"cannot be opened: {_short_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise _media_error(path, "not a file (a directory or a special file)")
    if st.st_size == 0:
        raise _media_error(path, "empty file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else _short_reason(exc)
        raise _media_error(path, f"cannot be read: {reason}") from None


# --------------------------------------------------------------------------------------------
# sampling


def middle_indices(vlen: int, num_frames: int, start: int = 0) -> list[int]:
    """ViCLIP/InternVid "middle" sampling of ``num_frames`` indices from ``vlen`` frames.

    Same as the official ``get_frame_indices(num_frames, vlen, sample="middle")``: split
    ``[0, vlen)`` into ``min(num_frames, vlen)`` intervals at
    ``np.linspace(0, vlen, n + 1).astype(int)``, take each interval ``(lo, hi - 1)``'s midpoint
    ``(lo + hi - 1) // 2`` and, when the video has fewer frames than ``num_frames``, pad by
    repeating the last index.

    Args:
        vlen: number of frames to sample from (>= 1).
        num_frames: number of indices wanted (>= 1).
        start: offset added to every index (a window's first frame).
    """
    if vlen < 1 or num_frames < 1:
        raise ValueError(f"need vlen >= 1 and num_frames >= 1, got vlen={vlen}, num_frames={num_frames}")
    n = min(num_frames, vlen)
    edges = np.linspace(0, vlen, n + 1).astype(int)
    idx = [int((lo + hi - 1) // 2) + start for lo, hi in zip(edges[:-1], edges[1:])]
    return idx + [idx[-1]] * (num_frames - n)


def _frame_rate(info: VideoInfo) -> float:
    if info.fps > 0 and np.isfinite(info.fps):
        return float(info.fps)
    if info.duration > 0:
        return info.num_frames / info.duration
    return 0.0


def plan_segments(
    info: VideoInfo,
    num_frames: int,
    window: float = SamplingConfig.window,
    stride: float = SamplingConfig.stride,
    min_video_for_windows: float = SamplingConfig.min_video_for_windows,
) -> list[SegmentPlan]:
    """The segments of a video to embed: always the whole video, plus windows for long videos.

    The first plan is the whole video (middle sampling over all frames). A video longer than
    ``min_video_for_windows`` seconds also gets windows of ``window`` seconds starting every
    ``stride`` seconds; the last window is aligned to the end of the video so the tail is
    covered. Window boundaries are whole frames; times are frame index / fps. See
    :class:`SamplingConfig` for why the defaults are 8 s windows every 4 s from 12 s on.

    Args:
        info: the probed video.
        num_frames: frames per segment (the model's ``num_frames``).
        window: window length in seconds.
        stride: seconds between window starts.
        min_video_for_windows: videos at most this long get the whole-video segment only.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    vlen = info.num_frames
    plans = [SegmentPlan("video", 0.0, float(info.duration), tuple(middle_indices(vlen, num_frames)))]
    fps = _frame_rate(info)
    if info.duration <= min_video_for_windows or fps <= 0:
        return plans
    wlen = max(1, int(round(window * fps)))
    step = max(1, int(round(stride * fps)))
    if wlen >= vlen:
        return plans
    starts = list(range(0, vlen - wlen + 1, step))
    if starts[-1] != vlen - wlen:
        starts.append(vlen - wlen)  # align the last window to the end: the tail is covered
    for s in starts:
        plans.append(
            SegmentPlan("window", s / fps, (s + wlen) / fps, tuple(middle_indices(wlen, num_frames, start=s)))
        )
    return plans


def snap_to_keyframes(indices: Sequence[int], keyframes: Sequence[int]) -> list[int]:
    """Each index moved to its nearest keyframe (the earlier one on a tie)."""
    keys = sorted(set(int(k) for k in keyframes))
    if not keys:
        return [int(i) for i in indices]
    out = []
    for i in indices:
        j = bisect.bisect_right(keys, i)
        before = keys[j - 1] if j > 0 else None
        after = keys[j] if j < len(keys) else None
        if before is None or (after is not None and after - i < i - before):
            out.append(after)
        else:
            out.append(before)
    return out


# --------------------------------------------------------------------------------------------
# decord


def _quiet_decord():
    import decord

    # decord's FFmpeg logs every broken packet to stderr; errors reach us as exceptions anyway
    decord.logging.set_level(decord.logging.QUIET)
    return decord


class _UsePyAV(Exception):
    """decord declines a file it is known to get wrong (not an error of the file)."""


def _open_decord(path: str):
    decord = _quiet_decord()
    # one decoding thread: pool workers each own one core, the encoder gets the others
    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    if len(vr) < 1:
        raise RuntimeError("no frames")
    return vr


def _decord_rgb(vr) -> np.ndarray:
    """The next frame from decord, checked: decord mislays the rows of some narrow frames."""
    frame = vr.next().asnumpy()
    if frame.ndim != 3 or frame.shape[2] != 3:
        # seen on a 48-pixel-wide H.264 stream: decord returns [H, W, 4] (row padding as pixels)
        raise RuntimeError(f"decord returned a frame of shape {tuple(frame.shape)}")
    return frame


def _decord_timestamps(vr) -> np.ndarray:
    """[N, 2] start/stop seconds of each frame in display order."""
    return np.asarray(vr.get_frame_timestamp(range(len(vr))), dtype=np.float64).reshape(-1, 2)


def _is_vfr(starts: np.ndarray) -> bool:
    d = np.diff(starts)
    if d.size < 2:
        return False
    med = float(np.median(d))
    return med <= 0 or float(np.abs(d - med).max()) > _VFR_TOLERANCE * med


def _probe_decord(path: str, auto: bool) -> VideoInfo:
    vr = _open_decord(path)
    n = len(vr)
    ts = _decord_timestamps(vr)
    if auto and _is_vfr(ts[:, 0]):
        raise _UsePyAV("variable frame rate")
    first = _decord_rgb(vr)  # proves the stream decodes, and gives the display size
    fps = float(vr.get_avg_fps() or 0.0)
    duration = float(ts[-1, 1] - ts[0, 0]) if n and ts[-1, 1] > ts[0, 0] else 0.0
    if duration <= 0 and fps > 0:
        duration = n / fps
    if not (fps > 0 and np.isfinite(fps)) and duration > 0:
        fps = n / duration
    return VideoInfo(path, n, fps, duration, int(first.shape[1]), int(first.shape[0]))


def _read_decord(path: str, wanted: list[int], resolution: int, fast: bool, auto: bool) -> np.ndarray:
    from vidsearch.models.preprocess import resize_frames

    vr = _open_decord(path)
    n = len(vr)
    if auto and _is_vfr(_decord_timestamps(vr)[:, 0]):
        raise _UsePyAV("variable frame rate")
    if wanted[-1] >= n:
        # our own probe counts the same packets, so the count disagrees with the caller's:
        # let PyAV, which tolerates lying counts, do the read
        raise RuntimeError(f"frame {wanted[-1]} requested but decord counts {n} frames")
    targets = snap_to_keyframes(wanted, vr.get_key_indices()) if fast else wanted
    out = np.empty((len(wanted), resolution, resolution, 3), np.uint8)
    prev = None
    for row, t in enumerate(targets):  # sorted: one forward pass
        if t == prev:
            out[row] = out[row - 1]
            continue
        # within a keyframe interval this decodes forward without RGB conversion; across
        # keyframes it jumps to the last keyframe before t (never backwards: t is sorted)
        vr.seek_accurate(t)
        frame = _decord_rgb(vr)
        out[row] = resize_frames(frame[None], resolution)[0]
        prev = t
    return out


# --------------------------------------------------------------------------------------------
# PyAV


@dataclass
class _PyAVIndex:
    """Frame index of a stream from one demux pass (no decoding)."""

    pts: list[int]  # display-order timestamps, sorted; empty when some packet had none
    keyframes: list[int]  # display-order indices of keyframes
    count: int  # video packets (frames)
    time_base: float
    rate: float  # average frame rate from the container, 0 if unknown
    width: int
    height: int
    codec: str


def _open_pyav(path: str):
    import av

    return av.open(path, mode="r", metadata_errors="ignore")


def _video_stream(container, path: str):
    if not container.streams.video:
        raise _media_error(path, "no video stream")
    return container.streams.video[0]


def _pyav_index(path: str) -> _PyAVIndex:
    with _open_pyav(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or 0
        pts: list[int] = []
        key_pts: list[int] = []
        count = 0
        have_pts = True
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                continue
            count += 1
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                have_pts = False
                continue
            pts.append(int(ts))
            if packet.is_keyframe:
                key_pts.append(int(ts))
        if not have_pts or len(set(pts)) != len(pts):
            pts, key_pts = [], []  # cannot identify frames by timestamp: decode sequentially
        pts.sort()
        pos = {p: i for i, p in enumerate(pts)}
        keys = sorted(pos[p] for p in key_pts)
        return _PyAVIndex(
            pts=pts,
            keyframes=keys,
            count=count,
            time_base=float(stream.time_base or 0.0),
            rate=float(rate),
            width=int(cc.width),
            height=int(cc.height),
            codec=str(cc.name),
        )


def _rotation(frame) -> int:
    """Clockwise degrees that put a PyAV frame upright (decord applies this itself)."""
    try:
        rot = int(round(-float(frame.rotation))) % 360
    except (AttributeError, TypeError, ValueError):
        return 0
    return rot if rot in (90, 180, 270) else 0


def _to_rgb(frame) -> np.ndarray:
    img = frame.to_ndarray(format="rgb24")
    rot = _rotation(frame)
    if rot:
        img = np.ascontiguousarray(np.rot90(img, k=-rot // 90))  # k < 0: clockwise
    return img


def _probe_pyav(path: str) -> VideoInfo:
    index = _pyav_index(path)
    if index.count == 0:
        raise _media_error(path, "video stream has no frames")
    with _open_pyav(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_count = 1
        first = next(iter(container.decode(stream)), None)
        if first is None:
            raise _media_error(path, "cannot be decoded: no frame decodes")
        img_h, img_w = (first.height, first.width) if _rotation(first) in (0, 180) else (first.width, first.height)
    duration = 0.0
    if index.pts and index.time_base > 0:
        step = (index.pts[-1] - index.pts[0]) / max(1, len(index.pts) - 1)
        duration = (index.pts[-1] - index.pts[0] + step) * index.time_base
    fps = index.rate if index.rate > 0 else (index.count / duration if duration > 0 else 0.0)
    if duration <= 0 and fps > 0:
        duration = index.count / fps
    return VideoInfo(path, index.count, float(fps), float(duration), int(img_w), int(img_h))


def _read_pyav(path: str, wanted: list[int], resolution: int, fast: bool) -> np.ndarray:
    from vidsearch.models.preprocess import resize_frames

    index = _pyav_index(path)
    pos_of = {p: i for i, p in enumerate(index.pts)}
    can_seek = bool(index.pts)
    keys = index.keyframes if can_seek else []
    targets = snap_to_keyframes(wanted, keys) if (fast and keys) else list(wanted)
    uniq = sorted(set(targets))
    got: dict[int, np.ndarray] = {}

    def key_before(i: int) -> int:
        j = bisect.bisect_right(keys, i)
        return keys[j - 1] if j > 0 else 0

    last_frame = None
    with _open_pyav(path) as container:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        cc.thread_count = 1  # pool workers each own one core
        if fast and keys:
            cc.skip_frame = "NONKEY"  # the decoder drops everything but keyframes
        k = 0
        pos = 0  # display index of the next frame the decoder will deliver
        while k < len(uniq):
            key = key_before(uniq[k])
            if can_seek and key > pos:
                # skip whole keyframe intervals nobody wants; lands on `key` (or before it)
                container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
                pos = key
            need_seek = False
            for frame in container.decode(stream):
                i = pos_of.get(frame.pts, pos) if frame.pts is not None else pos
                pos = i + 1
                last_frame = frame
                if uniq[k] > i:
                    continue  # decoded only to reach a later frame: never converted to RGB
                img = resize_frames(_to_rgb(frame)[None], resolution)[0]
                while k < len(uniq) and uniq[k] <= i:  # == i, or < i if a frame went missing
                    got[uniq[k]] = img
                    k += 1
                if k == len(uniq) or (can_seek and key_before(uniq[k]) > pos):
                    need_seek = True
                    break
            if not need_seek:
                break  # end of stream: the rest is clamped below
        if last_frame is None:
            raise _media_error(path, "cannot be decoded: no frame decodes")
        if k < len(uniq):
            LOG.debug("%s: %d frame(s) past the last decodable frame %d: clamped", path, len(uniq) - k, pos - 1)
            img = resize_frames(_to_rgb(last_frame)[None], resolution)[0]
            for t in uniq[k:]:
                got[t] = img
    return np.stack([got[t] for t in targets])


# --------------------------------------------------------------------------------------------
# public entry points


def _check_reader(reader: str) -> None:
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose one of {', '.join(READERS)}")


def _auto_prefers_pyav(path: str) -> str | None:
    """Why "auto" should skip decord for this file (None: use decord). Raises MediaError."""

    def codec() -> str:
        with _open_pyav(path) as container:  # reads the header only
            return str(_video_stream(container, path).codec_context.name)

    name = _pyav_call(path, codec)
    return f"{name} codec" if name in _PYAV_CODECS else None


def video_codec(path: str | os.PathLike) -> str:
    """FFmpeg's name of the codec of the file's first video stream (reads the header only).

    Raises:
        MediaError: the file cannot be opened or has no video stream (one line, naming it).
    """
    path = os.fspath(path)
    _check_file(path)

    def codec() -> str:
        with _open_pyav(path) as container:
            return str(_video_stream(container, path).codec_context.name)

    return _pyav_call(path, codec)


def _pyav_call(path: str, fn: Callable[[], T]) -> T:
    """Run a PyAV step; any FFmpeg error becomes a one-line MediaError naming the file."""
    try:
        return fn()
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 -- FFmpeg errors come in many classes
        raise _media_error(path, f"cannot be decoded: {_short_reason(exc)}") from None


def _with_readers(
    path: str, reader: str, decord_fn: Callable[[bool], T], pyav_fn: Callable[[], T]
) -> tuple[T, str]:
    """Run a step with the reader asked for; under "auto", decord then PyAV on any failure.

    ``decord_fn(auto)`` may raise :class:`_UsePyAV` (under "auto") to hand the file over.
    Returns the step's result and the reader that produced it.
    """
    use = reader
    if reader == "auto":
        why = _auto_prefers_pyav(path)
        use = "pyav" if why else "decord"
        if why:
            LOG.debug("%s: %s, reading with PyAV", path, why)
    if use == "decord":
        try:
            return decord_fn(reader == "auto"), "decord"
        except _UsePyAV as exc:
            LOG.debug("%s: %s, reading with PyAV", path, exc)
        except Exception as exc:  # noqa: BLE001 -- DECORDError, RuntimeError, StopIteration, ...
            if reader == "decord":
                raise _media_error(path, f"cannot be decoded: {_short_reason(exc)}") from None
            LOG.info("%s: decord failed (%s); trying PyAV", path, _short_reason(exc))
    return _pyav_call(path, pyav_fn), "pyav"


def probe(path: str | os.PathLike, reader: str = "auto") -> VideoInfo:
    """Open a video and report its frame count, rate, duration and display size.

    Args:
        path: the video file.
        reader: ``"auto"`` (decord, PyAV where decord is known to be wrong or fails),
            ``"decord"`` or ``"pyav"``.

    Raises:
        MediaError: one line naming the file: "file not found", "empty file", "no video
            stream", "cannot be decoded: <reason>", ...
    """
    _check_reader(reader)
    path = os.fspath(path)
    _check_file(path)
    info, _ = _with_readers(
        path, reader, lambda auto: _probe_decord(path, auto), lambda: _probe_pyav(path)
    )
    # decord does not name the codec; the header read costs about a millisecond. A file decord
    # reads and FFmpeg cannot open still probes fine, with the codec unknown.
    try:
        return replace(info, codec=video_codec(path))
    except MediaError:
        return replace(info, codec="")


def keyframe_indices(path: str | os.PathLike) -> list[int]:
    """Display-order indices of the keyframes of a video (from a demux pass, no decoding)."""
    path = os.fspath(path)
    _check_file(path)
    return _pyav_call(path, lambda: _pyav_index(path).keyframes)


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int],
    resolution: int,
    reader: str = "auto",
    fast: bool = False,
) -> tuple[np.ndarray, str]:
    """Decode the frames at ``indices`` in one forward pass, each resized as it is decoded.

    Args:
        path: the video file.
        indices: frame indices (any order, repeats allowed); rows of the result follow
            ``sorted(set(indices))``. Indices past the last decodable frame (a frame count
            that lied) get the last decoded frame.
        resolution: output frames are ``resolution x resolution`` (the official bicubic
            antialiased resize of :func:`vidsearch.models.preprocess.resize_frames`).
        reader: ``"auto"``, ``"decord"`` or ``"pyav"`` (see the module docstring).
        fast: decode only keyframes: each row is the keyframe nearest its index.

    Returns:
        ``(frames, reader_used)``: uint8 ``[len(set(indices)), resolution, resolution, 3]`` and
        ``"decord"`` or ``"pyav"``.

    Raises:
        MediaError: the file cannot be decoded by any allowed reader (one line, naming it).
        ValueError: empty or negative indices, or an unknown reader.
    """
    _check_reader(reader)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError("indices is empty")
    if wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    path = os.fspath(path)
    _check_file(path)
    return _with_readers(
        path,
        reader,
        lambda auto: _read_decord(path, wanted, resolution, fast, auto),
        lambda: _read_pyav(path, wanted, resolution, fast),
    )
