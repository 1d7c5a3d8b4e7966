"""`vidsearch ingest DIR`: commit the Parquet shards of an `index --ray --stage DIR` run."""

from __future__ import annotations

from pathlib import Path

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json


@app.command("ingest")
def ingest_command(
    directory: Path = typer.Argument(..., help="The --stage folder of an index run.", show_default=False),
    roots: list[Path] = typer.Option(
        [],
        "--root",
        help="A folder the run indexed (repeatable); default: the folders the run recorded in DIR.",
        show_default=False,
    ),
    library: Path | None = LibraryOption,
    json_out: bool = JsonOption,
) -> None:
    """Commit staged shards into the library; running it again adds nothing twice."""
    from vidsearch.cluster.staging import ingest, list_shards

    with open_library(library, create=True) as lib:
        report = ingest(lib, directory, roots or None)
    if json_out:
        print_json(report.to_dict())
        return
    console.print(
        f"{len(list_shards(directory))} shard(s), {report.scanned} videos: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.failed)} failed ({report.segments} segments, {report.seconds:.1f} s)",
        highlight=False,
    )
    for path, reason in report.failed[:20]:
        console.print(f"  [red]failed[/] {path}: {reason}", highlight=False)
    if report.failed:
        raise typer.Exit(1)
