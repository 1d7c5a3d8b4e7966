"""Square crops around an actor: a box grown by a context margin, kept inside the frame, resized.

Boxes are in *native* pixels (the video's own width and height); frames may be stored at any
size (the decoding pool delivers them square), so a crop is mapped from native pixels to the
stored frame's pixels, which keeps the crop square in the picture even when the stored frame
is squashed. At a border the square slides back inside the frame (the actor keeps real context
instead of padding); only a square larger than the frame is padded, by repeating the edge pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidsearch.media.resize import resize_frames

__all__ = ["square_around", "crop_clip"]


def square_around(
    boxes: np.ndarray, width: float, height: float, margin: float = 0.25
) -> tuple[float, float, float, float]:
    """The square (native pixels, xyxy) a clip of these boxes is cropped to.

    Args:
        boxes: ``[K, 4]`` xyxy boxes of one actor over the clip (their union is framed).
        width, height: the native frame size.
        margin: context added on every side, as a share of the union's longer side.

    Returns:
        ``(x1, y1, x2, y2)``: a square of side ``longer side * (1 + 2 * margin)`` centred on the
        union, moved inside the frame where it fits; it may extend past the frame only where it
        is larger than the frame.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        raise ValueError("square_around needs at least one box")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x1, y1 = b[:, 0].min(), b[:, 1].min()
    x2, y2 = b[:, 2].max(), b[:, 3].max()
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0

    def place(c: float, extent: float) -> float:
        lo = c - side / 2.0
        if side <= extent:  # fits: slide inside the frame
            return min(max(lo, 0.0), extent - side)
        return (extent - side) / 2.0  # larger than the frame: centre it, pad both sides

    left, top = place(cx, float(width)), place(cy, float(height))
    return left, top, left + side, top + side


def crop_clip(
    frames: np.ndarray,
    square: Sequence[float],
    native_size: tuple[int, int],
    size: int,
) -> np.ndarray:
    """Cut ``square`` out of every frame and resize it to ``size x size``.

    Args:
        frames: uint8 ``[T, h, w, 3]`` as stored (any size; e.g. squashed square frames).
        square: ``(x1, y1, x2, y2)`` in native pixels (:func:`square_around`).
        native_size: ``(width, height)`` of the video.
        size: output side.

    Returns:
        uint8 ``[T, size, size, 3]``.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames [T, h, w, 3], got shape {frames.shape}")
    _, h, w, _ = frames.shape
    sx, sy = w / float(native_size[0]), h / float(native_size[1])
    x1, y1, x2, y2 = (float(v) for v in square)
    # stored-frame pixel bounds; at least one pixel each way
    px1, px2 = int(np.floor(x1 * sx)), max(int(np.ceil(x2 * sx)), int(np.floor(x1 * sx)) + 1)
    py1, py2 = int(np.floor(y1 * sy)), max(int(np.ceil(y2 * sy)), int(np.floor(y1 * sy)) + 1)
    pad = ((0, 0), (max(0, -py1), max(0, py2 - h)), (max(0, -px1), max(0, px2 - w)), (0, 0))
    if any(p for axis in pad for p in axis):
        frames = np.pad(frames, pad, mode="edge")
        px1, px2 = px1 + pad[2][0], px2 + pad[2][0]
        py1, py2 = py1 + pad[1][0], py2 + pad[1][0]
    crop = np.ascontiguousarray(frames[:, py1:py2, px1:px2])
    return resize_frames(crop, size)
