"""Live streams read with PyAV: cameras, network streams, capture devices, files paced in real time.

decord cannot read a stream that has no end, so a live source is decoded here with PyAV (FFmpeg).
:class:`LiveReader` is a thread that connects, decodes, cuts frames into windows
(:class:`WindowCutter`: ``num_frames`` frames over ``window`` seconds, one window every
``stride`` seconds, times in wall-clock UTC seconds) and puts them in a :class:`DropOldest`
queue, which drops the oldest pending window when the consumer (the encoder) falls behind, so a
watch never drifts further and further behind real time.

Hangs: FFmpeg gets open and read timeouts as options, and PyAV's interrupt callback gets them
too, but both are known to miss some RTSP stalls (a server that answers the handshake and then
sends nothing). So the decoding runs in a *pump* thread per connection, and the reader waits on
it with its own timeout (the watchdog); a stalled pump is abandoned (told to stop, never waited
on) and a new connection is made. Drops of the connection are recorded as :class:`Gap` s, with
exponential backoff between tries; a source that never connected is an error, not a retry loop.
A source with an end (a file, an MP4 over HTTP, an HLS playlist closed with ENDLIST) is read
once and ends the reader; reconnecting to it would store its windows again.
Protocol options and the frames' wall-clock stamps are :mod:`vidsearch.media.live_source`'s.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from vidsearch.errors import InputError, MediaError
from vidsearch.media.live_source import (
    LIVE_SCHEMES,
    StreamClock,
    check_live_source,
    ffmpeg_options,
    is_local_file,
    scheme_of,
)

__all__ = [
    "LIVE_SCHEMES",
    "DropOldest",
    "Gap",
    "LiveOptions",
    "LiveReader",
    "Window",
    "WindowCutter",
    "check_live_source",
    "ffmpeg_options",
]

T = TypeVar("T")


@dataclass(frozen=True)
class LiveOptions:
    """How a live source is read and cut into windows.

    Attributes:
        window: seconds each window covers.
        stride: seconds between window ends (and how often a window is produced).
        num_frames: frames sampled per window (the model's, 8 for ViCLIP).
        short_side: frames are scaled so that their short side is this many pixels on arrival
            (bounds the memory a window buffer takes; the encoder resizes to its own input).
        open_timeout: seconds to wait for a connection and its first frame.
        read_timeout: seconds without a frame after which the connection counts as dropped.
        realtime: a file is played at its own speed (for demos and tests); otherwise as fast as
            it decodes.
        backoff: first wait before a reconnection; doubled after each failed try up to ``backoff_max``.
        max_pending: windows waiting for the encoder before the oldest is dropped.
        record_to: a folder for the stream's packets, remuxed into rolling segment files
            (:mod:`vidsearch.media.recorder`); None: not recorded.
        segment_seconds: the length of a recording segment.
    """

    window: float = 4.0
    stride: float = 2.0
    num_frames: int = 8
    short_side: int = 224
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    realtime: bool = False
    backoff: float = 0.5
    backoff_max: float = 30.0
    max_pending: int = 4
    record_to: Path | None = None
    segment_seconds: float = 10.0


@dataclass
class Window:
    """Frames of one window: ``frames`` uint8 ``[num_frames, H, W, 3]`` from ``start`` to ``end`` (UTC seconds)."""

    start: float
    end: float
    frames: np.ndarray


@dataclass
class Gap:
    """A time the stream gave no frames (``end`` None while it lasts), and why."""

    start: float
    end: float | None
    reason: str


class DropOldest(Generic[T]):
    """A bounded queue whose ``put`` never blocks: when full, the oldest item is dropped (and counted)."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._maxsize = max(1, maxsize)
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: T) -> None:
        """Add ``item``, dropping the oldest pending one if the queue is full."""
        with self._cond:
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None after ``timeout`` seconds without one."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class WindowCutter:
    """Cuts timed frames into windows of ``num_frames`` frames over ``window`` s, every ``stride`` s.

    A window's frames are the ones nearest the midpoints of ``num_frames`` equal parts of it (the
    segment-midpoint sampling ViCLIP uses on files). Only frames of the last ``window`` seconds are
    kept. :meth:`reset` after a gap: no window spans one.
    """

    def __init__(self, window: float, stride: float, num_frames: int) -> None:
        if window <= 0 or stride <= 0 or num_frames < 1:
            raise InputError("must be positive seconds", argument="window/stride")
        self.window, self.stride, self.num_frames = window, stride, num_frames
        self._times: deque[float] = deque()
        self._frames: deque[np.ndarray] = deque()
        self._next_end: float | None = None

    def reset(self) -> None:
        """Forget buffered frames (the stream was interrupted)."""
        self._times.clear()
        self._frames.clear()
        self._next_end = None

    def push(self, t: float, frame: np.ndarray) -> list[Window]:
        """Add the frame shown at ``t``; the windows that ended by ``t``."""
        if self._times and t <= self._times[-1]:
            return []  # a repeated or out-of-order timestamp adds nothing
        self._times.append(t)
        self._frames.append(frame)
        if self._next_end is None:
            self._next_end = t + self.window
        out: list[Window] = []
        while t >= self._next_end:
            out.append(self._cut(self._next_end))
            self._next_end += self.stride
        while self._times and self._times[0] < t - self.window - self.stride:
            self._times.popleft()
            self._frames.popleft()
        return out

    def _cut(self, end: float) -> Window:
        start = end - self.window
        times = np.asarray(self._times)
        seg = self.window / self.num_frames
        targets = start + seg * (np.arange(self.num_frames) + 0.5)
        idx = (
            np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
            if len(times) > 1
            else np.zeros_like(targets, dtype=int)
        )
        if len(times) > 1:  # the nearer of the two neighbours
            left_nearer = (targets - times[idx - 1]) < (times[idx] - targets)
            idx = np.where(left_nearer, idx - 1, idx)
        return Window(start, end, np.stack([self._frames[int(i)] for i in idx]))


_ENDED = object()


@dataclass(frozen=True)
class _Opened:
    """The pump's first word on a connection: whether the source has an end (a file, an MP4 over
    HTTP, a finished HLS playlist) or is live (RTSP, UDP, a live playlist, a device)."""

    finite: bool


def _open_failure(source: str, exc: Exception) -> str:
    """One line for an FFmpeg open failure; a protocol this FFmpeg was built without says so."""
    import av

    if isinstance(exc, av.error.ProtocolNotFoundError):
        scheme = source.split("://", 1)[0]
        return (
            f"{NO_PROTOCOL} for {scheme}://; use an FFmpeg/PyAV built with it, or relay the stream as rtsp:// or udp://"
        )
    return _one_line(exc)


NO_PROTOCOL = "the FFmpeg that PyAV bundles has no support"


class _Pump(threading.Thread):
    """One connection: decodes frames and hands them over; abandoned (never joined) when it stalls."""

    def __init__(self, source: str, options: LiveOptions, out: queue.Queue[Any]) -> None:
        super().__init__(name="vidsearch-live-pump", daemon=True)
        self.source, self.options, self.out = source, options, out
        self.stop = threading.Event()

    def run(self) -> None:
        import av

        o = self.options
        try:
            container = av.open(
                self.source,
                options=ffmpeg_options(self.source, o.open_timeout, o.read_timeout),
                timeout=(o.open_timeout, o.read_timeout),
            )
        except Exception as exc:  # every FFmpeg failure is a reason for the reader, not a crash
            self._put(RuntimeError(_open_failure(self.source, exc)))
            return
        if self.stop.is_set():  # abandoned while FFmpeg was connecting: nothing to read it for
            container.close()
            return
        try:
            # An HTTP source with a duration is a file (an MP4, a finished HLS playlist); RTSP servers
            # announce a range for recorded files too, but a camera that stops is reconnected.
            finite = is_local_file(self.source) or (
                scheme_of(self.source) in ("http", "https") and container.duration is not None
            )
            self._put(_Opened(finite))
            self._decode(container, finite)
        except Exception as exc:
            self._put(exc)
        finally:
            container.close()

    def _decode(self, container: Any, finite: bool) -> None:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        recorder = None
        if self.options.record_to is not None:
            from vidsearch.media.recorder import SegmentRecorder

            recorder = SegmentRecorder(self.options.record_to, stream, self.options.segment_seconds)
        try:
            self._demux(container, stream, recorder, finite)
        finally:
            if recorder is not None:
                recorder.close()

    def _demux(self, container: Any, stream: Any, recorder: Any, finite: bool) -> None:
        # A source with an end keeps its media spacing (and is paced when asked); a live one is
        # stamped from media time too, but never ahead of the clock (see StreamClock).
        clock = StreamClock(live=not finite)
        pace = self.options.realtime and finite
        for packet in container.demux(stream):
            if self.stop.is_set():
                return
            now = time.time()
            if pace and packet.pts is not None:  # sleep until the packet's time comes
                due = clock.at(float(packet.pts * stream.time_base), now)
                if due > now:
                    time.sleep(due - now)
                    now = time.time()
            frames = packet.decode()  # before the recorder takes the packet over
            if recorder is not None:
                media_t = None if packet.pts is None else float(packet.pts * stream.time_base)
                recorder.write(packet, clock.at(media_t, now))
            for frame in frames:
                # with reordered (B) frames a frame's time is its own pts, not its packet's
                self._put((clock.stamp(frame.time, now), self._scaled(frame)))
        self._put(_ENDED)

    def _put(self, item: Any) -> None:
        # Never blocks past a stop: a reader that stopped reading must not keep the recording open.
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _scaled(self, frame: Any) -> np.ndarray:
        side = self.options.short_side
        w, h = frame.width, frame.height
        scale = side / min(w, h)
        size = (max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2))
        return np.asarray(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))


@dataclass
class ReaderState:
    """What a reader has seen: frames, windows, dropped windows, gaps, whether it ever connected."""

    frames: int = 0
    windows: int = 0
    connected: bool = False
    gaps: list[Gap] = field(default_factory=list)
    error: str | None = None
    ended: bool = False
    abandoned: int = 0  # stalled connections given up on whose FFmpeg call has not returned yet
    abandoned_total: int = 0


# A stalled connection's thread cannot be killed, only abandoned; each holds a socket and
# FFmpeg's buffers until its call returns. At most this many wait at once: past it the reader
# waits for one to return before it connects again, so a source that hangs every connection
# costs a bounded number of threads, not one per reconnection.
MAX_ABANDONED = 4


class LiveReader(threading.Thread):
    """Reads ``source`` until stopped (or a file ends), putting windows into ``out``.

    Args:
        source: a URL, a device or a file (checked with :func:`check_live_source`).
        options: timeouts, window, stride, pacing.
        out: where windows go (the oldest are dropped when the consumer falls behind).
        on_status: called with a one-line status when the connection changes (logs, the CLI).
    """

    def __init__(
        self,
        source: str,
        options: LiveOptions,
        out: DropOldest[Window],
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="vidsearch-live-reader", daemon=True)
        self.source, self.options, self.out = source, options, out
        self.on_status = on_status or (lambda _msg: None)
        self.state = ReaderState()
        self._stop_event = threading.Event()
        self.cutter = WindowCutter(options.window, options.stride, options.num_frames)
        self._finite = is_local_file(source)  # until the first connection says otherwise
        self._abandoned: list[_Pump] = []
        self._said_full = False

    def stop(self) -> None:
        """Ask the reader to finish (it does within about a second)."""
        self._stop_event.set()

    def run(self) -> None:
        backoff = self.options.backoff
        while not self._stop_event.is_set():
            if not self._room_for_a_connection():
                if self._stop_event.wait(min(backoff, 1.0)):
                    break
                continue
            reason, got_frames = self._connection()
            if got_frames:  # a connection that worked starts the backoff over
                backoff = self.options.backoff
            if self._stop_event.is_set() or self.state.ended:
                break
            if not self.state.connected:  # never connected: a wrong URL, not a camera that dropped
                self.state.error = reason
                break
            gap = self.state.gaps[-1] if self.state.gaps and self.state.gaps[-1].end is None else None
            if gap is None:
                self.state.gaps.append(Gap(time.time(), None, reason))
                self.on_status(f"{self.source}: stream lost ({reason}); reconnecting")
            self.cutter.reset()
            if self._stop_event.wait(backoff):
                break
            backoff = min(backoff * 2, self.options.backoff_max)
        self.state.ended = True
        open_gap = self.state.gaps[-1] if self.state.gaps else None
        if open_gap is not None and open_gap.end is None:
            open_gap.end = time.time()

    def _connection(self) -> tuple[str, bool]:
        """One connection until it ends: the reason it ended, and whether it gave frames."""
        frames: queue.Queue[Any] = queue.Queue(maxsize=64)
        pump = _Pump(self.source, self.options, frames)
        pump.start()
        wait = self.options.open_timeout
        got_any = False
        try:
            while not self._stop_event.is_set():
                try:
                    item = frames.get(timeout=min(wait, 0.5))
                except queue.Empty:
                    wait -= 0.5
                    if wait <= 0:  # the watchdog: FFmpeg's own timeouts did not fire
                        what = "no frames" if got_any else "no frames since connecting"
                        return f"{what} for {self._limit(got_any):g} s", got_any
                    continue
                if isinstance(item, _Opened):
                    if item.finite and self.state.connected and not self._finite:
                        # a live source that now has an end (an HLS playlist closed with ENDLIST):
                        # the broadcast is over; reading it again would store its last minutes twice
                        self.state.ended = True
                        return "the stream ended", got_any
                    self._finite = item.finite
                    continue
                if item is _ENDED:
                    if self._finite:  # a file, an MP4 over HTTP, a finished playlist: done
                        self.state.ended = True
                    return "the stream ended", got_any
                if isinstance(item, Exception):
                    return _one_line(item), got_any
                if not got_any:
                    got_any = True
                    self._connected()
                wait = self.options.read_timeout
                t, frame = item
                self.state.frames += 1
                for window in self.cutter.push(t, frame):
                    self.state.windows += 1
                    self.out.put(window)
            return "stopped", got_any
        finally:
            pump.stop.set()  # a stalled pump is abandoned: it exits (closing its input) when FFmpeg returns
            if self._stop_event.is_set():
                pump.join(timeout=2.0)  # stopping: let it close the recording segment playable
            if pump.is_alive():
                self._abandoned.append(pump)
                self.state.abandoned_total += 1
                self.state.abandoned = len(self._abandoned)

    def _room_for_a_connection(self) -> bool:
        """Whether fewer than :data:`MAX_ABANDONED` abandoned connections are still stuck in FFmpeg."""
        self._abandoned = [p for p in self._abandoned if p.is_alive()]
        self.state.abandoned = len(self._abandoned)
        if len(self._abandoned) < MAX_ABANDONED:
            self._said_full = False
            return True
        if not self._said_full:
            self._said_full = True
            self.on_status(f"{self.source}: {len(self._abandoned)} stalled connections have not returned; waiting")
        return False

    def _limit(self, got_any: bool) -> float:
        return self.options.read_timeout if got_any else self.options.open_timeout

    def _connected(self) -> None:
        first = not self.state.connected
        self.state.connected = True
        if self.state.gaps and self.state.gaps[-1].end is None:
            self.state.gaps[-1].end = time.time()
            self.on_status(f"{self.source}: reconnected")
        elif first:
            self.on_status(f"{self.source}: connected")


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def stream_error(source: str, reason: str) -> MediaError:
    """The error of a source that could not be read at all (one line for the user)."""
    if reason.startswith(NO_PROTOCOL):  # the reason carries its own remedy
        return MediaError(f"{source}: cannot read the stream: {reason}")
    return MediaError(f"{source}: cannot read the stream: {reason}; check the URL, the camera and the network")
