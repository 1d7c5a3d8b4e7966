"""Output formatting every command shares: times, figures, and writing/printing a results report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsearch.cli.common import print_json

__all__ = ["fmt_time", "fmt_figure", "write_report"]


def fmt_time(seconds: float | None) -> str:
    """Seconds as ``m:ss.s`` (``h:mm:ss.s`` from an hour on); ``-`` for None."""
    if seconds is None:
        return "-"
    m, s = divmod(max(0.0, float(seconds)), 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def fmt_figure(value: float) -> str:
    """A benchmark figure with one decimal; NaN (no ranks) prints as ``-``."""
    return "-" if value != value else f"{value:.1f}"


def write_report(results: dict[str, Any], out: Path | None, json_out: bool, show: Callable[[dict[str, Any]], None]) -> None:
    """Write ``results`` to ``out`` (atomically, when given), then print them as JSON or with ``show``.

    Raises:
        InputError: ``out`` cannot be written.
    """
    if out is not None:
        from vidsearch.errors import InputError
        from vidsearch.fileio import atomic_write_text

        try:
            atomic_write_text(out, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write it ({exc.strerror or exc}); pick a writable path") from None
    if json_out:
        print_json(results)
    else:
        show(results)
