"""`vidsearch index DIR`: add a folder of videos to a library (incremental, resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vidsearch.cli.common import (
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
from vidsearch.cli.app import app

# Exit codes (documented in the README): 0 every file indexed, 1 some file could not be indexed
# (the rest were), 2 bad arguments or an unusable library/model, 130 interrupted.
EXIT_SOME_FAILED = 1


@app.command("index")
def index_command(
    directory: Path = typer.Argument(..., help="Folder to scan recursively for videos.", show_default=False),
    library: Optional[Path] = LibraryOption,
    model: str = ModelOption,
    model_config: Optional[Path] = ModelConfigOption,
    checkpoint: Optional[Path] = CheckpointOption,
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    precision: str = PrecisionOption,
    fast: bool = typer.Option(False, "--fast", help="Sample the nearest keyframes: much faster decoding, approximate frame positions."),
    window: float = typer.Option(8.0, "--window", help="Window length in seconds for long videos."),
    stride: float = typer.Option(4.0, "--stride", help="Seconds between window starts."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes (default: cores - 1)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per encoder call."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Per-file decoding timeout in seconds."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Try again files that failed before and did not change."),
    json_out: bool = JsonOption,
) -> None:
    """Index every video under DIRECTORY. Re-running only does what changed."""
    from vidsearch.errors import InputError
    from vidsearch.media.jobs import FaultPlan
    from vidsearch.indexer.pipeline import IndexOptions, index_folder
    from vidsearch.media import SamplingConfig

    if window <= 0 or stride <= 0:
        raise InputError("--window and --stride must be positive numbers of seconds")
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; pass the folder that holds your videos")
    options = IndexOptions(
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        model_config=str(model_config) if model_config else None,
        device=device,
        precision=precision,
        sampling=SamplingConfig(window=window, stride=stride),
        fast=fast,
        workers=workers,
        batch_size=batch_size,
        timeout=timeout,
        retry_failed=retry_failed,
        # The one place the test hook VIDSEARCH_FAULT_INJECT is read: end-to-end tests of a
        # real `vidsearch index` process (Ctrl-C, crashing decoders) inject faults through it.
        decode_faults=FaultPlan.from_env() or None,
    )
    with open_library(library, create=True) as lib:
        with RichProgress("indexing", enabled=not json_out and err_console.is_terminal) as progress:
            report = index_folder(lib, directory, options, progress=progress)
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(
            f"[bold]{report.space_key}[/]: {report.added} added, {report.updated} updated, {report.moved} moved, "
            f"{report.removed} removed, {report.unchanged} unchanged, {len(report.failed)} failed "
            f"({report.segments} segments, {report.seconds:.1f} s)"
        )
        for path, reason in report.failed[:20]:
            console.print(f"  [red]failed[/] {path}: {reason}", markup=True, highlight=False)
        if len(report.failed) > 20:
            console.print(f"  ... and {len(report.failed) - 20} more (see `vidsearch info`)")
        if report.failed_unchanged:
            console.print(f"  {report.failed_unchanged} file(s) failed before and were not retried (--retry-failed)")
    if report.failed or report.failed_unchanged:
        raise typer.Exit(EXIT_SOME_FAILED)
