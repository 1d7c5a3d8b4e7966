"""Output formatting every command shares: times, figures, and writing/printing a results report."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsearch.cli.common import print_json
from vidsearch.errors import InputError
from vidsearch.fileio import atomic_write_text

__all__ = ["fmt_time", "fmt_figure", "check_output", "write_report", "plain", "shown"]

# C0 and C1 control characters and DEL (a name with ESC in it could recolour or retitle the
# terminal), lone surrogates (undecodable bytes of a file name, which no console can encode), and
# the bidirectional controls (U+202E shows "evil\u202egpj.exe" as "evilexe.jpg" and reorders a
# table's columns after it).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return (
        f"\\x{code - 0xDC00:02x}"
        if 0xDC80 <= code <= 0xDCFF
        else f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
    )


def plain(text: object) -> str:
    """``text`` for a terminal: every control character (and undecodable byte) as a visible ``\\xNN``."""
    return _UNPRINTABLE.sub(_visible, str(text))


def shown(text: object) -> str:
    """A user-controlled string (a path, a label, a query) made safe to embed in rich markup.

    Control characters become visible escapes (:func:`plain`) and rich markup such as ``[/]`` or
    ``[blink]`` in it is escaped, so it prints as it is instead of crashing or styling the line.
    """
    from rich.markup import escape

    return escape(plain(text))


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


def check_output(option: str, path: Path | None) -> None:
    """Fail before the work when ``path`` cannot be written as a file (a directory, a file as its folder).

    Raises:
        InputError: naming the option, the path and what to pass instead.
    """
    if path is None:
        return

    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{option} {path} is a directory; give a file name, e.g. {option} {path / 'results.json'}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a folder; pick another path")
    if parent is not None and not os.access(parent, os.W_OK):
        raise InputError(f"{option} {path}: {parent} is not writable; pick a writable path")


def write_report(
    results: dict[str, Any], out: Path | None, json_out: bool, show: Callable[[dict[str, Any]], None]
) -> None:
    """Write ``results`` to ``out`` (atomically, when given), then print them as JSON or with ``show``.

    Raises:
        InputError: ``out`` cannot be written.
    """
    if out is not None:
        try:
            atomic_write_text(out, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
        except OSError as exc:
            raise InputError(f"--out {out}: cannot write it ({exc.strerror or exc}); pick a writable path") from None
    if json_out:
        print_json(results)
    else:
        show(results)
