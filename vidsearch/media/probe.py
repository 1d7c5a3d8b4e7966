"""Probing a video: frame count, rate, duration and display size; its keyframes."""

from __future__ import annotations

import os

from vidsearch.media.decord_reader import probe_decord
from vidsearch.media.info import VideoInfo, check_file
from vidsearch.media.pyav_reader import probe_pyav, pyav_index
from vidsearch.media.readers import check_reader, pyav_call, with_readers

__all__ = ["probe", "keyframe_indices"]


def probe(path: str | os.PathLike, reader: str = "auto") -> VideoInfo:
    """Open a video and report its frame count, rate, duration and display size.

    Args:
        path: the video file.
        reader: ``"auto"`` (decord, PyAV where decord is known to be wrong or fails),
            ``"decord"`` or ``"pyav"``.

    Raises:
        MediaError: one line naming the file: "file not found", "empty file", "no video
            stream", "cannot be decoded: <reason>", ...
        ValueError: an unknown reader.
    """
    check_reader(reader)
    path = os.fspath(path)
    check_file(path)
    info, _ = with_readers(path, reader, lambda auto: probe_decord(path, auto), lambda: probe_pyav(path))
    return info


def keyframe_indices(path: str | os.PathLike) -> list[int]:
    """Display-order indices of the keyframes of a video (from a demux pass, no decoding).

    Raises:
        MediaError: the file cannot be read or demuxed (one line, naming it).
    """
    path = os.fspath(path)
    check_file(path)
    return pyav_call(path, lambda: pyav_index(path).keyframes)
