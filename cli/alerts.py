"""`vidsearch alerts`: the alerts `vidsearch watch` raised on its streams, newest first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number
from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json
from vidsearch.cli.format import shown
from vidsearch.usecases.when import parse_when

if TYPE_CHECKING:
    from vidsearch.usecases.alerts import StoredAlert


@app.command("alerts")
def alerts_command(
    stream: str | None = typer.Option(None, "--stream", metavar="NAME", help="Only this stream's alerts."),
    since: str | None = typer.Option(
        None, "--since", metavar="WHEN", help="Only alerts started since WHEN: 10m, 2h, 1d, or a local date/time."
    ),
    limit: int = typer.Option(100, "--limit", help="At most this many (the newest)."),
    library: Path | None = LibraryOption,
    json_out: bool = JsonOption,
) -> None:
    """List the alerts of watched streams: stream, query, start and end (local time), peak score and clip."""
    from vidsearch.usecases.alerts import clip_path, recent_alerts

    check_number("--limit", limit, low=1)
    after = None if since is None else parse_when(since)
    with open_library(library, read_only=True) as lib:
        found = recent_alerts(lib, stream=stream, since=after, limit=limit)
        clips = {a.key: clip_path(lib, a.clip) if a.clip else None for a in found}
    if json_out:
        print_json([_alert_dict(a, clips[a.key]) for a in found])
        return
    if not found:
        console.print("no alerts" + (" of that stream" if stream else "") + (" in that time" if since else ""))
        return
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for col in ("stream", "query", "start", "end", "peak", "clip"):
        table.add_column(col, overflow="fold")
    for a in found:
        clip = clips[a.key]
        table.add_row(
            shown(a.stream),
            shown(a.query),
            _local(a.start),
            _local(a.end) if a.end is not None else "going on",
            f"{a.peak:.3f}",
            shown(clip) if clip is not None else "-",
        )
    console.print(table)


def _local(t: float) -> str:
    """UTC seconds as the local date and time (a camera's operator reads their own clock)."""
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _utc(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds")


def _alert_dict(a: StoredAlert, clip: Path | None) -> dict[str, Any]:
    return {
        "id": a.key,
        "stream": a.stream,
        "uri": a.uri,
        "query": a.query,
        "kind": a.kind,
        "threshold": a.threshold,
        "start": _utc(a.start),
        "start_ts": a.start,
        "end": _utc(a.end),
        "end_ts": a.end,
        "score": a.score,
        "peak": a.peak,
        "peak_time": _utc(a.peak_time),
        "clip": str(clip) if clip is not None else None,
        "clip_in_library": a.clip,  # relative to the library root, as stored
    }
