"""`vidsearch backup DEST`: a consistent copy of the library database, also while it is in use."""

from __future__ import annotations

from pathlib import Path

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json


@app.command("backup")
def backup_command(
    dest: Path = typer.Argument(
        ..., help="File (or existing folder) to write the copy of library.sqlite to.", show_default=False
    ),
    library: Path | None = LibraryOption,
    json_out: bool = JsonOption,
) -> None:
    """Copy the library database with SQLite's online backup API (safe while an index run writes).

    The FAISS index files are not copied: a restored library rebuilds them from the database.
    """
    with open_library(library, read_only=True) as lib:
        out = lib.backup(dest)
    if json_out:
        print_json({"backup": str(out)})
    else:
        console.print(f"backed up {lib.db_path} to {out}", highlight=False)
