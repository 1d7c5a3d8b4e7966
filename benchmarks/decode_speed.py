"""How long decoding takes: middle-sampling one clip and all windows of a long video.

Writes (once, cached) a 60 s 720p H.264 video at 30 fps with a keyframe every 250 frames and
textured, moving content at a realistic bitrate (~3.5 Mbit/s), then times on ONE core:

* 8 middle-sampled frames (the whole-video clip), decord vs PyAV, exact vs fast (keyframes);
* every segment of the video (whole video + 8 s windows every 4 s) in one pass;
* the baseline: decoding every frame.

Usage: ``python benchmarks/decode_speed.py [--video PATH] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.videogen

from tests.videogen import frame_numbers, write_video  # noqa: E402
from vidsearch.media import SamplingConfig, plan_segments, probe, read_frames  # noqa: E402

RESOLUTION = 224
NUM_FRAMES = 8


def _best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _decode_all_decord(path: str) -> int:
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    n = 0
    for _ in range(len(vr)):
        vr.next()
        n += 1
    return n


def _decode_all_pyav(path: str) -> int:
    import av

    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        for frame in c.decode(s):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="use this video instead of the generated one")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # what a pool worker does
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    if args.video:
        path = args.video
    else:
        cache = Path(tempfile.gettempdir()) / "vidsearch-bench"
        path = str(cache / "long720_gop250_noise_crf28.mp4")
        if not os.path.exists(path):
            print(f"writing {path} (60 s, 1280x720, 30 fps, GOP 250) ...", flush=True)
            write_video(path + ".tmp.mp4", seconds=60, fps=30, size=(1280, 720), gop=250, pattern="noise", crf=28)
            os.replace(path + ".tmp.mp4", path)
    info = probe(path)
    plans = plan_segments(info, NUM_FRAMES, **SamplingConfig().segment_kwargs())
    clip = list(plans[0].frame_indices)
    every = sorted({i for p in plans for i in p.frame_indices})
    print(
        f"video: {info.width}x{info.height}, {info.num_frames} frames, {info.fps:.2f} fps, "
        f"{info.duration:.1f} s, {os.path.getsize(path) / 1e6:.1f} MB; "
        f"{len(plans)} segments ({len(plans) - 1} windows), {len(every)} distinct frames; one core"
    )
    if not args.video:  # the generated video says which frame each one is: check correctness
        frames, _ = read_frames(path, clip, RESOLUTION, reader="decord")
        assert frame_numbers(frames, 12) == clip, "decord returned wrong frames"
        frames, _ = read_frames(path, clip, RESOLUTION, reader="pyav")
        assert frame_numbers(frames, 12) == clip, "PyAV returned wrong frames"

    rows = []
    for what, idx in (("middle 8 frames", clip), (f"all segments ({len(every)} frames)", every)):
        for reader in ("decord", "pyav"):
            for fast in (False, True):
                t = _best_of(lambda: read_frames(path, idx, RESOLUTION, reader=reader, fast=fast), args.repeat)
                rows.append((what, reader, "fast" if fast else "exact", t))
    t_dec = _best_of(lambda: _decode_all_decord(path), 1)
    t_pyav = _best_of(lambda: _decode_all_pyav(path), 1)

    print(f"{'what':<32} {'reader':<7} {'mode':<6} {'seconds':>8}")
    for what, reader, mode, t in rows:
        print(f"{what:<32} {reader:<7} {mode:<6} {t:8.2f}")
    print(f"{'decode every frame (RGB)':<32} {'decord':<7} {'-':<6} {t_dec:8.2f}")
    print(f"{'decode every frame (RGB)':<32} {'pyav':<7} {'-':<6} {t_pyav:8.2f}")
    exact8 = {r: t for w, r, m, t in rows if w.startswith("middle") and m == "exact"}
    print(
        f"middle 8 exact / decode-all: decord {exact8['decord'] / t_dec:.0%}, "
        f"pyav {exact8['pyav'] / t_pyav:.0%}"
    )


if __name__ == "__main__":
    main()
