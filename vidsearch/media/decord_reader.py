"""The decord reader: probe a file and read frames in one forward pass (see :mod:`vidsearch.media`).

decord is what ViCLIP's official code reads with, so it is the primary reader. It declines
variable-frame-rate files under ``"auto"`` (:class:`UsePyAV`): it numbers frames by sorted packet
timestamps and seeks by timestamp, which is where its VFR mistakes come from.
"""

from __future__ import annotations

import numpy as np

from vidsearch.media.info import VideoInfo
from vidsearch.media.sampling import snap_to_keyframes
from vidsearch.media.threads import decode_threads

__all__ = ["UsePyAV", "probe_decord", "read_decord"]

# frame durations varying by more than this fraction of the median mean variable frame rate
# (timestamps quantized to 1/1000 s at 29.97 fps vary by ~3%, which is constant-rate)
_VFR_TOLERANCE = 0.25


class UsePyAV(Exception):
    """decord declines a file it is known to get wrong (not an error of the file)."""


def _quiet_decord():
    import decord

    # decord's FFmpeg logs every broken packet to stderr; errors reach us as exceptions anyway
    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _open(path: str):
    decord = _quiet_decord()
    # threaded decoding; pool workers get their share of the cores (vidsearch.media.threads)
    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=decode_threads())
    if len(vr) < 1:
        raise RuntimeError("no frames")
    return vr


def _rgb(vr) -> np.ndarray:
    """The next frame from decord, checked: decord mislays the rows of some narrow frames."""
    frame = vr.next().asnumpy()
    if frame.ndim != 3 or frame.shape[2] != 3:
        # seen on a 48-pixel-wide H.264 stream: decord returns [H, W, 4] (row padding as pixels)
        raise RuntimeError(f"decord returned a frame of shape {tuple(frame.shape)}")
    return frame


def _timestamps(vr) -> np.ndarray:
    """[N, 2] start/stop seconds of each frame in display order."""
    return np.asarray(vr.get_frame_timestamp(range(len(vr))), dtype=np.float64).reshape(-1, 2)


def _is_vfr(starts: np.ndarray) -> bool:
    d = np.diff(starts)
    if d.size < 2:
        return False
    med = float(np.median(d))
    return med <= 0 or float(np.abs(d - med).max()) > _VFR_TOLERANCE * med


def probe_decord(path: str, auto: bool) -> VideoInfo:
    """Probe with decord (the first frame is decoded: it proves the stream decodes).

    Raises:
        UsePyAV: under ``auto``, a variable-frame-rate file.
        Exception: whatever decord raises (the caller falls back or reports it).
    """
    vr = _open(path)
    n = len(vr)
    ts = _timestamps(vr)
    if auto and _is_vfr(ts[:, 0]):
        raise UsePyAV("variable frame rate")
    first = _rgb(vr)  # proves the stream decodes, and gives the display size
    fps = float(vr.get_avg_fps() or 0.0)
    duration = float(ts[-1, 1] - ts[0, 0]) if n and ts[-1, 1] > ts[0, 0] else 0.0
    if duration <= 0 and fps > 0:
        duration = n / fps
    if not (fps > 0 and np.isfinite(fps)) and duration > 0:
        fps = n / duration
    return VideoInfo(path, n, fps, duration, int(first.shape[1]), int(first.shape[0]))


def read_decord(
    path: str, wanted: list[int], resolution: int, fast: bool, auto: bool, antialias: bool = False
) -> np.ndarray:
    """uint8 ``[len(wanted), res, res, 3]`` for sorted distinct ``wanted``, in one forward pass
    (``antialias``: see :func:`vidsearch.media.resize.resize_frames`).

    Raises:
        UsePyAV: under ``auto``, a variable-frame-rate file.
        RuntimeError: an index past decord's frame count (PyAV tolerates lying counts).
    """
    from vidsearch.media.resize import resize_frames  # torch: only where frames are decoded

    vr = _open(path)
    n = len(vr)
    if auto and _is_vfr(_timestamps(vr)[:, 0]):
        raise UsePyAV("variable frame rate")
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
        frame = _rgb(vr)
        out[row] = resize_frames(frame[None], resolution, antialias)[0]
        prev = t
    return out
