"""Fine windows of one video: plan them, decode and embed them (through the window cache).

On-demand localization (:mod:`vidsearch.enrich.localize`) cuts a video into short windows at a
fine stride (default: window = duration / 8 clamped to [1 s, 8 s], stride = window / 4); each
window is embedded like an indexed segment (``num_frames`` "middle" frames), and the window
embeddings are cached per video content, model and geometry
(:class:`~vidsearch.enrich.window_cache.WindowCache`), so a second query on the same video
decodes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.enrich.window_cache import WindowCache, WindowEmbeddings
from vidsearch.errors import InputError

__all__ = ["auto_window", "fine_window_plans", "embed_windows"]

LOG = logging.getLogger(__name__)

_WINDOW_MIN, _WINDOW_MAX = 1.0, 8.0
_ENCODE_CHUNK = 64  # windows decoded and encoded per pass: bounds memory on long videos


def auto_window(duration: float) -> float:
    """Default fine window length: an eighth of the video, at least 1 s, at most 8 s."""
    return float(min(_WINDOW_MAX, max(_WINDOW_MIN, duration / 8.0)))


def fine_window_plans(info: Any, num_frames: int, window: float, stride: float) -> list[Any]:
    """Window plans (:class:`vidsearch.media.SegmentPlan`) covering the whole video.

    A video no longer than ``window`` is one window: the whole video.
    """
    from vidsearch.media import plan_segments

    plans = plan_segments(info, num_frames, window=window, stride=stride, min_video_for_windows=-1.0)
    windows = [p for p in plans if p.kind == "window"]
    return windows or plans[:1]


def embed_windows(
    path: Path | str,
    encoder: Any,
    window: float | None = None,
    stride: float | None = None,
    cache: WindowCache | None = None,
    reader: str = "auto",
    batch_size: int = 16,
) -> WindowEmbeddings:
    """Embed a video's fine windows (or load them from ``cache``).

    Args:
        path: the video file.
        encoder: an encoder (``encode_video``, ``num_frames``, ``resolution``, ``key``).
        window: window length (s); None: :func:`auto_window` of the duration.
        stride: seconds between window starts; None: ``window / 4``.
        cache: where to keep the embeddings (None: no caching).
        reader: media reader (``auto``, ``decord``, ``pyav``).
        batch_size: clips per encoder call.

    Raises:
        InputError: no such file.
        MediaError: the file cannot be decoded.
    """
    from vidsearch.media import probe, read_frames

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{p}: no such video file")
    info = probe(str(p), reader=reader)
    antialias = bool(getattr(encoder, "antialias", False))  # the Encoder attribute; duck-typed encoders: off
    w = float(window) if window is not None else auto_window(info.duration)
    st = float(stride) if stride is not None else w / 4.0
    cache_path = None
    if cache is not None:
        from vidsearch.media.fingerprint import fingerprint

        fp = fingerprint(str(p), p.stat().st_size)
        cache_path = cache.path(
            fp, str(encoder.key), int(encoder.num_frames), int(encoder.resolution), w, st, antialias
        )
        hit = cache.load(cache_path)
        if hit is not None:
            return hit
    plans = fine_window_plans(info, int(encoder.num_frames), w, st)
    out: list[np.ndarray] = []
    for lo in range(0, len(plans), _ENCODE_CHUNK):
        chunk = plans[lo : lo + _ENCODE_CHUNK]
        wanted = [i for pl in chunk for i in pl.frame_indices]
        frames, _ = read_frames(str(p), wanted, int(encoder.resolution), reader=reader, antialias=antialias)
        clips = frames.reshape(len(chunk), int(encoder.num_frames), *frames.shape[1:])  # [B, T, res, res, 3]
        for b in range(0, len(clips), batch_size):
            out.append(encoder.encode_video(clips[b : b + batch_size]))
    emb = WindowEmbeddings(
        np.array([pl.start for pl in plans], np.float64),
        np.array([pl.end for pl in plans], np.float64),
        np.concatenate(out).astype(np.float32),
        float(info.duration),
        w,
        st,
    )
    LOG.info("embedded %d windows of %.2f s (stride %.2f s) of %s", len(plans), w, st, p)
    if cache is not None and cache_path is not None:
        cache.save(cache_path, emb)
    return emb
