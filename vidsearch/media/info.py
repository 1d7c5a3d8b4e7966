"""What a video file is (:class:`VideoInfo`) and why it cannot be read (one-line MediaErrors).

Shared by both readers and the dispatch in :mod:`vidsearch.media.readers`: a file is checked
here before any decoder sees it, and every decoder failure is turned into one line here.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from vidsearch.errors import MediaError

__all__ = ["VideoInfo", "media_error", "short_reason", "check_file"]


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`vidsearch.media.probe` learns about a video (display orientation, after
    rotation metadata).

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


def media_error(path: str, reason: str) -> MediaError:
    """A one-line MediaError naming the file (its ``path`` field)."""
    reason = " ".join(str(reason).split())
    return MediaError(f"{path}: {reason}", path=path)


_DECORD_PREFIX = re.compile(r"^\[[\d:]+\]\s+\S+:\d+:\s*")


def short_reason(exc: BaseException, limit: int = 120) -> str:
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


def check_file(path: str) -> None:
    """Fail early, with a clear reason, on paths no decoder should be given.

    Raises:
        MediaError: missing, not a regular file, empty, or unreadable.
    """
    try:
        st = os.stat(path)  # follows symlinks: a dangling link or a loop fails here
    except FileNotFoundError:
        raise media_error(path, "file not found (or a broken symlink)") from None
    except OSError as exc:  # ELOOP, ENAMETOOLONG, EACCES on a parent, ...
        raise media_error(path, f"cannot be opened: {short_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise media_error(path, "not a file (a directory or a special file)")
    if st.st_size == 0:
        raise media_error(path, "empty file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else short_reason(exc)
        raise media_error(path, f"cannot be read: {reason}") from None
