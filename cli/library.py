"""Library maintenance: `vidsearch info`, `vidsearch remove`, `vidsearch reindex`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json
from vidsearch.cli.app import app


@app.command("info")
def info_command(library: Optional[Path] = LibraryOption, json_out: bool = JsonOption) -> None:
    """Show what the library holds: videos, failures with reasons, embedding spaces, indexes."""
    with open_library(library) as lib:
        stats = lib.stats()
    if json_out:
        print_json(stats)
        return
    console.print(f"[bold]library[/] {stats['library']}")
    console.print(f"videos indexed: {stats['videos_indexed']} ({stats['hours_indexed']:.2f} h), failed: {stats['videos_failed']}")
    for sp in stats["spaces"]:
        line = f"  space [bold]{sp['key']}[/] dim {sp['dim']}: {sp['videos']} videos, {sp['segments']} segments"
        if "index_spec" in sp:
            recall = sp.get("index_recall_at_10")
            line += f"; index {sp['index_spec']} ({sp['index_vectors']} vectors, {sp['index_bytes'] / 1e6:.1f} MB"
            line += f", recall@10 {recall:.3f})" if recall is not None else ", exact)"
            if not sp.get("index_up_to_date"):
                line += " [yellow](stale: synced on next query)[/]"
        else:
            line += "; no index file yet (built on next query)"
        console.print(line, highlight=False)
    for f in stats["failed"]:
        console.print(f"  [red]failed[/] {f['path']}: {f['reason']}", highlight=False)


@app.command("remove")
def remove_command(
    paths: List[Path] = typer.Argument(..., help="Video files or folders to forget (the files are not touched).", show_default=False),
    library: Optional[Path] = LibraryOption,
    json_out: bool = JsonOption,
) -> None:
    """Forget videos (a folder removes every video under it). Files on disk are left alone."""
    from vidsearch.errors import InputError

    targets = [os.path.abspath(os.path.expanduser(str(p))) for p in paths]
    with open_library(library) as lib, lib.writer_lock():
        removed = lib.remove_paths(targets)
        if not removed:
            raise InputError(f"none of {', '.join(targets)} is in the library; `vidsearch info` lists what is")
        for space in lib.spaces():
            lib.vector_index(space, refresh=True)  # sync and save the FAISS files now
    if json_out:
        print_json({"removed": removed})
    else:
        console.print(f"removed {removed} video(s)")


@app.command("reindex")
def reindex_command(
    library: Optional[Path] = LibraryOption,
    index_spec: Optional[str] = typer.Option(None, "--index-spec", help="FAISS index_factory string to use instead of the automatic choice."),
    json_out: bool = JsonOption,
) -> None:
    """Rebuild the FAISS indexes from the embeddings stored in SQLite (no re-encoding)."""
    results = []
    with open_library(library) as lib, lib.writer_lock():
        for space in lib.spaces():
            index = lib.rebuild_index(space, spec=index_spec)
            results.append({"key": space.key, "vectors": index.ntotal, "index_spec": index.spec, "recall_at_10": index.recall_at_10})
    if json_out:
        print_json(results)
        return
    if not results:
        console.print("the library is empty: nothing to rebuild")
    for r in results:
        console.print(f"rebuilt {r['key']}: {r['vectors']} vectors, {r['index_spec']}")
