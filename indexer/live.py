"""A live stream as a source, and the producer that encodes its windows as they complete.

:class:`StreamSource` is a :class:`~vidsearch.indexer.sources.Source` with ``clock = "wall"``:
its segments' times are UTC seconds. :class:`LiveProducer` is a
:class:`~vidsearch.indexer.producer.Producer` that runs a :class:`~vidsearch.media.live.LiveReader`
per stream and yields one :class:`~vidsearch.indexer.producer.Encoded` per window as soon as it
is encoded, until the watch is stopped (or a file played in real time ends). The runner
(:func:`vidsearch.indexer.pipeline.run_pipeline`) hands them to the library's sink like any other
result; the sink appends a stream's windows instead of replacing them (``clock == "wall"``).
Alerts (:mod:`vidsearch.indexer.alerts`) see every window's vector on the way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from vidsearch.indexer.alerts import AlertEvent, Alerts
from vidsearch.indexer.producer import Encoded, Result, Work
from vidsearch.indexer.sources import Clock
from vidsearch.media.info import VideoInfo
from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window, stream_error
from vidsearch.media.sampling import SegmentPlan

__all__ = ["LiveProducer", "StreamSource", "WatchReport"]

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSource:
    """A live stream: its URL (or device, or file played live) and the name it is shown under.

    The library keys it by ``uri``; a stream has no size, change time or fingerprint.
    """

    uri: str
    name: str
    clock: ClassVar[Clock] = "wall"
    size: int = -1
    mtime_ns: int = 0

    def fingerprint(self) -> str:
        """A stream has no content fingerprint."""
        return ""


@dataclass
class WatchReport:
    """What a watch did: windows read, encoded, dropped (the encoder fell behind), gaps, alerts."""

    stream: str
    windows: int = 0
    encoded: int = 0
    dropped: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    alerts: int = 0
    error: str | None = None


class LiveProducer:
    """Encodes the windows of a stream as they complete.

    Args:
        encoder: the model (``encode_video``, ``num_frames``).
        options: how the stream is read and cut.
        alerts: the stream's standing queries (None: none).
        on_alert: called with every alert start and end, in this thread, as the window is scored.
        on_status: one-line connection news (connected, lost, reconnected).
        stop_after: seconds after which the watch ends by itself (None: until stopped).
        recordings: the folder of the stream's recording (``options.record_to``): alert clips
            are cut from it with ``pre_roll``/``post_roll`` seconds around the event, and
            segments older than ``retain`` seconds are deleted, and with them (``forget_before``,
            called with the cut-off time) the stream's stored windows.
    """

    def __init__(
        self,
        encoder: Any,
        options: LiveOptions,
        alerts: Alerts | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        stop_after: float | None = None,
        pre_roll: float = 5.0,
        post_roll: float = 5.0,
        retain: float | None = None,
        forget_before: Callable[[float], object] | None = None,
    ) -> None:
        self.encoder, self.options, self.alerts = encoder, options, alerts
        self.on_alert = on_alert or (lambda _event: None)
        self.on_status = on_status
        self.stop_after = stop_after
        self.report: WatchReport | None = None
        self._reader: LiveReader | None = None
        self._queue: DropOldest[Window] = DropOldest(options.max_pending)
        self._encode_seconds = 0.0
        self.pre_roll, self.post_roll, self.retain = pre_roll, post_roll, retain
        self.forget_before = forget_before
        self._clips: list[AlertEvent] = []  # ended alerts waiting for their post-roll to be recorded
        self._pruned = 0.0

    @property
    def encode_seconds(self) -> float:
        """Time spent encoding windows so far."""
        return self._encode_seconds

    def __enter__(self) -> LiveProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        reader = self._reader
        if reader is not None:
            reader.stop()
            reader.join(timeout=2.0)
            self._finish(reader)

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        """The stream's windows, encoded, until stopped; one stream per producer.

        Raises:
            MediaError: the stream could not be opened at all (never connected).
        """
        items = list(work)
        if len(items) != 1:
            raise ValueError("a LiveProducer reads exactly one stream")
        item = items[0]
        source = item.source
        name = getattr(source, "name", source.uri)
        self.report = WatchReport(stream=name)
        reader = LiveReader(source.uri, self.options, self._queue, self.on_status)
        self._reader = reader
        reader.start()
        deadline = None if self.stop_after is None else time.monotonic() + self.stop_after
        while deadline is None or time.monotonic() < deadline:
            window = self._queue.get(timeout=0.25)
            self._housekeeping(final=False)
            if window is None:
                if not reader.is_alive() and not len(self._queue):
                    break
                continue
            yield self._encoded(item, window)
        reader.stop()
        reader.join(timeout=2.0)
        self._finish(reader)
        if reader.state.error is not None and not reader.state.connected:
            raise stream_error(source.uri, reader.state.error)

    def _encoded(self, item: Work, window: Window) -> Encoded:
        from vidsearch.media.jobs import DecodedVideo

        t = time.perf_counter()
        vector = np.asarray(self.encoder.encode_video(window.frames[None]), dtype=np.float32)
        self._encode_seconds += time.perf_counter() - t
        assert self.report is not None
        self.report.encoded += 1
        if self.alerts is not None:
            for event in self.alerts.observe(window.start, window.end, vector[0]):
                self.report.alerts += event.kind == "start"
                self._deliver(event)
        h, w = window.frames.shape[1:3]
        duration = window.end - window.start
        info = VideoInfo(item.source.uri, len(window.frames), len(window.frames) / duration, duration, w, h)
        segments = [SegmentPlan("window", window.start, window.end, ())]
        video = DecodedVideo(item.job_id, item.source.uri, info, segments, np.zeros(0), np.zeros((0, 0)), "pyav", 0)
        return Encoded(item.job_id, item.source, video, vector)

    def _finish(self, reader: LiveReader) -> None:
        report = self.report
        if report is None:
            return
        report.windows = reader.state.windows
        report.dropped = self._queue.dropped
        report.gaps = [{"start": g.start, "end": g.end, "reason": g.reason} for g in reader.state.gaps]
        report.error = reader.state.error
        if self.alerts is not None:
            for event in self.alerts.close(time.time()):
                self._deliver(event)
            self.alerts = None  # closed once, whichever way the watch ended
        self._housekeeping(final=True)  # the reader has stopped: every segment is closed

    def _deliver(self, event: AlertEvent) -> None:
        if event.kind == "end" and self.options.record_to is not None:
            self._clips.append(event)  # its line waits for the clip
        else:
            self.on_alert(event)

    def _housekeeping(self, final: bool) -> None:
        """Cut the clips whose post-roll is recorded; delete old segments now and then."""
        now = time.time()
        if self.retain is not None and now - self._pruned > 60:
            self._pruned = now
            if self.forget_before is not None:
                self.forget_before(now - self.retain)
            if self.options.record_to is not None:
                from vidsearch.media.recorder import prune

                prune(self.options.record_to, now - self.retain)
        folder = self.options.record_to
        if folder is None:
            return
        from vidsearch.media.recorder import cut_clip, segment_start, segments_in

        segments = segments_in(folder)
        newest = segment_start(segments[-1]) if segments else 0.0
        for event in list(self._clips):
            alert = event.alert
            end = (alert.end or alert.start) + self.post_roll
            if final or newest > end:  # a later segment has begun: the post-roll's one is closed
                self._clips.remove(event)
                try:
                    clip = cut_clip(folder, alert.start - self.pre_roll, end, folder / "clips" / f"{alert.id}.mkv")
                except Exception as exc:  # noqa: BLE001 -- a clip that cannot be cut must not stop the watch
                    LOG.warning("could not cut the clip of alert %s: %s", alert.id, exc)
                    clip = None
                alert.clip = None if clip is None else str(clip)
                self.on_alert(event)
