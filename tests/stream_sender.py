"""A live stream sender for the stream tests and benchmarks: FFmpeg (through PyAV) encoding a
generated H.264 picture in real time and muxing it as a live HLS playlist or as MPEG-TS over UDP.

    python tests/stream_sender.py hls DIR/index.m3u8 --seconds 30
    python tests/stream_sender.py udp udp://127.0.0.1:PORT --seconds 30 --event 8:3 --event 20:3

The picture is dark gray with a moving bar; during each ``--event START:LENGTH`` (seconds from
the first frame) it is red. Frames are sent at their real time (like ``ffmpeg -re``), encoded
with no lookahead (``zerolatency``) and a keyframe every second, as a camera does. One JSON line
on stdout per event as its first frame goes out: ``{"event": i, "wall": UTC seconds}``, and
``{"started": UTC seconds}`` with the first frame.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

GRAY, RED = (40, 40, 40), (220, 30, 30)


def frame_at(t: float, events: list[tuple[float, float]], size: tuple[int, int]) -> tuple[np.ndarray, int | None]:
    """The picture at ``t`` s and the index of the event it shows (None between events)."""
    w, h = size
    event = next((i for i, (start, length) in enumerate(events) if start <= t < start + length), None)
    picture = np.empty((h, w, 3), np.uint8)
    picture[:] = RED if event is not None else GRAY
    x = int(t * 40) % max(1, w - 8)  # a moving bar: consecutive frames differ, as a camera's do
    picture[:, x : x + 8] = 255
    return picture, event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["hls", "udp"])
    parser.add_argument("target", help="the playlist path (hls) or the udp:// URL")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--size", default="160x120")
    parser.add_argument("--event", action="append", default=[], help="START:LENGTH seconds (repeatable)")
    args = parser.parse_args()

    import av

    width, height = (int(v) for v in args.size.split("x"))
    size = (width, height)
    events = [(float(a), float(b)) for a, b in (e.split(":") for e in args.event)]
    if args.kind == "hls":
        out = av.open(
            args.target, "w", format="hls",
            options={"hls_time": "1", "hls_list_size": "6", "hls_flags": "delete_segments"},
        )  # fmt: skip
    else:
        out = av.open(f"{args.target}?pkt_size=1316", "w", format="mpegts")
    stream = out.add_stream("libx264", rate=args.fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.options = {
        "preset": "ultrafast", "tune": "zerolatency", "g": str(args.fps),
        "keyint_min": str(args.fps), "sc_threshold": "0", "bframes": "0",
    }  # fmt: skip
    start = time.time()
    announced: set[int] = set()
    try:
        for i in range(int(args.seconds * args.fps)):
            due = start + i / args.fps
            if due > time.time():
                time.sleep(due - time.time())
            picture, event = frame_at(i / args.fps, events, size)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            if i == 0:
                print(json.dumps({"started": time.time()}), flush=True)
            if event is not None and event not in announced:
                announced.add(event)
                print(json.dumps({"event": event, "wall": time.time()}), flush=True)
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()


if __name__ == "__main__":
    main()
