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

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidsearch.indexer.alerts import AlertEvent, Alerts
from vidsearch.indexer.producer import Encoded, Result, Work
from vidsearch.indexer.sources import Clock
from vidsearch.media.info import VideoInfo
from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, ReaderState, Window, stream_error
from vidsearch.media.recorder import recordings_folder
from vidsearch.media.sampling import SegmentPlan

__all__ = ["LiveProducer", "StreamSource", "WatchReport", "recordings_folder"]

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


@dataclass
class _Live:
    """One stream of a watch: its reader, pending windows, alerts and clips waiting for post-roll."""

    work: Work
    reader: LiveReader
    queue: DropOldest[Window]
    alerts: Alerts | None
    report: WatchReport
    folder: Path | None
    clips: list[AlertEvent] = field(default_factory=list)
    finished: bool = False


class LiveProducer:
    """Encodes the windows of one or more streams as they complete.

    Args:
        encoder: the model (``encode_video``, ``num_frames``).
        options: how the streams are read and cut (``record_to``: the root of the recordings,
            one folder per stream under it; None: not recorded).
        alerts: each stream's standing queries, by stream name (a stream without: none).
        on_alert: called with every alert start and end, in this thread, as the window is scored;
            an end waits until its clip (``pre_roll`` before to ``post_roll`` after) is cut.
        on_status: one-line news by stream (connected, lost, reconnected, cannot be read).
        stop_after: seconds after which the watch ends by itself (None: until stopped).
        retain: seconds of recordings kept; older segments are deleted, and with them
            (``forget_before(uri, cut-off)``) the stream's stored windows.
        on_progress: called often (``name, uri, reader state, dropped windows, the window just
            encoded or None, finished``) so a stream's status can be shown elsewhere
            (:class:`~vidsearch.indexer.stream_status.StatusBoard`); it must be quick.
    """

    def __init__(
        self,
        encoder: Any,
        options: LiveOptions,
        alerts: dict[str, Alerts] | None = None,
        on_alert: Callable[[AlertEvent], None] | None = None,
        on_status: Callable[[str, str], None] | None = None,
        stop_after: float | None = None,
        pre_roll: float = 5.0,
        post_roll: float = 5.0,
        retain: float | None = None,
        forget_before: Callable[[str, float], object] | None = None,
        on_progress: Callable[[str, str, ReaderState, int, Window | None, bool], None] | None = None,
    ) -> None:
        self.encoder, self.options, self.alerts = encoder, options, alerts or {}
        self.on_alert = on_alert or (lambda _event: None)
        self.on_status = on_status or (lambda _stream, _msg: None)
        self.stop_after = stop_after
        self.pre_roll, self.post_roll, self.retain = pre_roll, post_roll, retain
        self.forget_before = forget_before
        self.on_progress = on_progress
        self.reports: list[WatchReport] = []
        self._streams: list[_Live] = []
        self._encode_seconds = 0.0
        self._pruned = 0.0

    @property
    def encode_seconds(self) -> float:
        """Time spent encoding windows so far."""
        return self._encode_seconds

    def __enter__(self) -> LiveProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_all()

    def _start(self, item: Work) -> _Live:
        name = str(getattr(item.source, "name", item.source.uri))
        root = self.options.record_to
        folder = None if root is None else recordings_folder(root, name)
        options = dataclasses.replace(self.options, record_to=folder)
        queue: DropOldest[Window] = DropOldest(options.max_pending)
        reader = LiveReader(item.source.uri, options, queue, lambda msg: self.on_status(name, msg))
        live = _Live(item, reader, queue, self.alerts.get(name), WatchReport(stream=name), folder)
        self.reports.append(live.report)
        reader.start()
        return live

    def run(self, work: Iterable[Work]) -> Iterator[Result]:
        """Every stream's windows, encoded, until stopped (or every stream has ended).

        Raises:
            MediaError: no stream could be opened at all (one that cannot, among others that
                can, is reported through ``on_status`` and its report's ``error``).
        """
        self._streams = [self._start(item) for item in work]
        deadline = None if self.stop_after is None else time.monotonic() + self.stop_after
        while deadline is None or time.monotonic() < deadline:
            idle = True
            for live in self._streams:
                window = live.queue.get(timeout=0)
                if window is not None:
                    idle = False
                    yield self._encoded(live, window)
                elif not live.reader.is_alive() and not live.finished:
                    self._finish(live)
                self._progress(live)
            self._housekeeping(final=False)
            if all(live.finished for live in self._streams):
                break
            if idle:
                time.sleep(0.02)
        self._stop_all()
        failed = [live for live in self._streams if live.report.error is not None and not live.reader.state.connected]
        if failed and len(failed) == len(self._streams):
            raise stream_error(failed[0].work.source.uri, str(failed[0].report.error))

    def _encoded(self, live: _Live, window: Window) -> Encoded:
        from vidsearch.media.jobs import DecodedVideo

        t = time.perf_counter()
        vector = np.asarray(self.encoder.encode_video(window.frames[None]), dtype=np.float32)
        self._encode_seconds += time.perf_counter() - t
        live.report.encoded += 1
        self._progress(live, window)
        if live.alerts is not None:
            for event in live.alerts.observe(window.start, window.end, vector[0]):
                live.report.alerts += event.kind == "start"
                self._deliver(live, event)
        item = live.work
        h, w = window.frames.shape[1:3]
        duration = window.end - window.start
        info = VideoInfo(item.source.uri, len(window.frames), len(window.frames) / duration, duration, w, h)
        segments = [SegmentPlan("window", window.start, window.end, ())]
        video = DecodedVideo(item.job_id, item.source.uri, info, segments, np.zeros(0), np.zeros((0, 0)), "pyav", 0)
        return Encoded(item.job_id, item.source, video, vector)

    def _stop_all(self) -> None:
        for live in self._streams:
            live.reader.stop()
        for live in self._streams:
            live.reader.join(timeout=2.0)
            self._finish(live)
        self._housekeeping(final=True)  # the readers have stopped: every segment is closed

    def _finish(self, live: _Live) -> None:
        if live.finished:
            return
        live.finished = True
        report, state = live.report, live.reader.state
        report.windows, report.dropped = state.windows, live.queue.dropped
        report.gaps = [{"start": g.start, "end": g.end, "reason": g.reason} for g in state.gaps]
        report.error = state.error
        if state.error is not None and not state.connected and len(self._streams) > 1:
            # among others it is news; alone it is the watch's error (raised by run)
            self.on_status(report.stream, f"cannot read the stream: {state.error}")
        if live.alerts is not None:
            for event in live.alerts.close(time.time()):
                self._deliver(live, event)
        self._progress(live)

    def _progress(self, live: _Live, window: Window | None = None) -> None:
        if self.on_progress is not None:
            name, uri = live.report.stream, live.work.source.uri
            self.on_progress(name, uri, live.reader.state, live.queue.dropped, window, live.finished)

    def _deliver(self, live: _Live, event: AlertEvent) -> None:
        if event.kind == "end" and live.folder is not None:
            live.clips.append(event)  # its line waits for the clip
        else:
            self.on_alert(event)

    def _housekeeping(self, final: bool) -> None:
        """Cut the clips whose post-roll is recorded; apply the retention now and then."""
        now = time.time()
        if self.retain is not None and now - self._pruned > 60:
            self._pruned = now
            from vidsearch.media.recorder import prune

            for live in self._streams:
                if self.forget_before is not None:
                    self.forget_before(live.work.source.uri, now - self.retain)
                if live.folder is not None:
                    prune(live.folder, now - self.retain)
        for live in self._streams:
            if live.folder is not None and live.clips:
                self._cut_clips(live, final)

    def _cut_clips(self, live: _Live, final: bool) -> None:
        from vidsearch.media.recorder import cut_clip, segment_start, segments_in

        assert live.folder is not None
        segments = segments_in(live.folder)
        newest = segment_start(segments[-1]) if segments else 0.0
        for event in list(live.clips):
            alert = event.alert
            end = (alert.end or alert.start) + self.post_roll
            if not (final or newest > end):  # a later segment has begun: the post-roll's one is closed
                continue
            live.clips.remove(event)
            out = live.folder / "clips" / f"{alert.id}.mp4"  # MP4: a browser plays it from the streams page
            try:
                clip = cut_clip(live.folder, alert.start - self.pre_roll, end, out)
            except Exception as exc:  # noqa: BLE001 -- a clip that cannot be cut must not stop the watch
                LOG.warning("could not cut the clip of alert %s: %s", alert.id, exc)
                clip = None
            alert.clip = None if clip is None else str(clip)
            self.on_alert(event)
