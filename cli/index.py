"""`vidsearch index DIR`: add a folder of videos to a library (incremental, resumable)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vidsearch.cli.app import app
from vidsearch.cli.checks import check_number
from vidsearch.cli.common import (
    AntialiasOption,
    CheckpointOption,
    JsonOption,
    LibraryOption,
    ModelConfigOption,
    ModelOption,
    PrecisionOption,
    RichProgress,
    console,
    err_console,
    open_library,
    print_json,
)
from vidsearch.cli.format import shown
from vidsearch.cli.transcribe import BACKEND_HELP, check_backend, print_transcripts, run_transcripts
from vidsearch.cluster.connect import connected
from vidsearch.cluster.options import RayOptions, require_ray
from vidsearch.cluster.pathmap import parse_path_map
from vidsearch.errors import InputError
from vidsearch.indexer.options import IndexReport
from vidsearch.indexer.scan import VIDEO_EXTENSIONS, find_videos
from vidsearch.store.location import library_exists

if TYPE_CHECKING:
    from vidsearch.indexer.options import IndexReport
    from vidsearch.indexer.transcribe import TranscribeReport

# Exit codes (documented in the README): 0 every file indexed, 1 some file could not be indexed
# (the rest were), 2 bad arguments or an unusable library/model, 130 interrupted.
EXIT_SOME_FAILED = 1
MAX_WORKERS = 256  # decoding processes; more is a typo, not a machine


@app.command("index")
def index_command(
    directory: Path = typer.Argument(..., help="Folder to scan recursively for videos.", show_default=False),
    library: Path | None = LibraryOption,
    model: str = ModelOption,
    model_config: Path | None = ModelConfigOption,
    checkpoint: Path | None = CheckpointOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    fast: bool = typer.Option(
        False, "--fast", help="Sample the nearest keyframes: much faster decoding, approximate frame positions."
    ),
    window: float = typer.Option(8.0, "--window", help="Window length in seconds for long videos."),
    stride: float = typer.Option(4.0, "--stride", help="Seconds between window starts."),
    antialias: bool | None = AntialiasOption,
    workers: int | None = typer.Option(None, "--workers", help="Decoding processes (default: cores - 1)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per encoder call."),
    timeout: float | None = typer.Option(None, "--timeout", help="Per-file decoding timeout in seconds."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Try again files that failed before and did not change."
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="[ADDRESS]",
        help="Decode and encode on a Ray cluster: auto (the cluster this machine is part of; --ray alone means auto), local (a one-machine cluster) or HOST:PORT. Needs pip install 'vidsearch[ray]'.",
    ),
    decode_workers: int = typer.Option(1, "--decode-workers", help="With --ray: decode actors (one CPU each)."),
    encode_workers: int = typer.Option(
        1, "--encode-workers", help="With --ray: encode actors (each loads the model once)."
    ),
    gpus_per_encoder: float | None = typer.Option(
        None,
        "--gpus-per-encoder",
        help="With --ray: GPUs per encode actor, fractions share a GPU (default: 1 when the cluster has GPUs, else CPU).",
    ),
    path_map: str | None = typer.Option(
        None, "--path-map", metavar="LOCAL=REMOTE", help="With --ray: workers see files under LOCAL at REMOTE."
    ),
    stage: Path | None = typer.Option(
        None,
        "--stage",
        metavar="DIR",
        help="With --ray: write Parquet shards to DIR (shared by every node) for `vidsearch ingest DIR`.",
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Re-fingerprint every file, also those whose size and mtime did not change."
    ),
    transcribe: str | None = typer.Option(
        None, "--transcribe", metavar="[BACKEND]", help=BACKEND_HELP + " --transcribe alone means whisper."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Index every video under DIRECTORY. Re-running only does what changed."""

    check_number("--window", window, low=0, above=True, unit="seconds")
    check_number("--stride", stride, low=0, above=True, unit="seconds")
    check_number("--workers", workers, low=1, high=MAX_WORKERS)
    check_number("--batch-size", batch_size, low=1)
    check_number("--timeout", timeout, low=0, above=True, unit="seconds")
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; pass the folder that holds your videos")
    if ray is None and (stage is not None or path_map is not None):
        raise InputError("--stage and --path-map only apply to a cluster run: add --ray auto (or local, or HOST:PORT)")
    check_backend(transcribe)
    if ray is None and _nothing_to_do(directory, library, json_out):
        return
    from vidsearch.indexer.pipeline import IndexOptions, index_folder
    from vidsearch.media import SamplingConfig

    options = IndexOptions(
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        model_config=str(model_config) if model_config else None,
        device=device,
        precision=precision,
        sampling=SamplingConfig(window=window, stride=stride, antialias=antialias),
        fast=fast,
        workers=workers,
        batch_size=batch_size,
        timeout=timeout,
        retry_failed=retry_failed,
        verify=verify,
    )
    run = index_folder
    cluster: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    maker = None
    if ray is not None:
        from vidsearch.cluster.ray_runner import index_folder_ray
        from vidsearch.cluster.transcripts import RayTranscripts

        require_ray()
        ray_options = RayOptions(
            address=ray,
            decode_workers=decode_workers,
            encode_workers=encode_workers,
            gpus_per_encoder=gpus_per_encoder,
            path_map=parse_path_map(path_map),
            stage_dir=stage,
        )
        run = lambda lib, folder, opts, progress: index_folder_ray(lib, folder, opts, ray_options, progress=progress)  # noqa: E731
        # the transcripts are made by the cluster's actors too, on the same connection
        cluster, maker = connected(ray_options), RayTranscripts(ray_options, transcribe)
    _find_weights_before_creating(library, options)
    with open_library(library, create=True) as lib, cluster:
        with RichProgress("indexing", enabled=not json_out and err_console.is_terminal) as progress:
            report = run(lib, directory, options, progress=progress)
        # Subtitles are picked up on every run; speech is recognized only with --transcribe.
        said = run_transcripts(lib, transcribe, device, json_out, maker)
    _print_report(report, directory, json_out, said)
    if report.failed or report.failed_unchanged:
        raise typer.Exit(EXIT_SOME_FAILED)


def _find_weights_before_creating(library: Path | None, options: Any) -> None:
    """Resolve the model's space key (its weights found, its precision checked) before a new library
    is created: a run that cannot find the weights (offline, nothing cached) leaves no empty
    ``library.sqlite`` behind. An existing library is left to the run (an empty folder may mean removals)."""
    from vidsearch.indexer.pipeline import space_key_for

    if not library_exists(library):
        space_key_for(options)


def _nothing_to_do(directory: Path, library: Path | None, json_out: bool) -> bool:
    """Report an empty run, and say so, when ``directory`` holds no videos and no library exists.

    Nothing is created then (a library with nothing in it helps no one), and the answer comes
    before the database layer, the decoders or a model are imported: a fraction of a second.
    With a library, an empty folder can still mean removals, so the normal run decides.
    """

    if library_exists(library):
        return False
    t0 = time.perf_counter()
    found = find_videos(directory)
    if found.files or found.problems:
        return False
    _print_report(IndexReport(space_key="", seconds=time.perf_counter() - t0), directory, json_out)
    return True


def _print_report(report: IndexReport, directory: Path, json_out: bool, said: TranscribeReport | None = None) -> None:
    """The end-of-run summary (or its JSON form), one line per failure up to 20."""

    if json_out:
        print_json({**report.to_dict(), **({"transcripts": said.to_dict()} if said is not None else {})})
    elif not report.scanned and not report.failed:
        console.print(
            f"no video files under {directory} ({len(VIDEO_EXTENSIONS)} extensions, e.g. .mp4 .mkv .mov .webm); "
            f"nothing to index{f', {report.removed} removed' if report.removed else ''}",
            highlight=False,
            soft_wrap=True,  # one line, however narrow the terminal
        )
    else:
        console.print(
            f"[bold]{shown(report.space_key)}[/]: {report.added} added, {report.updated} updated, {report.moved} moved, "
            f"{report.removed} removed, {report.unchanged} unchanged, {len(report.failed)} failed "
            f"({report.segments} segments, {report.seconds:.1f} s)"
        )
        for path, reason in report.failed[:20]:
            console.print(f"  [red]failed[/] {shown(path)}: {shown(reason)}", markup=True, highlight=False)
        if len(report.failed) > 20:
            console.print(f"  ... and {len(report.failed) - 20} more (see `vidsearch info`)")
        if report.failed_unchanged:
            console.print(f"  {report.failed_unchanged} file(s) failed before and were not retried (--retry-failed)")
        if said is not None and (said.transcribed or said.without_words and said.backend or said.notes):
            print_transcripts(said)
