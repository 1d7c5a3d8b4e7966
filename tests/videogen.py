"""Real, small test videos written with PyAV, whose frames say which frame they are.

Plain functions (no pytest fixtures) so that any test, benchmark or script can use them.

Every generated frame carries its frame number twice:

* a **bit strip** across the top quarter of the frame: ``bits`` equal-width columns, white for a
  1 bit and black for a 0 bit, most significant bit on the left. The columns are fractions of
  the frame width, so the code survives resizing to any square resolution and lossy
  compression; :func:`frame_number` reads it back.
* the **brightness** of the rest of the frame rises with the frame number (``16 + 4 * i``
  modulo 224), so even a glance at a mean value tells frames apart.

``make_bad_corpus`` builds the awkward inputs of issue 3 (Behaviour 4) and says what each one
is expected to do.
"""

from __future__ import annotations

import math
import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "DEFAULT_BITS",
    "write_video",
    "make_frame",
    "frame_number",
    "frame_numbers",
    "write_audio_only",
    "make_bad_corpus",
]

DEFAULT_BITS = 12  # 4096 distinct frames: a 60 s clip at 30 fps is 1800

# container by extension, pixel format by codec; mjpeg wants full-range ("j") YUV.
_PIX_FMT = {"libx264": "yuv420p", "mpeg4": "yuv420p", "libvpx": "yuv420p", "mjpeg": "yuvj420p"}
_CODEC_ALIASES = {"h264": "libx264", "vp8": "libvpx", "vp8-webm": "libvpx", "mjpeg-avi": "mjpeg"}


def _bits_for_width(width: int, bits: int | None) -> int:
    # Each bit column needs a few pixels to survive chroma subsampling and compression.
    return bits if bits is not None else max(1, min(DEFAULT_BITS, width // 4))


def make_frame(
    i: int,
    size: tuple[int, int],
    *,
    pattern: str = "gradient",
    color: tuple[int, int, int] | None = None,
    bits: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Render frame ``i`` as uint8 ``[h, w, 3]`` (``size`` is ``(w, h)``).

    Args:
        i: frame number, coded into the bit strip and the brightness.
        size: ``(width, height)`` in pixels.
        pattern: ``"gradient"`` (horizontal ramp), ``"moving_square"`` (a square that moves one
            step per frame) or ``"noise"`` (seeded per-frame noise, hard to compress).
        color: optional RGB tint multiplied into the body (not the bit strip).
        bits: number of bit columns; default depends on the width (see :func:`frame_number`).
        seed: seed of the ``"noise"`` pattern.
    """
    w, h = size
    nbits = _bits_for_width(w, bits)
    level = 16 + (4 * i) % 224
    if pattern == "gradient":
        ramp = np.linspace(0, 31, w, dtype=np.float32)[None, :]
        body = np.broadcast_to(level + ramp, (h, w))
    elif pattern == "moving_square":
        body = np.full((h, w), level, np.float32)
        side = max(2, min(w, h) // 4)
        x0 = (3 * i) % max(1, w - side)
        y0 = (2 * i) % max(1, h - side)
        body = body.copy()
        body[y0 : y0 + side, x0 : x0 + side] = 255 - level
    elif pattern == "noise":
        rng = np.random.default_rng(seed * 1_000_003 + i)
        body = level + rng.integers(-12, 13, size=(h, w)).astype(np.float32)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; choose gradient, moving_square or noise")
    rgb = np.repeat(np.asarray(body, np.float32)[:, :, None], 3, axis=2)
    if color is not None:
        rgb = rgb * (np.asarray(color, np.float32) / 255.0)
    frame = np.clip(rgb, 0, 255).astype(np.uint8)
    strip = max(1, h // 4)
    edges = np.linspace(0, w, nbits + 1).round().astype(int)
    for k in range(nbits):
        bit = (i >> (nbits - 1 - k)) & 1
        frame[:strip, edges[k] : edges[k + 1]] = 255 if bit else 0
    return frame


def frame_number(frame: np.ndarray, bits: int) -> int:
    """Read back the frame number coded by :func:`make_frame` from a decoded ``[H, W, 3]`` frame.

    Works on frames resized to another (e.g. square) shape: the columns are width fractions.
    Pass the ``bits`` the video was made with (``max(1, min(12, width // 4))`` by default).
    """
    h, w = frame.shape[:2]
    strip = max(1, h // 4)
    gray = frame[: max(1, strip * 3 // 4)].astype(np.float32).mean(axis=2)
    edges = np.linspace(0, w, bits + 1)
    value = 0
    for k in range(bits):
        lo, hi = edges[k], edges[k + 1]
        # the middle half of each column, away from blur at the column edges
        a = int(math.floor(lo + (hi - lo) / 4))
        b = max(a + 1, int(math.ceil(hi - (hi - lo) / 4)))
        value = (value << 1) | int(gray[:, a:b].mean() > 127.5)
    return value


def frame_numbers(frames: np.ndarray, bits: int) -> list[int]:
    """:func:`frame_number` of each frame of ``[N, H, W, 3]``."""
    return [frame_number(f, bits) for f in frames]


def _open_video_stream(
    container, codec: str, fps: int | Fraction, size: tuple[int, int], gop: int | None, crf: int = 18
):
    w, h = size
    options: dict[str, str] = {}
    if codec == "libx264":
        # fixed keyframe interval (no scene-cut keyframes) so tests know where keyframes are
        keyint = gop if gop else 250
        options = {
            "preset": "ultrafast",
            "crf": str(crf),
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0",
        }
    elif codec == "libvpx":
        options = {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "2M"}
    stream = container.add_stream(codec, rate=fps, options=options)
    stream.width, stream.height = w, h
    stream.pix_fmt = _PIX_FMT[codec]
    if gop:
        stream.codec_context.gop_size = gop
    if codec in ("mpeg4", "mjpeg"):
        stream.codec_context.bit_rate = 4_000_000
        stream.codec_context.qmax = 4  # keep the bit strip crisp
    return stream


def _add_audio_stream(container, rate: int = 16000):
    stream = container.add_stream("aac", rate=rate)
    stream.layout = "mono"
    return stream


def _write_audio(container, stream, seconds: float, rate: int = 16000) -> None:
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float32) / rate
    samples = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    step = 1024
    for start in range(0, n, step):
        chunk = samples[start : start + step][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_video(
    path: str | os.PathLike,
    *,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    gop: int | None = None,
    pattern: str = "gradient",
    color: tuple[int, int, int] | None = None,
    vfr: bool = False,
    audio: bool = False,
    num_frames: int | None = None,
    bits: int | None = None,
    crf: int = 18,
) -> Path:
    """Write a video whose frame ``i`` is :func:`make_frame` ``(i)``; returns its path.

    Args:
        path: output file; the container comes from the extension (.mp4, .mkv, .webm, .avi, .mov).
        seconds: duration (ignored when ``num_frames`` is given).
        fps: nominal frame rate.
        size: ``(width, height)``. libx264/libvpx need even sizes; use ``mpeg4``/``mjpeg`` for odd.
        codec: ``libx264`` (alias ``h264``), ``mpeg4``, ``libvpx`` (``vp8``, ``vp8-webm``) or
            ``mjpeg`` (``mjpeg-avi``).
        gop: keyframe interval in frames (x264: fixed, no scene-cut keyframes; default 250).
        pattern, color, bits: see :func:`make_frame`.
        vfr: variable frame rate: frame durations alternate between 0.5 and 1.5 nominal frame
            periods (in runs of 3 frames), so timestamps are irregular but the average rate is ``fps``.
        audio: add a 440 Hz AAC track of the same duration.
        num_frames: exact number of frames to write.
        crf: libx264 quality (higher: smaller file, cheaper decoding); 18 keeps the strip crisp.
    """
    path = Path(path)
    codec = _CODEC_ALIASES.get(codec, codec)
    if codec not in _PIX_FMT:
        raise ValueError(f"unknown codec {codec!r}; choose one of {sorted(_PIX_FMT)}")
    n = num_frames if num_frames is not None else max(1, int(round(seconds * fps)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = _open_video_stream(container, codec, fps, size, gop, crf)
        if vfr:
            # millisecond timestamps let the frames land at irregular times
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        astream = _add_audio_stream(container) if audio else None
        pts_ms = 0.0
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(
                make_frame(i, size, pattern=pattern, color=color, bits=bits), format="rgb24"
            )
            if vfr:
                frame.pts = int(round(pts_ms))
                frame.time_base = Fraction(1, 1000)
                pts_ms += (1000.0 / fps) * (0.5 if (i // 3) % 2 == 0 else 1.5)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if astream is not None:
            _write_audio(container, astream, n / fps)
    return path


def write_audio_only(path: str | os.PathLike, seconds: float = 1.0) -> Path:
    """Write an AAC file with no video stream (``.m4a`` or ``.mp4``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4" if path.suffix in (".m4a", ".mp4") else None) as container:
        _write_audio(container, _add_audio_stream(container), seconds)
    return path


def make_bad_corpus(directory: str | os.PathLike) -> dict[str, dict]:
    """Create the awkward inputs of issue 3 (Behaviour 4) under ``directory``.

    Returns ``{relative path: expected}`` where ``expected`` is a dict with ``"ok"`` (bool: a
    correct decode is expected) and, for good files, ``"num_frames"``/``"width"``/``"height"``
    and ``"bits"`` (for :func:`frame_number`); for bad files, ``"reason"``: a substring the
    one-line error is expected to contain (lowercase). Entries that are not regular files
    (``"kind"`` of ``"dir"``, ``"broken_symlink"``, ``"symlink_loop"``) are what a folder
    scanner meets; reading them directly must still give a one-line error.

    The "unreadable file" case: ``chmod 000`` does not stop root, and tests often run as root,
    so the corpus makes a ``chmod 000`` file only when that actually blocks reading (checked
    with ``os.access``), and always adds two unreadable paths that fail for every user: a
    directory named ``dir.mp4`` and a broken symlink ``dangling.mp4``.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}

    def good(name: str, n: int, w: int, h: int, **kw) -> None:
        write_video(root / name, num_frames=n, size=(w, h), fps=kw.pop("fps", 10), **kw)
        out[name] = {"ok": True, "num_frames": n, "width": w, "height": h, "bits": _bits_for_width(w, None)}

    (root / "empty.mp4").write_bytes(b"")
    out["empty.mp4"] = {"ok": False, "reason": "empty"}

    (root / "text.mp4").write_text("this is not a video\n" * 20)
    out["text.mp4"] = {"ok": False, "reason": "decoded"}

    # the moov atom goes at the end of an mp4, so cutting the file in half loses the index
    full = write_video(root / "_full.mp4", num_frames=20)
    data = full.read_bytes()
    full.unlink()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    out["truncated.mp4"] = {"ok": False, "reason": "decoded"}

    # an mkv truncated halfway still has its first frames: readers may decode a prefix
    mkv = write_video(root / "_full.mkv", num_frames=40)
    data = mkv.read_bytes()
    mkv.unlink()
    (root / "truncated_tail.mkv").write_bytes(data[: len(data) * 2 // 3])
    out["truncated_tail.mkv"] = {"ok": None, "reason": "decoded"}  # either outcome is fine

    locked = write_video(root / "locked.mp4", num_frames=5)
    os.chmod(locked, 0)
    if os.access(locked, os.R_OK):  # running as root: chmod does not block reading
        os.chmod(locked, 0o644)
        out["locked.mp4"] = {"ok": True, "num_frames": 5, "width": 64, "height": 48, "bits": _bits_for_width(64, None)}
    else:
        out["locked.mp4"] = {"ok": False, "reason": "permission"}

    (root / "dir.mp4").mkdir(exist_ok=True)
    out["dir.mp4"] = {"ok": False, "reason": "not a file", "kind": "dir"}

    dangling = root / "dangling.mp4"
    if not dangling.is_symlink():
        dangling.symlink_to(root / "does-not-exist.mp4")
    out["dangling.mp4"] = {"ok": False, "reason": "not found", "kind": "broken_symlink"}

    good("one_frame.mp4", 1, 64, 48)
    good("three_frames.mp4", 3, 64, 48)
    good("odd_17x33.avi", 12, 17, 33, codec="mpeg4")
    good("odd_17x33_mjpeg.avi", 12, 17, 33, codec="mjpeg")
    good("portrait.mp4", 20, 48, 96)
    good("uhd_4k.mp4", 3, 3840, 2160)
    good("vfr.mp4", 30, 64, 48, vfr=True)
    good("vp8.webm", 20, 64, 48, codec="libvpx")
    good("with_audio.mp4", 20, 64, 48, audio=True)
    good("unicode dir/vidéo 名前 with spaces.mp4", 12, 64, 48)

    write_audio_only(root / "audio_only.m4a")
    out["audio_only.m4a"] = {"ok": False, "reason": "no video stream"}
    write_audio_only(root / "audio_only.mp4")
    out["audio_only.mp4"] = {"ok": False, "reason": "no video stream"}

    loop_dir = root / "loop"
    loop_dir.mkdir(exist_ok=True)
    link = loop_dir / "self"
    if not link.is_symlink():
        link.symlink_to(loop_dir, target_is_directory=True)  # loop/self/self/... forever
    out["loop/self"] = {"ok": False, "reason": "not a file", "kind": "symlink_loop"}
    good("loop/inside.mp4", 6, 64, 48)
    return out


def remove_corpus(directory: str | os.PathLike) -> None:
    """Delete a corpus, including ``chmod 000`` files (for scripts; pytest's tmp_path cleans itself)."""
    root = Path(directory)
    for dirpath, _, files in os.walk(root):  # does not follow symlinks (the corpus has a loop)
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                os.chmod(p, 0o644)
    shutil.rmtree(root, ignore_errors=True)
