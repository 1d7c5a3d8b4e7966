"""`vidsearch query`: find videos (and the moment in them) by text or by an example clip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number, check_order
from vidsearch.cli.common import (
    JsonOption,
    LibraryOption,
    PrecisionOption,
    SpaceOption,
    console,
    open_library,
    print_json,
)
from vidsearch.cli.format import fmt_time, shown
from vidsearch.errors import InputError
from vidsearch.usecases.when import parse_when

if TYPE_CHECKING:
    from vidsearch.search import VideoHit


@app.command("query")
def query_command(
    text: str | None = typer.Argument(
        None, help='What you want to see, e.g. "person playing basketball".', show_default=False
    ),
    library: Path | None = LibraryOption,
    k: int = typer.Option(10, "-k", "--top", help="How many videos to return."),
    video: Path | None = typer.Option(
        None, "--video", help="Query with a video clip (or an image: a still clip) instead of text."
    ),
    start: float | None = typer.Option(None, "--start", help="With --video: start of the query span (s)."),
    end: float | None = typer.Option(None, "--end", help="With --video: end of the query span (s)."),
    min_score: float | None = typer.Option(
        None, "--min-score", help="Drop results scoring below this (cosine similarity)."
    ),
    path_glob: str | None = typer.Option(
        None, "--path", help="Only paths matching this glob (no '/' in it: matches the file name)."
    ),
    min_duration: float | None = typer.Option(None, "--min-duration", help="Only videos at least this long (s)."),
    max_duration: float | None = typer.Option(None, "--max-duration", help="Only videos at most this long (s)."),
    label: str | None = typer.Option(
        None, "--label", help="Only videos recognized as this action (run `vidsearch enrich recognize` first)."
    ),
    label_set: str | None = typer.Option(
        None, "--label-set", help="With --label: the label set it belongs to (default: any)."
    ),
    rerank: str | None = typer.Option(
        None, "--rerank", help="Re-rank text-query candidates with the model's matching head: itm (InternVideo2)."
    ),
    rerank_k: int | None = typer.Option(
        None, "--rerank-k", help="With --rerank: how many ITC candidates to re-rank (default: max(-k, 16))."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="seen (the video model), said (transcripts) or both, fused (default: both when the library has transcripts).",
    ),
    said: str | None = typer.Option(
        None, "--said", metavar="PHRASE", help='An exact spoken phrase, e.g. --said "the bridge is closed".'
    ),
    source: str | None = typer.Option(
        None, "--source", metavar="NAME|PREFIX", help="Only this stream (its name) or paths/URLs starting with PREFIX."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Only moments since WHEN (10m, 2h, 1d, or a date/time, local unless it names a zone): "
        "a stream's by their wall-clock time, a file's by its modification time.",
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        metavar="WHEN",
        help="Only moments up to WHEN (as --since: 2h for two hours ago, or a date/time).",
    ),
    sort: str = typer.Option(
        "score", "--sort", help="Order of the results: score (best first), date (newest first) or name."
    ),
    model: str | None = SpaceOption,
    precision: str = PrecisionOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    json_out: bool = JsonOption,
) -> None:
    """Rank the library's videos for TEXT (or --video FILE) and show where each matches."""
    from vidsearch.rerank import DEFAULT_RERANK_K, rerank_k_for
    from vidsearch.usecases.encoders import LocalEmbedder
    from vidsearch.usecases.query import Query, QueryFilters, check_query, search
    from vidsearch.usecases.spaces import resolve_space

    check_number("-k", k, low=1)
    check_number("--start", start, low=0, unit="seconds")
    check_number("--end", end, low=0, above=True, unit="seconds")
    check_order("--start", start, "--end", end, strict=True)
    check_number("--min-score", min_score, low=-1, high=1)  # cosine similarity
    check_number("--min-duration", min_duration, low=0, unit="seconds")
    check_number("--max-duration", max_duration, low=0, unit="seconds")
    check_order("--min-duration", min_duration, "--max-duration", max_duration)
    if text is not None and video is not None or (text is None and video is None and said is None):
        raise InputError(
            'give either a query TEXT, --video FILE or --said PHRASE, e.g. vidsearch query "a dog catching a frisbee"'
        )
    filters = QueryFilters(
        min_score=min_score,
        path_glob=path_glob,
        min_duration=min_duration,
        max_duration=max_duration,
        label=label,
        label_set=label_set,
        source=source,
        date_from=None if since is None else dt.datetime.fromtimestamp(parse_when(since), dt.timezone.utc),
        date_to=None
        if until is None
        else dt.datetime.fromtimestamp(parse_when(until, argument="until"), dt.timezone.utc),
    )
    candidates = rerank_k_for(rerank, rerank_k, default=max(k, DEFAULT_RERANK_K)) or 0
    query = Query(
        text=text,
        file=video,
        start=start,
        end=end,
        k=k,
        filters=filters,
        rerank_k=candidates,
        mode=mode,  # a str: check_query names a bad mode
        said=said,
        sort=sort,  # a str: check_query names a bad order
    )
    check_query(query)  # before the library is opened: fail fast
    if video is not None and not video.is_file():
        raise InputError(f"--video {video}: {'is a directory, not a video file' if video.is_dir() else 'no such file'}")
    with open_library(library, read_only=True) as lib:  # a query never writes, not even the FAISS file
        space = resolve_space(lib, model, precision)  # auto: the space's own precision
        page = search(lib, query, LocalEmbedder(device), space)
    hits, streams = page.hits, page.streams
    from vidsearch.retrieval import why_matched

    if json_out:
        # matched: the retrievers that found it; why: seen, said or both; a stream's times: UTC
        print_json([{**h.to_dict(), "why": why_matched(h.matched), **_source(h, streams)} for h in hits])
        return
    if not hits:
        console.print("no results" + (" above --min-score" if min_score is not None else ""))
        return
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("score", {"justify": "right"}),
        ("span", {}),
        ("video", {"overflow": "fold"}),
        ("matched", {}),
    ):
        table.add_column(col, **kw)
    quoting = any(h.said is not None for h in hits)
    if quoting:
        table.add_column("said", overflow="fold")
    for h in hits:
        row = [
            str(h.rank),
            f"{h.score:.3f}",
            _span(h, h.video_id in streams),
            shown(h.path if h.video_id not in streams else f"{streams[h.video_id]} ({h.path})"),
            why_matched(h.matched),
        ]
        if quoting:
            row.append(_quote(h))
        table.add_row(*row)
    console.print(table)


def _source(hit: VideoHit, streams: dict[int, str]) -> dict[str, Any]:
    """A hit's source and, for a live stream, its name and its times in UTC."""
    if hit.video_id not in streams:
        return {"source": hit.path, "stream": None}
    utc = {
        f"{k}_utc": dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat()
        for k, t in (("start", hit.start), ("end", hit.end))
    }
    return {"source": hit.path, "stream": streams[hit.video_id], **utc}


def _span(hit: VideoHit, wall_clock: bool) -> str:
    """A file's span in media time; a stream's in local wall-clock time."""
    if not wall_clock:
        return f"{fmt_time(hit.start)}-{fmt_time(hit.end)}"
    start, end = (dt.datetime.fromtimestamp(t).astimezone() for t in (hit.start, hit.end))
    return f"{start:%Y-%m-%d %H:%M:%S}-{end:%H:%M:%S}"


def _quote(hit: VideoHit) -> str:
    """The spoken words of a result, the matched ones in bold, with when they are said."""
    from rich.markup import escape

    if hit.said is None:
        return ""
    text, match = hit.said.text, hit.said.match
    at = text.find(match) if match else -1
    quoted = escape(text) if at < 0 else f"{escape(text[:at])}[bold]{escape(match)}[/]{escape(text[at + len(match) :])}"
    return f"\u201c{quoted}\u201d {fmt_time(hit.said.start)}-{fmt_time(hit.said.end)}"
