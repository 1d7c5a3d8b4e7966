"""The PyAV reader (bundled FFmpeg): index, probe and one-pass reading (see :mod:`vidsearch.media`).

PyAV is the fallback and the reader of files decord gets wrong: it identifies each decoded frame
by its own timestamp, so a wrong seek cannot produce a wrong frame silently, and it tolerates
frame counts that lie (indices past the last decodable frame get that frame).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

import numpy as np

from vidsearch.media.info import VideoInfo, media_error
from vidsearch.media.sampling import snap_to_keyframes

__all__ = ["PyAVIndex", "open_pyav", "video_stream", "pyav_index", "probe_pyav", "read_pyav"]

LOG = logging.getLogger(__name__)


@dataclass
class PyAVIndex:
    """Frame index of a stream from one demux pass (no decoding)."""

    pts: list[int]  # display-order timestamps, sorted; empty when some packet had none
    keyframes: list[int]  # display-order indices of keyframes
    count: int  # video packets (frames)
    time_base: float
    rate: float  # average frame rate from the container, 0 if unknown
    width: int
    height: int
    codec: str


def open_pyav(path: str):
    """The container, opened for reading (a context manager)."""
    import av

    return av.open(path, mode="r", metadata_errors="ignore")


def video_stream(container, path: str):
    """The first video stream, or a MediaError "no video stream"."""
    if not container.streams.video:
        raise media_error(path, "no video stream")
    return container.streams.video[0]


def pyav_index(path: str) -> PyAVIndex:
    """Demux the video stream once (no decoding): timestamps, keyframes, frame count."""
    with open_pyav(path) as container:
        stream = video_stream(container, path)
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
        return PyAVIndex(
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


def probe_pyav(path: str) -> VideoInfo:
    """Probe with PyAV: count packets, decode the first frame (display size after rotation).

    Raises:
        MediaError: no video stream, no frames, or no frame decodes.
    """
    index = pyav_index(path)
    if index.count == 0:
        raise media_error(path, "video stream has no frames")
    with open_pyav(path) as container:
        stream = video_stream(container, path)
        stream.codec_context.thread_count = 1
        first = next(iter(container.decode(stream)), None)
        if first is None:
            raise media_error(path, "cannot be decoded: no frame decodes")
        img_h, img_w = (first.height, first.width) if _rotation(first) in (0, 180) else (first.width, first.height)
    duration = 0.0
    if index.pts and index.time_base > 0:
        step = (index.pts[-1] - index.pts[0]) / max(1, len(index.pts) - 1)
        duration = (index.pts[-1] - index.pts[0] + step) * index.time_base
    fps = index.rate if index.rate > 0 else (index.count / duration if duration > 0 else 0.0)
    if duration <= 0 and fps > 0:
        duration = index.count / fps
    return VideoInfo(path, index.count, float(fps), float(duration), int(img_w), int(img_h))


def read_pyav(path: str, wanted: list[int], resolution: int, fast: bool) -> np.ndarray:
    """uint8 ``[len(wanted), res, res, 3]`` for sorted distinct ``wanted``, in one forward pass.

    Raises:
        MediaError: no video stream, or no frame decodes.
    """
    from vidsearch.media.resize import resize_frames  # torch: only where frames are decoded

    index = pyav_index(path)
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
    with open_pyav(path) as container:
        stream = video_stream(container, path)
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
            raise media_error(path, "cannot be decoded: no frame decodes")
        if k < len(uniq):
            LOG.debug("%s: %d frame(s) past the last decodable frame %d: clamped", path, len(uniq) - k, pos - 1)
            img = resize_frames(_to_rgb(last_frame)[None], resolution)[0]
            for t in uniq[k:]:
                got[t] = img
    return np.stack([got[t] for t in targets])
