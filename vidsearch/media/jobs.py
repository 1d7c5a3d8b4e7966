"""What the decoding pool does with one file: the job, its result, and injected faults.

:func:`decode_job` probes, plans and decodes one file in the calling process; the pool's workers
(:mod:`vidsearch.media.worker`) call it for every job, and so can a caller that needs no crash
containment.

Fault injection (for tests). A :class:`FaultPlan` maps path substrings to faults; a file whose
path contains the substring triggers the fault inside the worker that decodes it. Kinds:
``crash`` (SIGSEGV), ``abort`` (SIGABRT), ``hang`` (sleeps forever), ``raise`` (a Python
exception), ``exit`` (``os._exit(3)``), and ``decordcrash`` (SIGSEGV unless the attempt is the
PyAV-only retry, as when decord itself crashes). Tests pass one to
:class:`~vidsearch.media.pool.DecodePool`; end-to-end tests of the command line set
``VIDSEARCH_FAULT_INJECT="crash:bad_one,hang:stuck"``, which the front end reads with
:meth:`FaultPlan.from_env` and passes on (nothing in here reads the environment by itself).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from vidsearch.errors import MediaError
from vidsearch.media.info import VideoInfo
from vidsearch.media.probe import probe
from vidsearch.media.readers import read_frames
from vidsearch.media.sampling import SamplingConfig, SegmentPlan, plan_segments, plans_at_times
from vidsearch.settings import FAULT_ENV, Settings, settings

__all__ = [
    "FAULT_ENV",
    "FAULT_KINDS",
    "FaultPlan",
    "DecodeJob",
    "DecodedVideo",
    "DecodeFailure",
    "decode_job",
    "one_line",
]

LOG = logging.getLogger(__name__)

FAULT_KINDS = ("crash", "abort", "hang", "raise", "exit", "decordcrash")


@dataclass(frozen=True)
class FaultPlan:
    """Faults to inject while decoding (tests only): path substring -> fault kind.

    Example: ``FaultPlan({"bad_one": "crash", "stuck": "hang"})``. The empty plan injects
    nothing. See the module docstring for the kinds.
    """

    faults: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(k for k in self.faults.values() if k not in FAULT_KINDS)
        if bad:
            raise ValueError(f"unknown fault kind(s) {bad}; choose from {', '.join(FAULT_KINDS)}")
        if any(not needle for needle in self.faults):
            raise ValueError("a fault's path substring must not be empty")
        object.__setattr__(self, "faults", dict(self.faults))  # picklable, and not shared

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """A plan from ``"<kind>:<substring>,..."`` (the ``VIDSEARCH_FAULT_INJECT`` syntax).

        Raises:
            ValueError: an item has no substring or an unknown kind.
        """
        faults: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            kind, _, needle = item.partition(":")  # the substring may hold ":" itself
            if not needle:
                raise ValueError(f"{FAULT_ENV}: {item!r} is not '<kind>:<path substring>'")
            faults[needle] = kind
        return cls(faults)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultPlan:
        """The plan ``VIDSEARCH_FAULT_INJECT`` names (empty when unset); for front ends only."""
        env = settings() if environ is None else Settings.from_env(environ)
        return cls.parse(env.fault_inject)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def inject(self, path: str, reader: str) -> None:
        """Misbehave as planned for ``path`` (``reader`` is the attempt's reader)."""
        for needle, kind in self.faults.items():
            if needle not in path:
                continue
            LOG.debug("fault injection: %s on %s", kind, path)
            if kind == "crash" or (kind == "decordcrash" and reader != "pyav"):
                os.kill(os.getpid(), signal.SIGSEGV)
            elif kind == "abort":
                os.abort()
            elif kind == "hang":
                while True:
                    time.sleep(3600)
            elif kind == "raise":
                raise RuntimeError(f"injected fault for {needle!r}")
            elif kind == "exit":
                os._exit(3)


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
    faults: FaultPlan | None = None,
) -> DecodedVideo | DecodeFailure:
    """Probe, plan and decode one file in this process (what a worker does for each job).

    Args:
        job: the file and sampling parameters.
        reader: ``"auto"``, ``"decord"`` or ``"pyav"``.
        on_probed: called with the probed :class:`VideoInfo` before decoding starts.
        faults: faults to inject (tests only).

    Returns:
        A :class:`DecodedVideo`, or a :class:`DecodeFailure` for a file that cannot be decoded
        (or any other exception, reported in one line).
    """
    t0 = time.perf_counter()
    try:
        if faults:
            faults.inject(job.path, reader)
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
