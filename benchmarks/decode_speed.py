"""How long decoding takes: middle-sampling one clip and all windows of a long video.

Writes (once, cached) a 60 s 720p H.264 video at 30 fps with a keyframe every 250 frames and
textured, moving content at a realistic bitrate (~3.5 Mbit/s), then times on ONE core:

* 8 middle-sampled frames (the whole-video clip), decord vs PyAV, exact vs fast (keyframes);
* every segment of the video (whole video + 8 s windows every 4 s) in one pass;
* the baseline: decoding every frame.

``--codecs``: decord vs PyAV per codec/container (8 middle frames of a 10 s 640x360 clip, one
decoding thread and FFmpeg's automatic threads): the measurements behind
``vidsearch.media.readers.PYAV_FASTER`` (which reader leads under ``reader="auto"``).

``--cache N``: the fine-tuning frame cache (16 frames at 64 px) of N synthetic 3.5 s 112 px
clips (:mod:`vidsearch.testing.synthetic`), built by the old code (``git show
8de189a:vidsearch/train/data.py`` with its ``vidsearch/media.py``: decord first, one thread,
in process or its own spawn pool) and by the current one (the crash-contained decode pool,
PyAV leading on H.264, threaded decoding), with 1 and 2 workers, in the same run.

Usage: ``python benchmarks/decode_speed.py [--video PATH] [--repeat 3] [--codecs] [--cache 300]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.videogen

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


def codec_speed(repeat: int) -> None:
    """decord vs PyAV per codec/container, 8 middle frames, 1 thread and automatic threads."""
    from vidsearch.media import middle_indices
    from vidsearch.media.threads import set_decode_threads

    folder = Path(tempfile.gettempdir()) / "vidsearch-bench" / "codecs"
    print(f"{'codec':<9} {'container':<9} {'threads':<7} {'decord s':>9} {'pyav s':>8} {'decord/pyav':>12}")
    for codec, ext in (("libx264", "mp4"), ("libx264", "mkv"), ("mpeg4", "avi"), ("mjpeg", "avi"), ("libvpx", "webm")):
        path = folder / f"{codec}.{ext}"
        if not path.exists():
            write_video(
                path,
                seconds=10,
                fps=25,
                size=(640, 360),
                codec=codec,
                gop=None if codec == "mjpeg" else 250,
                pattern="noise",
            )
        idx = middle_indices(probe(str(path), reader="pyav").num_frames, NUM_FRAMES)
        for threads in (1, 0):
            set_decode_threads(threads)
            t = {
                r: _best_of(lambda: read_frames(str(path), idx, RESOLUTION, reader=r), repeat)
                for r in ("decord", "pyav")
            }
            print(
                f"{codec:<9} {ext:<9} {threads or 'auto':<7} {t['decord']:9.3f} {t['pyav']:8.3f} {t['decord'] / t['pyav']:12.2f}"
            )
    set_decode_threads(0)


_OLD = "8de189a"


def _old_code(where: Path) -> None:
    """The old frame cache code (data.py + the media.py it used) as importable modules."""
    where.mkdir(parents=True, exist_ok=True)
    media = subprocess.run(
        ["git", "show", f"{_OLD}:vidsearch/media.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    data = subprocess.run(
        ["git", "show", f"{_OLD}:vidsearch/train/data.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (where / "old_media.py").write_text(media)
    (where / "old_train_data.py").write_text(
        data.replace("    from vidsearch import media\n", "    import old_media as media\n")
    )
    sys.path.insert(0, str(where))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(where), str(ROOT), os.environ.get("PYTHONPATH", "")])


def frame_cache_speed(n: int) -> None:
    """Old vs new fine-tuning frame cache build on ``n`` synthetic clips, same machine, same run."""
    from vidsearch.testing.synthetic import make_split
    from vidsearch.train import data as new_data

    folder = Path(tempfile.gettempdir()) / "vidsearch-bench" / f"cache{n}"
    if not (folder / "train.json").exists():
        print(f"writing {n} clips (112 px, 3.5 s at 8 fps) ...", flush=True)
        make_split(folder, "train", n, seed=0, size=112, num_frames=28, fps=8)
    videos = sorted((folder / "train").glob("*.mp4"))
    _old_code(folder / "old-code")
    import old_train_data

    # steady state: the per-clip decoding work alone, in this process, one thread (no start-up)
    from vidsearch.media.jobs import DecodeJob, decode_job

    sample = videos[: min(len(videos), 50)]
    per_clip = {}
    for name, fn in (
        ("old", lambda v: old_train_data._decode_with_media(v, 16, 64)),
        ("new", lambda v: decode_job(DecodeJob(0, str(v), 16, 64, sampling=SamplingConfig.whole_video())).frames),
    ):
        fn(sample[0])
        t = time.perf_counter()
        for v in sample:
            fn(v)
        per_clip[name] = (time.perf_counter() - t) / len(sample)
    print(
        f"per-clip decoding, one thread, no start-up: old {1000 * per_clip['old']:.1f} ms, new {1000 * per_clip['new']:.1f} ms "
        f"({per_clip['old'] / per_clip['new']:.1f}x)",
        flush=True,
    )
    # The decode pool's fork server (it imports torch, decord and PyAV) starts once per process;
    # time it on its own so that whichever run comes first does not carry it.
    from vidsearch.media.pool import DecodePool

    t = time.perf_counter()
    with DecodePool(workers=1) as pool:  # the server imports as it forks its first worker
        list(pool.run([DecodeJob(0, str(videos[0]), 16, 64, sampling=SamplingConfig.whole_video())]))
    server = time.perf_counter() - t
    print(f"decode pool fork server start-up (once per process): {server:.2f} s", flush=True)
    times = {}
    for workers in (1, 2):
        for name, build in (("old", old_train_data.build_frame_cache), ("new", new_data.build_frame_cache)):
            out = folder / f"{name}-w{workers}.npy"
            out.unlink(missing_ok=True)
            t = time.perf_counter()
            build(videos, out, cache_frames=16, resolution=64, max_bytes=1 << 34, workers=workers)
            times[name, workers] = time.perf_counter() - t
            out.unlink()
            print(
                f"{name} code, {workers} worker(s): {times[name, workers]:7.2f} s  ({1000 * times[name, workers] / n:.1f} ms/clip)",
                flush=True,
            )
    for workers in (1, 2):
        old, new = times["old", workers] / n * 3000, times["new", workers] / n * 3000 + server
        print(
            f"{workers} worker(s): {times['old', workers] / times['new', workers]:.1f}x on {n} clips; 3,000 clips at these "
            f"rates (new with its fork server start-up once): old {old:.0f} s, new {new:.0f} s, {old / new:.1f}x"
        )
    best = min(times["old", 1], times["old", 2]) / (min(times["new", 1], times["new", 2]) + server * n / 3000)
    print(f"best old vs best new, 3,000 clips: {best:.1f}x (goal >= 3x: {'met' if best >= 3 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", help="use this video instead of the generated one")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--codecs", action="store_true", help="decord vs PyAV per codec/container")
    ap.add_argument(
        "--cache", type=int, default=0, metavar="N", help="fine-tuning frame cache of N clips, old vs new code"
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # what a pool worker does
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.cache:
        return frame_cache_speed(args.cache)
    if args.codecs:
        return codec_speed(args.repeat)

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
    print(f"middle 8 exact / decode-all: decord {exact8['decord'] / t_dec:.0%}, pyav {exact8['pyav'] / t_pyav:.0%}")


if __name__ == "__main__":
    main()
