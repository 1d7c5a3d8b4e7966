"""Event-to-alert latency of `vidsearch watch` over many events: p50/p95 against the goal.

    python benchmarks/stream_latency.py [--events 20] [--length 6] [--gap 10] [--model CKPT]

Data: ``tests/stream_sender.py`` sends a generated 160x120 10 fps H.264 stream in real time as
MPEG-TS over UDP on loopback (what a camera or an encoder in front of one sends); ``--events``
times it turns red for ``--length`` s, ``--gap`` s apart, and it prints the wall-clock time of
each event's first frame as it sends it. One `vidsearch watch --json` (4 s windows every 2 s)
has one standing query: with tiny random-weight models (no semantics) the seed, caption and
threshold that best separate red windows from gray ones on a recorded sample (:func:`calibrate`),
or ``--model`` with ``--alert``/``--threshold``.

Figures: per event, the latency from its first frame leaving the sender to the watch's alert
line arriving on stdout; p50, p95 and max over the events; events missed; alerts that match no
event (false or duplicate); checked against the goal p95 <= window + stride + 1 s. Printed
beside the machine's one-thread fp32 matmul GFLOP/s and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

WINDOW, STRIDE = 4.0, 2.0


def sample_video(path: Path, seconds: float, events: list[tuple[float, float]]) -> Path:
    """The sender's picture written to a file (for calibrating the random model's alert)."""
    import av
    from stream_sender import frame_at

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": "10", "bframes": "0"}
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(frame_at(i / 10, events, (160, 120))[0], format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def calibrate(work: Path, sample: Path, model: str | None) -> tuple[str, str, float]:
    """(checkpoint, caption, threshold) that separate the sample's red windows from its gray ones.

    A random-weight model has no semantics, so among a few seeds and captions the pair with the
    widest margin between the lowest red window and the highest gray one is taken (the alert's
    hysteresis needs gray windows clearly below the threshold to end an event), with the
    threshold halfway. ``model`` given: only its captions are searched.
    """
    from conftest import make_tiny_checkpoint

    from vidsearch.media.live import DropOldest, LiveOptions, LiveReader, Window
    from vidsearch.models.opener import open_encoder
    from vidsearch.models.spec import EncoderSpec

    words = ["a", "two", "red", "big", "bright", "dark", "one", "the", "small", "old"]
    things = ["square", "flag", "light", "fire", "car", "box", "door", "person", "wall", "sky"]
    captions = [f"{a} {b}" for a in words for b in things]
    checkpoints = [model] if model else [str(make_tiny_checkpoint(work / f"tiny{s}.pth", seed=s)) for s in range(4)]
    best: tuple[float, str, str, float] | None = None
    for ckpt in checkpoints:
        encoder: Any = open_encoder(EncoderSpec(ckpt, device="cpu", precision="fp32"))
        q: DropOldest[Window] = DropOldest(1000)
        LiveReader(str(sample), LiveOptions(WINDOW, STRIDE, short_side=max(encoder.resolution, 64)), q).run()
        windows = list(iter(lambda: q.get(0.01), None))
        red = np.array([w.frames[:, 0, 0, 0].min() > 128 for w in windows])
        gray = np.array([w.frames[:, 0, 0, 0].max() < 128 for w in windows])
        vectors = np.concatenate([encoder.encode_video(w.frames[None]) for w in windows])
        scores = encoder.encode_text(captions) @ vectors.T
        gaps = scores[:, red].min(axis=1) - scores[:, gray].max(axis=1)
        i = int(np.argmax(gaps))
        if best is None or gaps[i] > best[0]:
            threshold = float(scores[i, red].min() + scores[i, gray].max()) / 2
            best = (float(gaps[i]), ckpt, captions[i], threshold)
    assert best is not None and best[0] > 0.05, "no caption separates the event for these models"
    return best[1], best[2], best[3]


def read_lines(stream: Any, into: list[tuple[float, dict[str, Any]]]) -> None:
    """Each JSON line of ``stream`` with the wall-clock time it arrived."""
    for line in stream:
        into.append((time.time(), json.loads(line)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--length", type=float, default=6.0, help="seconds each event lasts")
    parser.add_argument("--gap", type=float, default=10.0, help="seconds between events (the alert ends in it)")
    parser.add_argument("--model", default=None, help="a checkpoint (default: a tiny random-weight ViCLIP)")
    parser.add_argument("--alert", default=None, help="the standing query (default: calibrated)")
    parser.add_argument("--threshold", type=float, default=None)
    args = parser.parse_args()

    from calibration import matmul_gflops

    gflops, load_before = matmul_gflops(threads=1), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="stream-latency-"))
    if args.alert is None or args.threshold is None:
        sample = sample_video(work / "sample.mp4", 32, [(8.0, 12.0)])
        args.model, args.alert, args.threshold = calibrate(work, sample, args.model)
    elif args.model is None:
        parser.error("--alert and --threshold need the --model they were chosen for")
    lead = 20.0  # seconds of gray first: the watch loads its model and connects meanwhile
    starts = [lead + i * (args.length + args.gap) for i in range(args.events)]
    seconds = starts[-1] + args.length + args.gap
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{s.getsockname()[1]}"
    watch = subprocess.Popen(
        [sys.executable, "-m", "vidsearch.cli", "watch", url, "--library", str(work / "lib"),
         "--model", args.model, "--name", "bench", "--alert", args.alert, "--threshold", f"{args.threshold:.4f}",
         "--window", str(WINDOW), "--stride", str(STRIDE), "--json", "--no-record",
         "--open-timeout", "60"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[tuple[float, dict[str, Any]]] = []
    threading.Thread(target=read_lines, args=(watch.stdout, lines), daemon=True).start()
    sender = subprocess.Popen(
        [sys.executable, str(TESTS / "stream_sender.py"), "udp", url, "--seconds", f"{seconds:g}"]
        + [f"--event={a:g}:{args.length:g}" for a in starts],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    sent: list[tuple[float, dict[str, Any]]] = []
    read_lines(sender.stdout, sent)  # until the sender ends
    watch.send_signal(signal.SIGTERM)  # the stream is over: stop the watch as Ctrl-C would
    watch.wait(timeout=120)
    events = sorted(line["wall"] for _, line in sent if "event" in line)
    alerts = [arrived for arrived, line in lines if line.get("event") == "alert"]
    latencies, matched = [], set()
    for i, t in enumerate(events):
        until = events[i + 1] if i + 1 < len(events) else float("inf")
        hit = next((a for a in alerts if t - 0.5 <= a < until), None)  # a partly red window may fire early
        if hit is not None:
            latencies.append(hit - t)
            matched.add(hit)
    goal = WINDOW + STRIDE + 1.0
    lat = np.array(latencies)
    end = next((line for _, line in lines if line.get("event") == "end"), {})
    result = {
        "events": len(events),
        "alerts": len(alerts),
        "missed": len(events) - len(latencies),
        "unmatched_alerts": len(alerts) - len(matched),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "latency_max_s": round(float(lat.max()), 2) if len(lat) else None,
        "goal_p95_s": goal,
        "goal_met": bool(len(lat) and np.percentile(lat, 95) <= goal and len(lat) == len(events)),
        "windows_stored": end.get("encoded"),
        "windows_dropped": end.get("dropped"),
        "gaps": len(end.get("gaps", [])),
        "alert": args.alert,
        "threshold": round(args.threshold, 4),
        "matmul_gflops_1thread": round(gflops, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "latencies_s": [round(float(x), 2) for x in lat],
        "events_wall": [round(t, 2) for t in events],
        "alert_lines": [(round(a, 2), line) for a, line in lines if line.get("event", "").startswith("alert")],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
