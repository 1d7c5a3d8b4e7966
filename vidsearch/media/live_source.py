"""What a live source is, how FFmpeg opens it, and the wall-clock time of its frames.

Each protocol takes its timeouts under its own option name and unit (FFmpeg's protocol docs):
RTSP ``timeout`` is the socket I/O timeout in microseconds; HTTP (and the HLS segments, which
inherit it) and RTMP take the generic ``rw_timeout`` in microseconds; RTMP's own ``timeout`` is
*seconds to wait for a publisher* and turns the client into a listening server, so it must
never be given; UDP ``timeout`` is microseconds; SRT ``timeout`` is microseconds and its
``connect_timeout`` milliseconds.

Frames are stamped from their media timestamps (:class:`StreamClock`), not from when they
arrive: HLS delivers a segment's seconds of video in one burst, and stamping a burst by arrival
would squeeze seconds of frames into milliseconds and cut windows of repeated frames.
"""

from __future__ import annotations

import os
import stat
from urllib.parse import urlsplit

from vidsearch.errors import InputError

__all__ = ["LIVE_SCHEMES", "StreamClock", "check_live_source", "ffmpeg_options", "is_local_file", "scheme_of"]

LIVE_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "srt", "rtmp")


def scheme_of(source: str) -> str:
    """The URL scheme of ``source`` in lower case; "" for a device or a file."""
    return urlsplit(source).scheme.lower() if "://" in source else ""


def is_local_file(source: str) -> bool:
    """Whether ``source`` is a file on this machine (neither a URL nor a capture device)."""
    return "://" not in source and not source.startswith("/dev/")


def check_live_source(source: str) -> str:
    """``source`` checked before anything opens it: a URL of a known scheme, a device, or a file.

    Raises:
        InputError: an unsupported scheme, a URL without a host, a device or file that does not exist.
    """
    if "://" in source:
        parts = urlsplit(source)
        scheme = parts.scheme.lower()
        if scheme not in LIVE_SCHEMES:
            known = ", ".join(f"{s}://" for s in LIVE_SCHEMES)
            raise InputError(f"{source}: unsupported scheme {scheme!r}; use one of {known}, a device or a file")
        if not parts.hostname and scheme != "udp":
            raise InputError(f"{source}: the URL has no host; write it as {scheme}://HOST[:PORT]/PATH")
        return source
    if source.startswith("/dev/"):
        try:
            mode = os.stat(source).st_mode
        except OSError:
            raise InputError(f"{source}: no such capture device; list cameras with `ls /dev/video*`") from None
        if not stat.S_ISCHR(mode):
            raise InputError(f"{source}: not a capture device (a character device such as /dev/video0)")
        return source
    if not os.path.isfile(source):
        raise InputError(f"{source}: no such file, and not a stream URL (rtsp://, http(s)://, udp://, srt://)")
    return source


def ffmpeg_options(source: str, open_timeout: float, read_timeout: float) -> dict[str, str]:
    """FFmpeg's own options for opening ``source``: its protocol's timeouts, in its units."""
    scheme = scheme_of(source)
    usec = str(int(read_timeout * 1e6))
    if scheme in ("rtsp", "rtsps"):
        # TCP: interleaved RTP survives NAT and loss; "timeout" is the socket I/O timeout (us).
        return {"rtsp_transport": "tcp", "timeout": usec}
    if scheme in ("http", "https"):
        # rw_timeout also reaches the segments of an HLS playlist; the reader does the reconnecting.
        return {"rw_timeout": usec, "reconnect": "0"}
    if scheme == "rtmp":
        return {"rw_timeout": usec}  # never "timeout": for RTMP that means listen for a publisher
    if scheme == "udp":
        # A busy machine that reads late loses datagrams (a gap in the picture) rather than the stream.
        return {"timeout": usec, "overrun_nonfatal": "1"}
    if scheme == "srt":
        return {"timeout": usec, "connect_timeout": str(int(open_timeout * 1000))}
    return {}


class StreamClock:
    """The wall-clock UTC time of each frame, from its media timestamp.

    The first frame is stamped with the time it arrived; later frames keep the spacing of their
    media timestamps. On a live stream (``live``), stamps never run ahead of the clock (a burst,
    such as the backlog of segments an HLS player starts with, is stamped as it arrives and the
    stamps continue from there), and the clock starts over when the media time jumps back or by
    more than ``max_jump`` seconds (a restarted encoder, a timestamp wrap, a discontinuity), or
    falls more than ``max_jump`` behind the clock. A file keeps its media spacing throughout.
    """

    def __init__(self, live: bool, max_jump: float = 10.0) -> None:
        self.live, self.max_jump = live, max_jump
        self._offset: float | None = None  # wall time minus media time
        self._last_media: float | None = None
        self._last: float | None = None

    def at(self, media_t: float | None, now: float) -> float:
        """The wall time of ``media_t`` as the clock stands, without moving it (for packets)."""
        if media_t is None or self._offset is None:
            return now
        return media_t + self._offset

    def stamp(self, media_t: float | None, now: float) -> float:
        """The wall time of the frame shown at ``media_t`` that arrived at ``now``."""
        if media_t is None:
            t = now
        else:
            jumped = self._last_media is not None and not 0 <= media_t - self._last_media <= self.max_jump
            if self._offset is None or (self.live and jumped):
                self._offset = now - media_t
            t = media_t + self._offset
            if self.live and (t > now or t < now - self.max_jump):
                self._offset = now - media_t
                t = now
            self._last_media = media_t
        if self._last is not None and t < self._last:
            t = self._last  # never back in time: a window's frames stay in order
        self._last = t
        return t
