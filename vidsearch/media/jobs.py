"""What the decoding pool does with one file: the job and its result.

:func:`decode_job` probes, plans and decodes one file in the calling process; the pool's workers
(:mod:`vidsearch.media.worker`) call it for every job, and so can a caller that needs no crash
containment. Its ``before_decode`` hook runs first, inside the worker: the crash-containment
tests make workers crash, hang or raise through it (``tests/faults.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vidsearch.errors import MediaError
from vidsearch.media.info import VideoInfo
from vidsearch.media.probe import probe
from vidsearch.media.readers import read_frames
from vidsearch.media.sampling import SamplingConfig, SegmentPlan, plan_segments, plans_at_times

__all__ = [
    "BeforeDecode",
    "DecodeJob",
    "DecodedVideo",
    "DecodeFailure",
    "decode_job",
    "one_line",
]

LOG = logging.getLogger(__name__)

BeforeDecode = Callable[[str, str], None]  # (path, reader) -> None, called in the worker


@dataclass
class DecodeJob:
    """One file to decode.

    Attributes:
        job_id: the caller's id, returned with the result.
        path: the video file.
        num_frames: frames per segment (the model's ``num_frames``).
        resolution: output frame size (the model's input resolution).
        sampling: which segments to plan (see :func:`vidsearch.media.plan_segments`) and the
            resize choice.
        fast: decode keyframes only (see :func:`vidsearch.media.read_frames`).
        times: explicit segments instead of ``sampling``: per segment, the times (s) of its
            frames (:func:`vidsearch.media.sampling.plans_at_times`); empty: use ``sampling``.
    """

    job_id: int
    path: str
    num_frames: int
    resolution: int
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    fast: bool = False
    times: tuple[tuple[float, ...], ...] = ()


@dataclass
class DecodedVideo:
    """A decoded file: its segments and the distinct frames they use.

    Distinct frames travel between processes once each (windows overlap the whole-video clip),
    with an index that rebuilds every segment's clip.

    Attributes:
        job_id: the job's id.
        path: the video file.
        info: what the probe found.
        segments: the whole-video segment first, then the windows.
        frames: uint8 ``[U, res, res, 3]``, the distinct sampled frames in frame order.
        clip_index: int ``[S, num_frames]``; row ``s`` indexes ``frames`` for segment ``s``.
        reader: ``"decord"`` or ``"pyav"``.
        seconds: wall time spent in the worker.
    """

    job_id: int
    path: str
    info: VideoInfo
    segments: list[SegmentPlan]
    frames: np.ndarray
    clip_index: np.ndarray
    reader: str
    seconds: float

    def clips(self) -> np.ndarray:
        """All segments' frames: uint8 ``[S, T, res, res, 3]`` (a copy; frames are shared)."""
        return self.frames[self.clip_index]


@dataclass
class DecodeFailure:
    """A file that could not be decoded, with a one-line reason for users."""

    job_id: int
    path: str
    reason: str


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters (reasons users read in a table)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_job(
    job: DecodeJob,
    reader: str = "auto",
    on_probed: Callable[[VideoInfo], None] | None = None,
    before_decode: BeforeDecode | None = None,
) -> DecodedVideo | DecodeFailure:
    """Probe, plan and decode one file in this process (what a worker does for each job).

    Args:
        job: the file and sampling parameters.
        reader: ``"auto"``, ``"decord"`` or ``"pyav"``.
        on_probed: called with the probed :class:`VideoInfo` before decoding starts.
        before_decode: called with ``(path, reader)`` before anything is read (tests inject faults).

    Returns:
        A :class:`DecodedVideo`, or a :class:`DecodeFailure` for a file that cannot be decoded
        (or any other exception, reported in one line).
    """
    t0 = time.perf_counter()
    try:
        if before_decode is not None:
            before_decode(job.path, reader)
        info = probe(job.path, reader=reader)
        if on_probed is not None:
            on_probed(info)
        if job.times:
            plans = plans_at_times(info, job.times)
        else:
            plans = plan_segments(info, job.num_frames, **job.sampling.segment_kwargs())
        wanted = sorted({i for p in plans for i in p.frame_indices})
        frames, used = read_frames(
            job.path, wanted, job.resolution, reader=reader, fast=job.fast, antialias=job.sampling.resize_antialias
        )
        # rows of `frames` follow `wanted` (sorted, distinct); the index maps segments onto them
        clip_index = np.searchsorted(wanted, [p.frame_indices for p in plans]).astype(np.int64)
        return DecodedVideo(job.job_id, job.path, info, plans, frames, clip_index, used, time.perf_counter() - t0)
    except MediaError as exc:
        return DecodeFailure(job.job_id, job.path, one_line(getattr(exc, "reason", str(exc))))
    except Exception as exc:  # noqa: BLE001 -- one file's bug must not stop the run
        LOG.debug("decoding %s failed", job.path, exc_info=True)
        return DecodeFailure(job.job_id, job.path, one_line(f"decoder error: {type(exc).__name__}: {exc}"))
