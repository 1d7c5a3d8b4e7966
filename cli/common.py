"""Pieces every command shares: the --library option, output helpers, a rich progress sink."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vidsearch.errors import InputError
from vidsearch.models.registry import precision_before_load
from vidsearch.precision import CHOICES

__all__ = [
    "LibraryOption",
    "JsonOption",
    "ModelOption",
    "ModelConfigOption",
    "CheckpointOption",
    "AntialiasOption",
    "PrecisionOption",
    "TrainPrecisionOption",
    "OutOption",
    "BenchLibraryOption",
    "AllowMissingOption",
    "bench_options",
    "console",
    "err_console",
    "open_library",
    "print_json",
    "RichProgress",
    "SpaceOption",
]

console = Console()
err_console = Console(stderr=True)

LibraryOption = typer.Option(
    None,
    "--library",
    "-l",
    envvar="VIDSEARCH_LIBRARY",
    help="Library directory (default: VIDSEARCH_LIBRARY or the user data dir).",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")
# Choosing a model: the same three options on every command that encodes.
ModelOption = typer.Option(
    "viclip-b16", "--model", "-m", help="Preset (viclip-b16, viclip-l14), openclip:<arch>, or a checkpoint path."
)
ModelConfigOption = typer.Option(None, "--model-config", help="ViCLIPConfig JSON for a custom-size checkpoint.")
# Commands that read a library pick an embedding space with --model: what `index --model` took, or a space key.
SPACE_HELP = "Embedding space: what `index --model` was given (preset, checkpoint path, openclip:<arch>) or a space key from `vidsearch info` (default: the latest)."
SpaceOption = typer.Option(None, "--model", "-m", help=SPACE_HELP, show_default=False)
CheckpointOption = typer.Option(
    None, "--checkpoint", help="Weights for a preset (else VIDSEARCH_CHECKPOINT or the Hugging Face cache)."
)
# The frame resize, on every command that decodes video for a new embedding space (see README).
AntialiasOption = typer.Option(
    None,
    "--antialias/--no-antialias",
    help="Antialias the frame resize (newer torchvision). Default: the library's recorded choice, else the model's own "
    "(ViCLIP: off, as the published models saw frames).",
    show_default=False,
)
# The encoder's precision, on every command that encodes: a command that loads a model runs it
# at this precision; one that works on a library's embedding space takes the space's (a library
# keeps each precision in its own space), and another explicit one is an error.
PRECISION_HELP = (
    "Encoder precision: fp32, int8 (CPU), bf16 (GPU, or a CPU with native bf16) or fp16 (GPU); "
    "auto: fp32 on a CPU, bf16 on a GPU that has it, else fp16. On a library's embedding space: the space's "
    "precision (picks the space of that precision where the library has several)."
)


def _checked_precision(value: str) -> str:
    """typer callback of --precision: an unknown value is a one-line error (exit 2) before anything runs."""

    if value not in CHOICES:
        raise InputError(f"--precision {value!r}: choose one of {', '.join(CHOICES)}")
    return value


PrecisionOption = typer.Option("auto", "--precision", help=PRECISION_HELP, callback=_checked_precision)
# Training's: the same values, but int8 is refused (it is an encoding precision only).
TrainPrecisionOption = typer.Option(
    "auto",
    "--precision",
    callback=_checked_precision,
    help="Training precision: auto (bf16 mixed precision on a GPU that has it, else fp16; fp32 on a CPU), fp32, "
    "bf16 (GPU, or a CPU with native bf16) or fp16 (GPU). Index the result with any --precision, int8 included.",
)


# Options every benchmark command takes (module-level singletons, as typer wants them).
OutOption = typer.Option(None, "--out", help="Write the results JSON here.")
BenchLibraryOption = typer.Option(
    None,
    "--library",
    help="Library used as the embedding cache (default: <vidsearch cache dir>/bench; VIDSEARCH_CACHE_DIR moves it).",
    show_default=False,
)
AllowMissingOption = typer.Option(
    False,
    "--allow-missing",
    help="Evaluate on the videos that exist and decode instead of stopping; the output says how many were left out.",
)


def bench_options(
    model: str,
    model_config: Path | None,
    checkpoint: Path | None,
    library: Path | None,
    allow_missing: bool,
    antialias: bool | None = None,
    precision: str = "auto",
) -> Any:
    """The :class:`~vidsearch.bench.common.BenchOptions` of a benchmark command's options.

    Raises:
        ModelError: ``precision`` does not fit this machine (before any model loads).
    """
    from vidsearch.bench.common import BenchOptions

    return BenchOptions(
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
        model_config=str(model_config) if model_config else None,
        precision=precision_before_load(precision),
        library=str(library) if library else None,
        allow_missing=allow_missing,
        antialias=antialias,
    )


def open_library(path: Path | None, *, create: bool = False, read_only: bool = False):
    """Open the library the user pointed at (or the default one); ``read_only`` for commands that
    only read (they then work on read-only mounts and never write the FAISS files)."""
    from vidsearch.store.library import Library

    return Library.open(path, create=create, read_only=read_only)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout (no rich markup, safe for pipes)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    # Undecodable file-name bytes (surrogate escapes) become JSON \udcNN escapes, which
    # json.loads turns back into the same str (os.fsencode then gives the original bytes).
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")
    sys.stdout.flush()


class RichProgress:
    """A rich progress bar with files/s and ETA, implementing the indexer's ProgressSink."""

    def __init__(self, description: str, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[failed]}"),
            console=err_console,
            disable=not enabled,
            transient=False,
        )
        self._description = description
        self._task: Any = None
        self._failed = 0

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, total: int) -> None:
        self._task = self._progress.add_task(self._description, total=total, rate="", failed="")

    def advance(self, path: str, ok: bool) -> None:
        if not ok:
            self._failed += 1
        task = self._progress.tasks[self._task]
        speed = task.speed
        self._progress.update(
            self._task,
            advance=1,
            rate=f"{speed:.2f} videos/s" if speed else "",
            failed=f"[red]{self._failed} failed" if self._failed else "",
        )
