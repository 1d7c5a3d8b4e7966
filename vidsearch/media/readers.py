"""Which reader reads a file, and :func:`read_frames`: frames in the requested order, one pass.

Readers. decord is the design's reader (it is what ViCLIP's official code uses), PyAV (bundled
FFmpeg) the other one. ``reader="auto"`` lets PyAV lead where it is known to be right and decord
wrong, or measured faster, and otherwise uses decord; either way the other reader is the
fallback whenever the first one fails on a file (both run inside the crash-contained decode
pool's workers):

* PyAV leads (decord is the fallback) for the codecs in :data:`PYAV_FASTER`, where
  ``benchmarks/decode_speed.py --codecs`` measured it faster on this kind of work: H.264
  (1.0-1.1x on 10 s long-GOP 360p noise, 1.8x on long-GOP 720p, 3.6x on 3.5 s 112 px clips,
  where decord's per-file set-up dominates) and MJPEG (4.4x). MPEG-4 part 2 was a tie
  (decord stays first); other codecs were not measured and stay with decord.

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

import logging
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from vidsearch.errors import MediaError
from vidsearch.media.decord_reader import UsePyAV, read_decord
from vidsearch.media.info import check_file, media_error, short_reason
from vidsearch.media.pyav_reader import open_pyav, read_pyav, video_stream

__all__ = ["READERS", "PYAV_FASTER", "check_reader", "pyav_call", "with_readers", "read_frames"]

LOG = logging.getLogger(__name__)
T = TypeVar("T")

READERS = ("auto", "decord", "pyav")
# decord mis-seeks in VP8/VP9 (dmlc/decord#91); these codecs always use PyAV under "auto"
_PYAV_CODECS = frozenset({"vp8", "vp9", "libvpx", "libvpx-vp9"})
# codecs PyAV decodes measurably faster (see the module docstring): PyAV leads, decord falls back
PYAV_FASTER = frozenset({"h264", "mjpeg"})


def check_reader(reader: str) -> None:
    """Raise a ValueError listing the choices unless ``reader`` is one of :data:`READERS`."""
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; choose one of {', '.join(READERS)}")


def _auto_plan(path: str) -> tuple[str, bool, str]:
    """How "auto" reads this file: (first reader, whether the other may follow, why). Raises MediaError."""

    def codec() -> str:
        with open_pyav(path) as container:  # reads the header only
            return str(video_stream(container, path).codec_context.name)

    name = pyav_call(path, codec)
    if name in _PYAV_CODECS:
        return "pyav", False, f"{name} codec (decord mis-seeks)"
    if name in PYAV_FASTER:
        return "pyav", True, f"{name} codec (PyAV measured faster)"
    return "decord", True, ""


def pyav_call(path: str, fn: Callable[[], T]) -> T:
    """Run a PyAV step; any FFmpeg error becomes a one-line MediaError naming the file."""
    try:
        return fn()
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 -- FFmpeg errors come in many classes
        raise media_error(path, f"cannot be decoded: {short_reason(exc)}") from None


def with_readers(path: str, reader: str, decord_fn: Callable[[bool], T], pyav_fn: Callable[[], T]) -> tuple[T, str]:
    """Run a step with the reader asked for; under "auto", the leading reader then the other.

    ``decord_fn(auto)`` may raise :class:`~vidsearch.media.decord_reader.UsePyAV` (under
    "auto") to hand the file over.

    Returns:
        The step's result and the reader that produced it (``"decord"`` or ``"pyav"``).

    Raises:
        MediaError: the allowed readers failed (one line, naming the file).
    """
    use = reader
    if reader == "auto":
        use, fallback, why = _auto_plan(path)
        if use == "pyav":
            LOG.debug("%s: %s, reading with PyAV", path, why)
            try:
                return pyav_call(path, pyav_fn), "pyav"
            except MediaError as exc:
                if not fallback:
                    raise
                LOG.info("%s: PyAV failed (%s); trying decord", path, exc)
                try:
                    return decord_fn(False), "decord"
                except Exception:  # noqa: BLE001 -- the first reader's reason is the one to report
                    raise exc from None
    if use == "decord":
        try:
            return decord_fn(reader == "auto"), "decord"
        except UsePyAV as exc:
            LOG.debug("%s: %s, reading with PyAV", path, exc)
        except Exception as exc:  # noqa: BLE001 -- DECORDError, RuntimeError, StopIteration, ...
            if reader == "decord":
                raise media_error(path, f"cannot be decoded: {short_reason(exc)}") from None
            LOG.info("%s: decord failed (%s); trying PyAV", path, short_reason(exc))
    return pyav_call(path, pyav_fn), "pyav"


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int],
    resolution: int,
    reader: str = "auto",
    fast: bool = False,
    antialias: bool = False,
) -> tuple[np.ndarray, str]:
    """Decode the frames at ``indices`` in one forward pass, each resized as it is decoded.

    Every distinct index is decoded once, however often and in whatever order it is asked for;
    the rows come back in the order asked for.

    Args:
        path: the video file.
        indices: frame indices (any order, repeats allowed). Indices past the last decodable
            frame (a frame count that lied) get the last decoded frame.
        resolution: output frames are ``resolution x resolution`` (the bicubic resize of
            :func:`vidsearch.media.resize.resize_frames`).
        reader: ``"auto"``, ``"decord"`` or ``"pyav"`` (see the module docstring).
        fast: decode only keyframes: each row is the keyframe nearest its index.
        antialias: antialias the resize; off (the default) is what the published ViCLIP
            models saw (torchvision 0.15.2).

    Returns:
        ``(frames, reader_used)``: uint8 ``[len(indices), resolution, resolution, 3]``, row ``r``
        the frame at ``indices[r]``; and ``"decord"`` or ``"pyav"``.

    Raises:
        MediaError: the file cannot be decoded by any allowed reader (one line, naming it).
        ValueError: empty or negative indices, or an unknown reader.
    """
    check_reader(reader)
    asked = np.asarray([int(i) for i in indices], dtype=np.int64)
    if asked.size == 0:
        raise ValueError("indices is empty")
    if asked.min() < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(asked.min())}")
    wanted, rows = np.unique(asked, return_inverse=True)  # sorted distinct: one forward pass
    path = os.fspath(path)
    check_file(path)
    wanted_list = [int(i) for i in wanted]
    frames, used = with_readers(
        path,
        reader,
        lambda auto: read_decord(path, wanted_list, resolution, fast, auto, antialias),
        lambda: read_pyav(path, wanted_list, resolution, fast, antialias),
    )
    if np.array_equal(wanted, asked):
        return frames, used  # asked sorted and distinct: no copy
    return frames[rows], used  # back to the order asked for, repeats included
