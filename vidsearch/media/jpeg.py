"""JPEG stills from RGB frames, with FFmpeg's MJPEG encoder (PyAV): no image library needed.

Used by the web page's thumbnails and strips and by a watched stream's latest-frame preview.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["encode_jpeg"]


def encode_jpeg(rgb: np.ndarray, quality: int = 4) -> bytes:
    """JPEG bytes of an RGB uint8 ``[h, w, 3]`` image (FFmpeg's MJPEG encoder; ``quality`` 2-31, lower is better)."""
    import av

    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb[: h // 2 * 2, : w // 2 * 2])  # 4:2:0 needs even sides
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height = rgb.shape[1], rgb.shape[0]
    cc.pix_fmt = "yuvj420p"
    cc.time_base = Fraction(1, 25)
    cc.qmin = cc.qmax = int(quality)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    packets = list(cc.encode(frame)) + list(cc.encode(None))
    return b"".join(bytes(p) for p in packets)
