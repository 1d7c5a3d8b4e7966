"""Everything about reading videos: probing, frame sampling, decoding, resizing, fingerprints.

L0 core: no SQL, no models. Modules, one job each:

- :mod:`~vidsearch.media.info`: :class:`VideoInfo`, file checks, one-line ``MediaError``\\ s.
- :mod:`~vidsearch.media.sampling`: "middle" sampling, segment plans (whole video + windows),
  keyframe snapping for ``--fast``.
- :mod:`~vidsearch.media.decord_reader`, :mod:`~vidsearch.media.pyav_reader`: the two readers.
- :mod:`~vidsearch.media.readers`: which reader reads a file; :func:`read_frames`.
- :mod:`~vidsearch.media.probe`: :func:`probe`, :func:`keyframe_indices`.
- :mod:`~vidsearch.media.resize`: the official bicubic antialiased resize (imports torch).
- :mod:`~vidsearch.media.fingerprint`: a cheap content fingerprint of a file.
- :mod:`~vidsearch.media.jobs`, :mod:`~vidsearch.media.worker`, :mod:`~vidsearch.media.pool`:
  the crash-contained decoding pool (:class:`~vidsearch.media.pool.DecodePool`), used by the
  indexer and by training.

This package re-exports the reading API; import the resize and the pool from their modules
(they pull in torch and multiprocessing, which a probe does not need).
"""

from __future__ import annotations

from vidsearch.media.fingerprint import fingerprint
from vidsearch.media.info import VideoInfo
from vidsearch.media.probe import keyframe_indices, probe
from vidsearch.media.readers import READERS, read_frames
from vidsearch.media.sampling import SamplingConfig, SegmentPlan, middle_indices, plan_segments, snap_to_keyframes

__all__ = [
    "READERS",
    "VideoInfo",
    "SamplingConfig",
    "SegmentPlan",
    "probe",
    "middle_indices",
    "plan_segments",
    "snap_to_keyframes",
    "keyframe_indices",
    "read_frames",
    "fingerprint",
]
