"""Probing a video: frame count, rate, duration, display size and codec; its keyframes."""

from __future__ import annotations

import os
from dataclasses import replace

from vidsearch.errors import MediaError
from vidsearch.media.decord_reader import probe_decord
from vidsearch.media.info import VideoInfo, check_file
from vidsearch.media.pyav_reader import open_pyav, probe_pyav, pyav_index, video_stream
from vidsearch.media.readers import check_reader, pyav_call, with_readers

__all__ = ["probe", "video_codec", "keyframe_indices"]


def probe(path: str | os.PathLike, reader: str = "auto") -> VideoInfo:
    """Open a video and report its frame count, rate, duration, display size and codec.

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
    # decord does not name the codec; the header read costs about a millisecond. A file decord
    # reads and FFmpeg cannot open still probes fine, with the codec unknown.
    try:
        return replace(info, codec=video_codec(path))
    except MediaError:
        return replace(info, codec="")


def video_codec(path: str | os.PathLike) -> str:
    """FFmpeg's name of the codec of the file's first video stream (reads the header only).

    Raises:
        MediaError: the file cannot be opened or has no video stream (one line, naming it).
    """
    path = os.fspath(path)
    check_file(path)

    def codec() -> str:
        with open_pyav(path) as container:
            return str(video_stream(container, path).codec_context.name)

    return pyav_call(path, codec)


def keyframe_indices(path: str | os.PathLike) -> list[int]:
    """Display-order indices of the keyframes of a video (from a demux pass, no decoding).

    Raises:
        MediaError: the file cannot be read or demuxed (one line, naming it).
    """
    path = os.fspath(path)
    check_file(path)
    return pyav_call(path, lambda: pyav_index(path).keyframes)
