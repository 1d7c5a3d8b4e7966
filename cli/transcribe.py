"""`vidsearch transcribe` (give indexed videos their words) and `vidsearch transcript VIDEO` (print one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import JsonOption, LibraryOption, console, err_console, open_library, print_json
from vidsearch.cli.format import shown
from vidsearch.errors import InputError
from vidsearch.speech.transcript import to_srt, to_vtt

if TYPE_CHECKING:
    from vidsearch.indexer.transcribe import TranscribeReport, TranscriptMaker
    from vidsearch.store.library import Library

BACKEND_HELP = (
    "Speech recognition for videos without subtitles: whisper[:SIZE] (faster-whisper, recommended; "
    "pip install 'vidsearch[speech]'; weights from the Hugging Face hub) or pocketsphinx (bundled English "
    "model, no download, weak). Subtitles beside or inside a video are always used first."
)
FORMATS = ("json", "srt", "vtt")


def run_transcripts(
    lib: Library, backend: str | None, device: str, json_out: bool, maker: TranscriptMaker | None = None
) -> TranscribeReport:
    """The transcript pass with a progress bar (shared by `index` and `transcribe`); ``maker``:
    where the transcripts are made (default: here; a ``--ray`` run: the cluster's actors)."""
    from vidsearch.cli.common import RichProgress
    from vidsearch.indexer.transcribe import transcribe_library

    with RichProgress("transcripts", enabled=not json_out and err_console.is_terminal) as bar:
        started = False

        def progress(done: int, total: int, path: str) -> None:
            nonlocal started
            if not started:
                bar.start(total)
                started = True
            bar.advance(path, True)

        return transcribe_library(lib, backend, device=device, progress=progress, maker=maker)


def print_transcripts(report: TranscribeReport) -> None:
    """One summary line, then the notes and the videos left without words (20 of each at most)."""
    console.print(
        f"transcripts: {report.transcribed} video(s) with words ({report.lines} lines), "
        f"{len(report.without_words)} without, {report.unchanged} unchanged ({report.seconds:.1f} s)",
        highlight=False,
    )
    for path, note in report.notes[:20]:
        console.print(f"  [yellow]note[/] {shown(path)}: {shown(note)}", highlight=False)
    if report.backend:  # without a backend every unsubtitled video would be listed
        for path, reason in report.without_words[:20]:
            console.print(f"  no words: {shown(path)}: {shown(reason)}", highlight=False)


def check_backend(backend: str | None) -> None:
    """Refuse an unknown or unusable backend before any work (one line: what to do)."""
    if backend is None:
        return  # before any import: a no-op `index` stays free of numpy and the database layer
    from vidsearch.speech.backends import prepare_backend

    prepare_backend(backend)


@app.command("transcribe")
def transcribe_command(
    backend: str | None = typer.Option(None, "--backend", "--transcribe", metavar="BACKEND", help=BACKEND_HELP),
    library: Path | None = LibraryOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (Whisper)."),
    json_out: bool = JsonOption,
) -> None:
    """Give the library's indexed videos their transcripts (subtitles, or speech with --backend)."""
    check_backend(backend)
    with open_library(library, create=False) as lib:
        report = run_transcripts(lib, backend, device, json_out)
    if json_out:
        print_json(report.to_dict())
    else:
        print_transcripts(report)


@app.command("transcript")
def transcript_command(
    video: str = typer.Argument(
        ..., help="The video: its path or its id (see `vidsearch query --json`).", show_default=False
    ),
    library: Path | None = LibraryOption,
    fmt: str = typer.Option("json", "--format", help="json, srt or vtt."),
    json_out: bool = JsonOption,
) -> None:
    """Print what is said in VIDEO, with times (and word times in JSON)."""
    from vidsearch.usecases.transcripts import find_indexed_video, video_transcript

    fmt = "json" if json_out else fmt
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    with open_library(library, read_only=True) as lib:
        found = video_transcript(lib, find_indexed_video(lib, video))
    if fmt == "json":
        print_json(found.to_dict())
        return
    if not found.lines:
        why = "; ".join(found.state.notes) if found.state else "never transcribed (run vidsearch transcribe)"
        err_console.print(f"{shown(found.path)}: no transcript ({shown(why)})", highlight=False)
    typer.echo(to_srt(found.lines) if fmt == "srt" else to_vtt(found.lines), nl=False)
