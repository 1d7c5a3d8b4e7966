"""`vidsearch clip`: keep a moment as an MP4 (the web page's "Download clip" on the command line)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import typer

from vidsearch.cli.app import app
from vidsearch.cli.common import JsonOption, LibraryOption, console, open_library, print_json
from vidsearch.errors import InputError

__all__ = ["clip_command", "parse_time"]

# 75, 75.5, 1:15, 01:15.5, 0:01:15.250
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")
_SECONDS = re.compile(r"^\d+(?:\.\d+)?$")
CLIP_SUFFIXES = (".mp4", ".m4v")


def parse_time(text: str, option: str) -> float:
    """Seconds from ``75``, ``75.5``, ``1:15`` or ``HH:MM:SS(.ms)``.

    Raises:
        InputError: anything else (negative, minutes or seconds past 59, words).
    """
    text = text.strip()
    seconds = math.inf
    if _SECONDS.match(text):
        seconds = float(text)
    elif (m := _CLOCK.match(text)) and int(m.group(2)) < 60 and float(m.group(3)) < 60:
        seconds = float(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if math.isfinite(seconds):
        return seconds
    raise InputError(f"{option} {text[:40]!r}: give seconds (75.5) or a time HH:MM:SS(.ms) (0:01:15.5)")


@app.command("clip")
def clip_command(
    video: str = typer.Argument(..., help="A video file, or the id of an indexed video.", show_default=False),
    start: str = typer.Option(..., "--start", "-s", help="Start: seconds or HH:MM:SS(.ms).", show_default=False),
    end: str = typer.Option(..., "--end", "-e", help="End: seconds or HH:MM:SS(.ms).", show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="The MP4 file to write.", show_default=False),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    library: Path | None = LibraryOption,
    json_out: bool = JsonOption,
) -> None:
    """Write the span of VIDEO from --start to --end as an MP4 that starts on the frame at --start.

    A span that starts on a keyframe is copied as it is; any other is re-encoded (H.264) from its
    start. For a watched stream's id, times are UTC seconds and the clip comes from its recording.
    """
    t0, t1 = parse_time(start, "--start"), parse_time(end, "--end")
    if t1 <= t0:
        raise InputError(f"--end {end} is not after --start {start}; give a span that ends after it starts")
    if out.suffix.lower() not in CLIP_SUFFIXES:
        raise InputError(f"--out {out.name}: clips are MP4 files; name it .mp4")
    if out.is_dir():
        raise InputError(f"--out {out} is a folder; give a file name such as {out / 'clip.mp4'}")
    if out.exists() and not force:
        raise InputError(f"--out {out} exists; pass --force to replace it, or choose another name")
    from vidsearch.media.clip import cut_clip

    if Path(video).exists() or not video.isdigit():
        clip = cut_clip(video, t0, t1, out)  # a missing file is a MediaError naming it
    else:
        from vidsearch.usecases.clips import cut_moment, moment_video

        with open_library(library, read_only=True) as lib:
            clip = cut_moment(lib, moment_video(lib, int(video)), t0, t1, out)
    if json_out:
        print_json(clip.to_dict())
        return
    how = "copied" if clip.copied else f"re-encoded ({clip.codec})"
    console.print(
        f"wrote {out}: {clip.start:.3f}-{clip.end:.3f} s ({clip.end - clip.start:.3f} s, {how}"
        f"{', with audio' if clip.audio else ''})",
        highlight=False,
        markup=False,
    )
