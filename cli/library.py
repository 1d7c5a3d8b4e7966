"""Library maintenance: `vidsearch info`, `vidsearch remove`, `vidsearch reindex`."""

from __future__ import annotations

from pathlib import Path

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json
from vidsearch.cli.format import shown
from vidsearch.usecases.remove import CONFIRM_OVER, remove_videos


@app.command("info")
def info_command(
    library: Path | None = LibraryOption,
    check: bool = typer.Option(
        False, "--check", help="Also verify the database (PRAGMA quick_check) and every index file's checksum."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Show what the library holds: videos, failures with reasons, embedding spaces, indexes."""

    from vidsearch.speech.backends import backend_status
    from vidsearch.usecases.transcripts import transcript_summary

    with open_library(library, read_only=True) as lib:
        problems = lib.check() if check else []
        stats = lib.stats()
        stats["transcripts"] = transcript_summary(lib)
    stats["speech_backends"] = backend_status()
    if check:
        stats["problems"] = problems
    if json_out:
        print_json(stats)
        if problems:
            raise typer.Exit(1)
        return
    console.print(f"[bold]library[/] {shown(stats['library'])}", highlight=False)
    console.print(
        f"videos indexed: {stats['videos_indexed']} ({stats['hours_indexed']:.2f} h), failed: {stats['videos_failed']}"
    )
    for sp in stats["spaces"]:
        line = f"  space [bold]{shown(sp['key'])}[/] dim {sp['dim']}: {sp['videos']} videos, {sp['segments']} segments"
        if "index_spec" in sp:
            recall = sp.get("index_recall_at_10")
            line += (
                f"; index {shown(sp['index_spec'])} ({sp['index_vectors']} vectors, {sp['index_bytes'] / 1e6:.1f} MB"
            )
            line += f", recall@10 {recall:.3f})" if recall is not None else ", exact)"
            if not sp.get("index_up_to_date"):
                line += " [yellow](stale: synced on next query)[/]"
        else:
            line += "; no index file yet (built on next query)"
        console.print(line, highlight=False)
    said = stats["transcripts"]
    console.print(
        f"transcripts: {said['videos']} videos with words ({said['lines']} lines), "
        f"{said['videos_without_words']} without (see `vidsearch transcript VIDEO`)",
        highlight=False,
    )
    for name, backend in stats["speech_backends"].items():
        where = "installed" if backend["installed"] else "not installed: pip install 'vidsearch[speech]'"
        console.print(f"  speech backend {name} ({where}): {backend['note']}", highlight=False, markup=False)
    for f in stats["failed"]:
        console.print(f"  [red]failed[/] {shown(f['path'])}: {shown(f['reason'])}", highlight=False)
    if check:
        console.print("check: OK" if not problems else f"check: {len(problems)} problem(s)", highlight=False)
        for p in problems:
            console.print(f"  problem: {p}", highlight=False, markup=False)
        if problems:
            raise typer.Exit(1)  # like `index` with failed files: the command ran, something is wrong


@app.command("remove")
def remove_command(
    paths: list[str] = typer.Argument(
        ..., help="Video files or folders to forget (the files are not touched).", show_default=False
    ),
    library: Path | None = LibraryOption,
    yes: bool = typer.Option(
        False, "--yes", "-y", help=f"Remove even when that forgets more than {CONFIRM_OVER} videos."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; change nothing."),
    json_out: bool = JsonOption,
) -> None:
    """Forget videos (a folder removes every video under it). Files on disk are left alone."""

    with open_library(library) as lib:
        removal = remove_videos(lib, paths, confirmed=yes, dry_run=dry_run)
    if removal.dry_run:
        _show_removal(removal.found, json_out, "would remove")
        return
    removed = removal.removed
    if json_out:
        print_json({"removed": removed})
    else:
        console.print(f"removed {removed} video(s)")


def _show_removal(found: list[str], json_out: bool, what: str) -> None:
    if json_out:
        print_json({"would_remove": found})
        return
    for path in found:
        console.print(shown(path), highlight=False)
    console.print(f"{what} {len(found)} video(s); nothing changed (--dry-run)", highlight=False)


@app.command("reindex")
def reindex_command(
    library: Path | None = LibraryOption,
    index_spec: str | None = typer.Option(
        None, "--index-spec", help="FAISS index_factory string to use instead of the automatic choice."
    ),
    on_disk: bool = typer.Option(
        False,
        "--on-disk",
        help="Keep the IVF lists of --index-spec in a memory-mapped file: libraries larger than RAM (see docs/scale.md).",
    ),
    json_out: bool = JsonOption,
) -> None:
    """Rebuild the FAISS indexes from the embeddings stored in SQLite (no re-encoding)."""
    from vidsearch.usecases.reindex import rebuild_indexes

    with open_library(library) as lib:
        results = rebuild_indexes(lib, spec=index_spec, on_disk=on_disk)
    if json_out:
        print_json(results)
        return
    if not results:
        console.print("the library is empty: nothing to rebuild")
    for r in results:
        console.print(f"rebuilt {shown(r['key'])}: {r['vectors']} vectors, {shown(r['index_spec'])}", highlight=False)
