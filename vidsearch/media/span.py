"""The frames of a whole video or a ``[start, end]`` span, sampled as the indexer samples a segment.

One place for "middle" sampling over a span in seconds, so that a query clip, an ITM re-ranking
candidate and an indexed segment see the same frames (a file of the library, queried whole,
gets back its own embedding).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidsearch.errors import InputError
from vidsearch.media.info import VideoInfo
from vidsearch.media.probe import probe
from vidsearch.media.readers import read_frames
from vidsearch.media.sampling import middle_indices

__all__ = ["span_indices", "read_span"]


def span_indices(info: VideoInfo, num_frames: int, start: float | None = None, end: float | None = None) -> list[int]:
    """``num_frames`` middle-sampled frame indices of the video, or of its ``[start, end]`` span (s).

    Raises:
        InputError: the span is empty or outside the video.
    """
    first, last = 0, info.num_frames
    if start is not None or end is not None:
        s = 0.0 if start is None else float(start)
        e = info.duration if end is None else float(end)
        if s < 0 or e <= s or s >= info.duration:
            raise InputError(
                f"span {s:g}-{e:g} s is empty or outside {info.path} (duration {info.duration:.2f} s)",
                path=info.path,
                argument="start/end",
            )
        first = min(info.num_frames - 1, int(round(s * info.fps)))
        last = max(first + 1, min(info.num_frames, int(round(e * info.fps))))
    return middle_indices(last - first, num_frames, start=first)


def read_span(
    path: str | os.PathLike[str],
    num_frames: int,
    resolution: int,
    start: float | None = None,
    end: float | None = None,
    *,
    reader: str = "auto",
    antialias: bool = False,
) -> np.ndarray:
    """Decode :func:`span_indices`' frames, resized to ``resolution``: uint8 ``[T, res, res, 3]`` in clip order.

    Raises:
        InputError: no such file, or an empty span.
        MediaError: the file cannot be decoded.
    """
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file", path=path, argument="video")
    indices = span_indices(probe(path), num_frames, start, end)
    frames, _ = read_frames(path, indices, resolution, reader=reader, antialias=antialias)
    return frames
