"""How many live streams one CPU core sustains per model and precision, and what a 2x overload drops.

    python benchmarks/stream_capacity.py [--seconds 20] [--configs tiny:fp32,b16:fp32,b16:int8]
                                         [--encode-windows 3] [--overload-seconds 20]

Data: a generated 640x360 25 fps H.264 file (a moving gradient), read by the live reader
(:class:`vidsearch.media.live.LiveReader`) as fast as it decodes, cut into windows of 8 frames
over 4 s every 2 s, as ``vidsearch watch`` does. Models: ``tiny`` (the tests' random-weight
ViCLIP), ``b16`` (ViCLIP-B/16's architecture with random weights: the published model's cost
without its download) or a checkpoint path; precisions as ``--precision`` takes them (``int8``
is the project's recipe: both towers as int8 ONNX Runtime graphs, built once per space).

Figures per configuration (torch, ONNX Runtime and FFmpeg limited to one thread):
- decode: CPU seconds per second of stream (PyAV decoding every frame, scaled on arrival to the
  model's input side);
- encode: seconds per window (mean over ``--encode-windows`` after one warm-up window);
- streams per core = 1 / (decode per stream-second + encode per window / stride);
- drop rate at 2x overload: windows offered to the watch's drop-oldest queue (4 pending) at
  twice the rate this encoder takes them, for ``--overload-seconds``, while a thread encodes
  from it with the real model; the share of offered windows dropped (about 1/2 expected) and
  the queue's peak (never above its bound).
Printed beside the machine's one-thread fp32 matmul GFLOP/s and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WINDOW, STRIDE, PENDING = 4.0, 2.0, 4


def checkpoint(name: str, work: Path) -> str:
    """A checkpoint for ``tiny`` / ``b16`` (random weights, made here) or ``name`` itself (a path)."""
    from conftest import make_tiny_checkpoint

    if name == "tiny":
        return str(make_tiny_checkpoint(work / "tiny.pth"))
    if name == "b16":
        from vidsearch.models.viclip import ViCLIPConfig

        return str(make_tiny_checkpoint(work / "b16-random.pth", **ViCLIPConfig.preset("viclip-b16").to_dict()))
    return name


def decode_cost(video: Path, seconds: float, short_side: int, num_frames: int) -> tuple[float, list[Any]]:
    """CPU seconds per stream-second to decode and window ``video``, and its windows."""
    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window

    queue: DropOldest[Window] = DropOldest(10_000)
    options = LiveOptions(WINDOW, STRIDE, num_frames, short_side=short_side)
    cpu0 = time.process_time()
    LiveReader(str(video), options, queue).run()  # this thread, as fast as it decodes
    return (time.process_time() - cpu0) / seconds, list(iter(lambda: queue.get(0.01), None))


def overload(encoder: Any, windows: list[Any], encode_s: float, seconds: float) -> dict[str, float]:
    """Windows offered at twice the encoder's rate into the watch's drop-oldest queue for ``seconds``."""
    from vidsearch.media.live import DropOldest, Window

    queue: DropOldest[Window] = DropOldest(PENDING)
    done = threading.Event()
    encoded, peak = 0, 0

    def consume() -> None:
        nonlocal encoded
        while not done.is_set() or len(queue):
            window = queue.get(0.1)
            if window is not None:
                encoder.encode_video(window.frames[None])
                encoded += 1

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    offered, interval = 0, encode_s / 2
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        queue.put(windows[offered % len(windows)])
        offered += 1
        peak = max(peak, len(queue))
        time.sleep(max(0.0, start + offered * interval - time.perf_counter()))
    done.set()
    worker.join()
    return {
        "offered": offered,
        "encoded": encoded,
        "drop_rate": round(queue.dropped / max(1, offered), 3),
        # the overload reached: the encoder may run faster under load than in the timed windows
        "offered_per_encoded": round(offered / max(1, encoded), 2),
        "peak_pending": peak,
    }


def measure(config: str, video: Path, args: argparse.Namespace, work: Path, decoded: dict[int, Any]) -> dict[str, Any]:
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.spec import EncoderSpec

    name, precision = config.split(":")
    t0 = time.perf_counter()
    encoder: Any = open_encoder(EncoderSpec(checkpoint(name, work), device="cpu", precision=precision))
    open_s = time.perf_counter() - t0
    side = max(encoder.resolution, 64)
    if side not in decoded:
        decoded[side] = decode_cost(video, args.seconds, side, encoder.num_frames)
    decode_per_second, windows = decoded[side]
    encoder.encode_video(windows[0].frames[None])  # warm-up (graph and allocator set-up)
    picks = [windows[i % len(windows)] for i in range(1, 1 + args.encode_windows)]
    t = time.perf_counter()
    for w in picks:
        encoder.encode_video(w.frames[None])
    encode_per_window = (time.perf_counter() - t) / len(picks)
    result = {
        "config": config,
        "model": encoder.key,
        "open_s": round(open_s, 1),
        "decode_cpu_s_per_stream_s": round(decode_per_second, 4),
        "encode_s_per_window": round(encode_per_window, 4),
        "streams_per_core": round(1.0 / (decode_per_second + encode_per_window / STRIDE), 2),
        "overload_2x": overload(encoder, windows, encode_per_window, args.overload_seconds),
    }
    assert result["overload_2x"]["peak_pending"] <= PENDING, "the drop-oldest queue exceeded its bound"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of 640x360 25 fps video")
    parser.add_argument("--configs", default="tiny:fp32", help="MODEL:PRECISION,...; MODEL tiny, b16 or a path")
    parser.add_argument("--encode-windows", type=int, default=5, help="windows timed per configuration")
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    args = parser.parse_args()

    import torch
    import videogen
    from calibration import matmul_gflops

    torch.set_num_threads(1)
    gflops, load = matmul_gflops(threads=1), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="stream-capacity-"))
    video = videogen.write_video(
        work / "cam.mp4", seconds=args.seconds, fps=25, size=(640, 360), pattern="gradient", gop=50
    )
    decoded: dict[int, Any] = {}
    results = [measure(c, video, args, work, decoded) for c in args.configs.split(",")]
    print(
        json.dumps(
            {
                "matmul_gflops_1thread": round(gflops, 1),
                "load_average": [round(x, 2) for x in load],
                "cores": os.cpu_count(),
                "results": results,
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
