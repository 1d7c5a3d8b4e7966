"""Which frames to read: the official "middle" sampling, segment plans (whole video plus
fixed-length windows for long videos) and keyframe snapping for ``--fast`` mode; and the
sampling record an embedding space keeps (which segments, and how frames were resized).

Pure index arithmetic: nothing here opens a file.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidsearch.errors import InputError
from vidsearch.media.info import VideoInfo

__all__ = [
    "OFFICIAL_ANTIALIAS",
    "SamplingConfig",
    "SegmentPlan",
    "middle_indices",
    "plan_segments",
    "plans_at_times",
    "recorded_antialias",
    "resolve_antialias",
    "snap_to_keyframes",
]

# The resize the published ViCLIP models saw: torchvision 0.15.2 ``Resize`` on uint8 tensors,
# bicubic WITHOUT antialiasing (see vidsearch.media.resize).
OFFICIAL_ANTIALIAS = False


@dataclass(frozen=True)
class SamplingConfig:
    """Which segments of a video get an embedding (see :func:`plan_segments`).

    The defaults follow the model: ViCLIP was trained on InternVid clips of about 10 s with
    8 frames each, so an 8 s window at 8 frames samples 1 frame/s, close to its training
    distribution. A stride of half the window (50% overlap) means any moment up to 4 s long lies
    entirely inside some window, so a short event is never split across two windows only.
    Videos up to 12 s are about one training clip long: the whole-video segment already is the
    clip, and windows would repeat it.
    """

    window: float = 8.0  # window length in seconds
    stride: float = 4.0  # seconds between window starts (window / 2: 50% overlap)
    min_video_for_windows: float = 12.0  # only videos longer than this get windows
    # Antialias the frame resize? None: the embedding space's recorded choice, else the official
    # one (off; see resolve_antialias). Part of the space's record: one library never mixes both.
    antialias: bool | None = None

    def segment_kwargs(self) -> dict[str, float]:
        """The :func:`plan_segments` keyword arguments of this config."""
        return {"window": self.window, "stride": self.stride, "min_video_for_windows": self.min_video_for_windows}

    @property
    def resize_antialias(self) -> bool:
        """The resize choice to decode with (the official one while unresolved)."""
        return OFFICIAL_ANTIALIAS if self.antialias is None else bool(self.antialias)

    @classmethod
    def whole_video(cls, antialias: bool | None = None) -> SamplingConfig:
        """The whole-video segment only, however long the video (e.g. a training frame cache)."""
        return cls(min_video_for_windows=math.inf, antialias=antialias)


def recorded_antialias(record: Mapping[str, Any]) -> bool:
    """The resize choice an embedding space's sampling record holds.

    Records written before the choice existed do not name it; those spaces were built with the
    antialiased resize, so that is what they say.
    """
    value = record.get("antialias")
    return True if value is None else bool(value)


def resolve_antialias(sampling: SamplingConfig, record: Mapping[str, Any], space: str = "this space") -> SamplingConfig:
    """``sampling`` with the resize choice of the existing space whose record is ``record``.

    Unset (None) follows the space; an explicit choice must agree with it, so one space never
    mixes both resizes. (A new space takes the model's own choice, ``Encoder.antialias``.)

    Raises:
        InputError: the explicit choice differs from the space's recorded one.
    """
    have = recorded_antialias(record)
    if sampling.antialias is None:
        return dataclasses.replace(sampling, antialias=have)
    if bool(sampling.antialias) != have:
        raise InputError(
            f"{space} was indexed {'with' if have else 'without'} the antialiased resize",
            hint=f"{'ask for' if have else 'turn off'} the antialiased resize to add to it, or use another library "
            "(one library never mixes both resizes)",
            remedy="match_antialias",
            value="on" if have else "off",
        )
    return sampling


@dataclass(frozen=True)
class SegmentPlan:
    """One segment to embed: the whole video or one window, with its sampled frame indices.

    Attributes:
        kind: ``"video"`` (the whole video) or ``"window"``.
        start: start time in seconds.
        end: end time in seconds.
        frame_indices: ``num_frames`` frame indices into the video (padded by repetition).
    """

    kind: str
    start: float
    end: float
    frame_indices: tuple[int, ...] = field(default_factory=tuple)


def middle_indices(vlen: int, num_frames: int, start: int = 0) -> list[int]:
    """ViCLIP/InternVid "middle" sampling of ``num_frames`` indices from ``vlen`` frames.

    Same as the official ``get_frame_indices(num_frames, vlen, sample="middle")``: split
    ``[0, vlen)`` into ``min(num_frames, vlen)`` intervals at
    ``np.linspace(0, vlen, n + 1).astype(int)``, take each interval ``(lo, hi - 1)``'s midpoint
    ``(lo + hi - 1) // 2`` and, when the video has fewer frames than ``num_frames``, pad by
    repeating the last index.

    Args:
        vlen: number of frames to sample from (>= 1).
        num_frames: number of indices wanted (>= 1).
        start: offset added to every index (a window's first frame).
    """
    if vlen < 1 or num_frames < 1:
        raise ValueError(f"need vlen >= 1 and num_frames >= 1, got vlen={vlen}, num_frames={num_frames}")
    n = min(num_frames, vlen)
    edges = np.linspace(0, vlen, n + 1).astype(int)
    idx = [int((lo + hi - 1) // 2) + start for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    return idx + [idx[-1]] * (num_frames - n)


def _frame_rate(info: VideoInfo) -> float:
    if info.fps > 0 and np.isfinite(info.fps):
        return float(info.fps)
    if info.duration > 0:
        return info.num_frames / info.duration
    return 0.0


def plan_segments(
    info: VideoInfo,
    num_frames: int,
    window: float = SamplingConfig.window,
    stride: float = SamplingConfig.stride,
    min_video_for_windows: float = SamplingConfig.min_video_for_windows,
) -> list[SegmentPlan]:
    """The segments of a video to embed: always the whole video, plus windows for long videos.

    The first plan is the whole video (middle sampling over all frames). A video longer than
    ``min_video_for_windows`` seconds also gets windows of ``window`` seconds starting every
    ``stride`` seconds; the last window is aligned to the end of the video so the tail is
    covered. Window boundaries are whole frames; times are frame index / fps. See
    :class:`SamplingConfig` for why the defaults are 8 s windows every 4 s from 12 s on.

    Args:
        info: the probed video.
        num_frames: frames per segment (the model's ``num_frames``).
        window: window length in seconds.
        stride: seconds between window starts.
        min_video_for_windows: videos at most this long get the whole-video segment only.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    vlen = info.num_frames
    plans = [SegmentPlan("video", 0.0, float(info.duration), tuple(middle_indices(vlen, num_frames)))]
    fps = _frame_rate(info)
    if info.duration <= min_video_for_windows or fps <= 0:
        return plans
    wlen = max(1, int(round(window * fps)))
    step = max(1, int(round(stride * fps)))
    if wlen >= vlen:
        return plans
    starts = list(range(0, vlen - wlen + 1, step))
    if starts[-1] != vlen - wlen:
        starts.append(vlen - wlen)  # align the last window to the end: the tail is covered
    for s in starts:
        plans.append(SegmentPlan("window", s / fps, (s + wlen) / fps, tuple(middle_indices(wlen, num_frames, start=s))))
    return plans


def plans_at_times(info: VideoInfo, times: Sequence[Sequence[float]]) -> list[SegmentPlan]:
    """Window segments made of the frames shown at given times (one plan per list of times).

    A time ``t`` (seconds) shows frame ``floor(t * fps)``, clamped to the video's frames, so
    times before the start or past the end repeat the first or last frame. Each plan spans
    its first to its last frame (end exclusive).
    """
    fps = _frame_rate(info)
    last = max(0, info.num_frames - 1)
    plans = []
    for ts in times:
        if not len(ts):
            raise ValueError("every segment needs at least one frame time")
        idx = tuple(min(last, max(0, int(math.floor(float(t) * fps + 1e-6)))) for t in ts)
        plans.append(SegmentPlan("window", min(idx) / fps, (max(idx) + 1) / fps, idx))
    return plans


def snap_to_keyframes(indices: Sequence[int], keyframes: Sequence[int]) -> list[int]:
    """Each index moved to its nearest keyframe (the earlier one on a tie)."""
    keys = sorted(set(int(k) for k in keyframes))
    if not keys:
        return [int(i) for i in indices]
    out = []
    for i in indices:
        j = bisect.bisect_right(keys, i)
        before = keys[j - 1] if j > 0 else None
        after = keys[j] if j < len(keys) else None
        if before is None or (after is not None and after - i < i - before):
            out.append(after)
        else:
            out.append(before)
    return out
