"""`vidsearch watch SOURCE`: index a live stream as it plays, and raise alerts on standing queries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number
from vidsearch.cli.common import (
    CheckpointOption,
    JsonOption,
    LibraryOption,
    ModelConfigOption,
    ModelOption,
    PrecisionOption,
    err_console,
    open_library,
)
from vidsearch.cli.format import shown
from vidsearch.cli.watch_rules import check_labels, stream_alerts, stream_specs
from vidsearch.indexer.options import IndexOptions, IndexReport
from vidsearch.models.opener import open_encoder
from vidsearch.models.spec import EncoderSpec
from vidsearch.usecases.when import parse_duration

if TYPE_CHECKING:
    from vidsearch.indexer.alerts import AlertEvent, Rule
    from vidsearch.indexer.live import WatchReport
    from vidsearch.store.library import Library

# Seconds a window covers, and between windows: ViCLIP's 8 frames over 4 s, a window every 2 s,
# so an event is seen at most window + stride seconds after it starts.
DEFAULT_WINDOW = 4.0
DEFAULT_STRIDE = 2.0
DEFAULT_RETAIN = "24h"  # recordings kept by default: a bound, so a forgotten watch never fills a disk


@app.command("watch")
def watch_command(
    source: str = typer.Argument(
        ...,
        help="rtsp://, rtsps://, http(s)://, udp://, srt:// URL, a capture device (/dev/video0), a file, or a TOML file of [[stream]] tables.",
    ),
    name: str | None = typer.Option(None, "--name", help="The stream's name in alerts and results (default: SOURCE)."),
    alert: list[str] = typer.Option([], "--alert", help="A standing text query; repeat for several."),
    label: list[str] = typer.Option(
        [], "--label", help="A standing action label of --labels (e.g. 'playing guitar'); repeat for several."
    ),
    labels: str = typer.Option(
        "kinetics400",
        "--labels",
        metavar="SET",
        help="The label set of --label: kinetics400, ucf101, hmdb51, ... or a file.",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Score (cosine similarity, as `query` shows) at which a text alert fires. Default: calibrated, "
        "the median of the query's scores on the scene's background plus 4 robust standard deviations "
        "(background: the library's stored windows of the stream, else of the model; with fewer than 30, "
        "the stream's first 15 windows, and the alert fires only after them). The chosen threshold is printed.",
        show_default=False,
    ),
    window: float = typer.Option(DEFAULT_WINDOW, "--window", help="Seconds each window covers."),
    stride: float = typer.Option(DEFAULT_STRIDE, "--stride", help="Seconds between windows."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own speed, as a live stream."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds (default: never)."),
    open_timeout: float = typer.Option(10.0, "--open-timeout", help="Seconds to wait for the stream's first frame."),
    read_timeout: float = typer.Option(10.0, "--read-timeout", help="Seconds without frames before reconnecting."),
    record: bool = typer.Option(
        True, "--record/--no-record", help="Keep the stream's packets (not re-encoded) and cut alert clips from them."
    ),
    retain: str = typer.Option(
        DEFAULT_RETAIN, "--retain", help="Delete recordings older than this (e.g. 90m, 24h, 7d) so a disk never fills."
    ),
    library: Path | None = LibraryOption,
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    on_alert_url: str | None = typer.Option(
        None, "--on-alert", metavar="URL", help="Also POST every alert line as JSON to URL (never blocks the watch)."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Index SOURCE's windows as they play (queryable beside files) and print alerts as they happen."""

    check_number("--window", window, low=0, above=True, unit="seconds")
    check_number("--stride", stride, low=0, above=True, unit="seconds")
    check_number("--threshold", threshold, low=-1, high=1)
    check_number("--duration", duration, low=0, above=True, unit="seconds")
    check_number("--open-timeout", open_timeout, low=0, above=True, unit="seconds")
    check_number("--read-timeout", read_timeout, low=0, above=True, unit="seconds")
    specs = stream_specs(source, name, alert, threshold, label)
    check_labels(specs, labels)  # before the model loads
    retain_seconds = parse_duration(retain, argument="retain")
    from vidsearch.indexer.webhook import Webhook, check_webhook_url

    webhook = Webhook(check_webhook_url(on_alert_url)) if on_alert_url else None

    from vidsearch.indexer.live import LiveProducer, StreamSource
    from vidsearch.indexer.pipeline import run_pipeline, sampling_dict
    from vidsearch.indexer.producer import Work
    from vidsearch.indexer.sink import LibrarySink
    from vidsearch.indexer.stream_status import StatusBoard
    from vidsearch.media import SamplingConfig
    from vidsearch.media.live import LiveOptions
    from vidsearch.media.recorder import RECORDINGS_DIR
    from vidsearch.usecases.alerts import forget_alerts
    from vidsearch.usecases.streams import name_streams

    options = IndexOptions(
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        model_config=str(model_config) if model_config else None,
        device=device,
        precision=precision,
        sampling=SamplingConfig(window=window, stride=stride),
        batch_size=1,  # every window is committed (and queryable) as soon as it is encoded
    )

    def status(stream: str, message: str) -> None:
        if json_out:
            _emit({"event": "status", "stream": stream, "message": message, "time": _utc(_now())})
        else:
            err_console.print(f"{stream}: {message}", highlight=False, markup=False, soft_wrap=True)

    with open_library(library, create=True) as lib, lib.writer_lock():
        encoder: Any = open_encoder(  # the video and text towers (the spec asks for both)
            EncoderSpec(
                options.model, checkpoint=options.checkpoint, config=options.model_config,
                device=options.device, precision=options.precision,
            )
        )  # fmt: skip
        options = dataclasses.replace(
            options, sampling=dataclasses.replace(options.sampling, antialias=encoder.antialias)
        )
        space = lib.ensure_space(encoder.key, encoder.embed_dim, encoder.spec, sampling_dict(options.sampling))
        name_streams(lib, [(spec.name, spec.url) for spec in specs])

        def on_calibrated(stream: str, rule: Rule, threshold: float) -> None:
            note = {"event": "watch", "stream": stream, "query": rule.query, "kind": rule.kind}
            _announce({**note, "threshold": round(threshold, 4), "threshold_source": "calibrated on the stream"})

        def _announce(note: dict[str, Any]) -> None:
            if json_out:
                _emit({**note, "time": _utc(_now())})
                return
            at = "not yet" if note["threshold"] is None else f"{note['threshold']:.3f}"
            text = f"{note['stream']}: alert {note['query']!r} fires at {at} ({note['threshold_source']})"
            err_console.print(text, highlight=False, markup=False, soft_wrap=True)

        alerts, notes = stream_alerts(lib, space, encoder, specs, labels, on_calibrated)
        for note in notes:
            _announce(note)
        live = LiveOptions(
            window=window, stride=stride, num_frames=encoder.num_frames, short_side=max(encoder.resolution, 64),
            open_timeout=open_timeout, read_timeout=read_timeout, realtime=realtime,
            record_to=lib.root / RECORDINGS_DIR if record else None,
        )  # fmt: skip
        report = IndexReport(space_key=space.key)
        sink = LibrarySink(lib, space, {}, options)
        uris = {spec.name: spec.url for spec in specs}

        def on_alert(event: AlertEvent) -> None:
            _store_alert(lib, event, uris[event.alert.stream])  # the row first: a line's reader finds it
            line = _alert_json(event)
            if json_out:
                _emit(line)
            else:
                _alert_text(event)
            if webhook is not None:
                webhook.send(line)

        def forget_before(uri: str, cutoff: float) -> None:
            sink.writer.forget_before(uri, cutoff)
            still_open = [key for rules in alerts.values() for key in rules.open_ids()]
            forget_alerts(lib, [uri], cutoff, still_open)

        producer = LiveProducer(
            encoder, live, alerts, on_alert, status, stop_after=duration, retain=retain_seconds,
            forget_before=forget_before,
            on_progress=StatusBoard(lib.root / RECORDINGS_DIR).report,  # for `serve`'s streams view
        )  # fmt: skip
        stopped = False
        work = [Work(i, StreamSource(spec.url, spec.name)) for i, spec in enumerate(specs)]
        try:
            run_pipeline(producer, sink, work, 1, report)
        except KeyboardInterrupt:
            stopped = True  # Ctrl-C or SIGTERM: the normal way to end a watch; what was stored stays
        finally:
            if webhook is not None:
                webhook.close()
    for stream_report in producer.reports:
        _print_end(stream_report, stopped, json_out)


def _now() -> float:

    return time.time()


def _utc(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _store_alert(lib: Library, event: AlertEvent, uri: str) -> None:
    """Record an alert's start, or complete its row at its end (clip relative to the library)."""
    from vidsearch.usecases.alerts import StoredAlert, record_end, record_start

    a = event.alert
    if event.kind == "start":
        stored = StoredAlert(a.id, a.stream, uri, a.query, a.kind, a.threshold, a.start, a.score, a.peak, a.peak_time)
        record_start(lib, stored)
    else:
        record_end(lib, a.id, a.end or a.start, a.peak, a.peak_time, None if a.clip is None else Path(a.clip))


def _alert_json(event: AlertEvent) -> dict[str, Any]:
    a = event.alert
    line: dict[str, Any] = {"event": "alert" if event.kind == "start" else "alert_end", "id": a.id}
    line.update(
        stream=a.stream, query=a.query, kind=a.kind, start=_utc(a.start), start_ts=a.start, score=round(a.score, 4)
    )
    if event.kind == "end":
        line.update(end=_utc(a.end), end_ts=a.end, peak=round(a.peak, 4), peak_time=_utc(a.peak_time), clip=a.clip)
    return line


def _alert_text(event: AlertEvent) -> None:
    a = event.alert
    local = dt.datetime.fromtimestamp(a.start).strftime("%H:%M:%S")
    if event.kind == "start":
        # the stream's name and the query are the user's: escaped, never read as markup
        err_console.print(
            f"[bold red]ALERT[/] {shown(a.stream)} {local} {shown(repr(a.query))} score {a.score:.3f} ({shown(a.id)})"
        )
    else:
        clip = f", clip {a.clip}" if a.clip else ""
        err_console.print(f"alert {a.id} ended, peak {a.peak:.3f}{clip}", highlight=False, markup=False)


def _print_end(report: WatchReport, stopped: bool, json_out: bool) -> None:
    how = "stopped" if stopped else "ended"
    if json_out:
        _emit({"event": "end", "how": how, **report.__dict__})
        return
    err_console.print(
        f"{report.stream}: {how}; {report.encoded} windows stored, {report.dropped} dropped "
        f"(encoder behind), {len(report.gaps)} gap(s), {report.alerts} alert(s)",
        highlight=False,
        soft_wrap=True,
    )
