"""How many live streams one CPU core sustains, and what a 2x overload drops.

    python benchmarks/stream_capacity.py [--seconds 20] [--model CKPT] [--precision fp32]

Data: a generated 640x360 25 fps H.264 file (a moving gradient), read by the live reader
(:class:`vidsearch.media.live.LiveReader`) as fast as it decodes, cut into windows of 8 frames
over 4 s every 2 s, as ``vidsearch watch`` does.

Figures (torch and FFmpeg limited to one thread):
- decode: CPU seconds per second of stream (PyAV decoding every frame, scaled on arrival);
- encode: seconds per window for the model (``--model``: a checkpoint; default a tiny random one);
- streams per core = 1 / (decode per stream-second + encode per window / stride);
- drop rate at 2x overload: windows offered at twice the rate the encoder sustains into the
  watch's drop-oldest queue (4 pending); the share dropped (expected about 1/2), and the queue
  never holds more than its bound.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WINDOW, STRIDE = 4.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of 640x360 25 fps video")
    parser.add_argument("--model", default=None, help="a checkpoint (default: a tiny random-weight ViCLIP)")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()

    import torch
    import videogen

    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.spec import EncoderSpec

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="stream-capacity-"))
    video = videogen.write_video(
        work / "cam.mp4", seconds=args.seconds, fps=25, size=(640, 360), pattern="gradient", gop=50
    )
    if args.model is None:
        from conftest import make_tiny_checkpoint

        args.model = str(make_tiny_checkpoint(work / "tiny.pth"))
    encoder = open_encoder(EncoderSpec(args.model, device="cpu", precision=args.precision))

    queue: DropOldest[Window] = DropOldest(10_000)
    options = LiveOptions(WINDOW, STRIDE, encoder.num_frames, short_side=max(encoder.resolution, 64))
    cpu0 = time.process_time()
    LiveReader(str(video), options, queue).run()  # this thread, as fast as it decodes
    decode_cpu = time.process_time() - cpu0
    windows = list(iter(lambda: queue.get(0.01), None))

    t = time.perf_counter()
    for w in windows:
        encoder.encode_video(w.frames[None])
    encode_per_window = (time.perf_counter() - t) / max(1, len(windows))

    decode_per_second = decode_cpu / args.seconds
    streams_per_core = 1.0 / (decode_per_second + encode_per_window / STRIDE)

    # 2x overload: two windows offered per window the encoder can take
    overload: DropOldest[int] = DropOldest(4)
    taken, peak = 0, 0
    for i in range(400):
        overload.put(i)
        peak = max(peak, len(overload))
        if i % 2:
            taken += overload.get(0) is not None
    result = {
        "model": encoder.key,
        "precision": args.precision,
        "windows": len(windows),
        "decode_cpu_s_per_stream_s": round(decode_per_second, 4),
        "encode_s_per_window": round(encode_per_window, 4),
        "streams_per_core": round(streams_per_core, 2),
        "overload_2x_drop_rate": round(overload.dropped / 400, 3),
        "overload_peak_pending": peak,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=2))
    assert peak <= 4, "the drop-oldest queue exceeded its bound"


if __name__ == "__main__":
    main()
