"""Whether a long `vidsearch watch` keeps its memory flat: RSS sampled over ``--minutes``.

    python benchmarks/stream_memory.py [--minutes 10] [--every 5] [--model CKPT]

Data: FFmpeg generates a 640x360 25 fps H.264 test pattern in real time and sends it as MPEG-TS
over UDP on loopback; one `vidsearch watch udp://...` child (tiny random-weight ViCLIP unless
``--model``; windows of 8 frames over 4 s every 2 s, recorded, stored) reads it for the whole run.

Figures: the child's resident memory (``VmRSS`` from ``/proc``) every ``--every`` seconds; its
least-squares slope in MiB per minute after ``--settle`` minutes (model load, the first
segments and FAISS growth settle there), first/last/peak RSS, windows stored and dropped, and the
machine's fp32 matmul GFLOP/s and load average. Flat means a slope under 1 MiB/min: over 24 h
that is at most 1.4 GiB; the windows stored (a vector each, 2 KiB with B/16) are expected growth.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mib(pid: int) -> float | None:
    """The resident set of process ``pid`` in MiB, None once it has ended."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sender(url: str, seconds: float, size: str = "640x360", fps: int = 25) -> subprocess.Popen[bytes]:
    """FFmpeg sending a generated H.264 test pattern in real time to ``url`` as MPEG-TS."""
    return subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate={fps}", "-t", f"{seconds:g}",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(2 * fps),
         "-pix_fmt", "yuv420p", "-f", "mpegts", f"{url}?pkt_size=1316"],
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--model", default=None, help="a checkpoint (default: a tiny random-weight ViCLIP)")
    parser.add_argument("--settle", type=float, default=2.0, help="minutes left out of the slope (start-up)")
    args = parser.parse_args()

    from calibration import matmul_gflops

    gflops = matmul_gflops(threads=1)
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="stream-memory-"))
    if args.model is None:
        from conftest import make_tiny_checkpoint

        args.model = str(make_tiny_checkpoint(work / "tiny.pth"))
    url = f"udp://127.0.0.1:{free_udp_port()}"
    seconds = args.minutes * 60
    watch = subprocess.Popen(
        [sys.executable, "-m", "vidsearch.cli", "watch", url, "--library", str(work / "lib"),
         "--model", args.model, "--name", "soak", "--duration", f"{seconds:g}", "--json",
         "--open-timeout", "60", "--read-timeout", "10"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[dict[str, Any]] = []
    threading.Thread(target=lambda: lines.extend(json.loads(x) for x in watch.stdout or []), daemon=True).start()
    time.sleep(2.0)  # the watch listens on the UDP port before the first packets are sent
    feed = sender(url, seconds + 30)
    t0 = time.monotonic()
    samples: list[tuple[float, float]] = []
    while watch.poll() is None:
        now_rss = rss_mib(watch.pid)
        if now_rss is not None:
            samples.append(((time.monotonic() - t0) / 60, now_rss))
        time.sleep(args.every)
    feed.kill()
    feed.wait()
    end = next((line for line in lines if line.get("event") == "end"), {})
    minutes = np.array([m for m, _ in samples])
    rss = np.array([r for _, r in samples])
    settled = minutes >= args.settle
    slope = float(np.polyfit(minutes[settled], rss[settled], 1)[0]) if settled.sum() >= 3 else float("nan")
    result = {
        "minutes": round(float(minutes[-1]), 2) if len(minutes) else 0,
        "samples": len(samples),
        "rss_first_mib": round(float(rss[0]), 1) if len(rss) else None,
        "rss_settled_mib": round(float(rss[settled][0]), 1) if settled.any() else None,
        "rss_last_mib": round(float(rss[-1]), 1) if len(rss) else None,
        "rss_peak_mib": round(float(rss.max()), 1) if len(rss) else None,
        "rss_slope_mib_per_min_settled": round(slope, 3),
        "windows_stored": end.get("encoded"),
        "windows_dropped": end.get("dropped"),
        "gaps": len(end.get("gaps", [])),
        "exit_code": watch.returncode,
        "matmul_gflops_1thread": round(gflops, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rss_series_mib": [round(float(r), 1) for r in rss],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
