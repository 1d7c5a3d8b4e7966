"""The fine-window embedding cache: ``.npz`` files keyed by video content, model and geometry."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsearch.fileio import atomic_write
from vidsearch.spans import Window, score_windows

__all__ = ["WindowEmbeddings", "WindowCache"]

LOG = logging.getLogger(__name__)


@dataclass
class WindowEmbeddings:
    """Embeddings of a video's fine windows.

    Attributes:
        starts: float64 ``[W]`` window starts (s).
        ends: float64 ``[W]`` window ends (s).
        xb: float32 ``[W, D]`` L2-normalized.
        duration: the video's duration (s).
        window: window length asked for (s).
        stride: stride asked for (s).
        cached: loaded from the cache instead of decoded.
    """

    starts: np.ndarray
    ends: np.ndarray
    xb: np.ndarray
    duration: float
    window: float
    stride: float
    cached: bool = False

    def windows(self, xq: np.ndarray) -> list[Window]:
        """``(start, end, score)`` of every window for a query vector."""
        return score_windows(self.starts, self.ends, self.xb, xq)


class WindowCache:
    """``.npz`` files of window embeddings keyed by video content, model and window geometry.

    The key is the video's content fingerprint (the indexer's: size plus head, middle and tail
    bytes), the model's ``key`` (name + checkpoint hash), its frames and resolution, and the
    window and stride, so a renamed file hits and a changed one misses. Writes are atomic.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(
        self,
        video_fp: str,
        model_key: str,
        num_frames: int,
        resolution: int,
        window: float,
        stride: float,
        antialias: bool = False,
    ) -> Path:
        """The cache file of one (video, model, geometry, frame resize)."""
        ident = json.dumps(
            [video_fp, model_key, num_frames, resolution, round(window, 6), round(stride, 6), bool(antialias)]
        )
        return self.root / (hashlib.sha256(ident.encode()).hexdigest()[:32] + ".npz")

    def load(self, path: Path) -> WindowEmbeddings | None:
        """The cached embeddings, or None when missing or unreadable."""
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                return WindowEmbeddings(
                    z["starts"],
                    z["ends"],
                    z["xb"].astype(np.float32),
                    meta["duration"],
                    meta["window"],
                    meta["stride"],
                    True,
                )
        except (OSError, ValueError, KeyError) as exc:  # a torn or foreign file: recompute
            LOG.warning("ignoring unreadable window cache %s: %s", path, exc)
            return None

    def save(self, path: Path, emb: WindowEmbeddings) -> None:
        """Write atomically (:func:`vidsearch.fileio.atomic_write`); failures only log (the cache is optional)."""
        meta = json.dumps({"duration": emb.duration, "window": emb.window, "stride": emb.stride})
        try:
            atomic_write(
                path, lambda fh: np.savez(fh, starts=emb.starts, ends=emb.ends, xb=emb.xb, meta=np.array(meta))
            )
        except OSError as exc:
            LOG.warning("could not write window cache %s: %s", path, exc)
