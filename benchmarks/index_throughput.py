"""End-to-end indexing throughput against encoder-only throughput, same videos, one run.

Generates a folder of videos (short 480p clips and long 720p videos with a keyframe every 250
frames), saves a full-size ViCLIP-B/16 with random weights, then measures:

* end to end: ``index_folder`` on the folder (scan, decoding in worker processes, encoding,
  SQLite commits, FAISS) -> videos/s and clips/s;
* encoder only: the very same clips (decoded beforehand, untimed) through ``encode_video`` with
  the same batch size -> clips/s.

The ratio of the two clips/s figures says how much decoding and bookkeeping cost on top of the
encoder; with decoding overlapped in worker processes the goal is >= 0.9 on 2 cores.

Usage: python benchmarks/index_throughput.py [--long 2] [--short 6] [--fast] [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import videogen  # noqa: E402

from vidsearch.indexer.pipeline import IndexOptions, index_folder  # noqa: E402
from vidsearch.media import SamplingConfig  # noqa: E402
from vidsearch.media.jobs import DecodeJob, decode_job  # noqa: E402
from vidsearch.models import EncoderSpec, open_encoder  # noqa: E402
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig  # noqa: E402
from vidsearch.models.weights import save_checkpoint  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402


def make_videos(folder: Path, n_long: int, n_short: int, long_seconds: float) -> list[Path]:
    """Long 720p H.264 videos with 250-frame GOPs, and short 480p clips."""
    paths = []
    for i in range(n_long):
        paths.append(
            videogen.write_video(
                folder / f"long_{i}.mp4",
                seconds=long_seconds,
                fps=30,
                size=(1280, 720),
                gop=250,
                pattern="moving_square",
                color=(200, 60 + 40 * i, 40),
            )
        )
    for i in range(n_short):
        paths.append(
            videogen.write_video(
                folder / f"short_{i}.mp4",
                seconds=10,
                fps=30,
                size=(854, 480),
                gop=250,
                pattern="moving_square",
                color=(40, 60 + 20 * i, 200),
            )
        )
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", type=int, default=2, help="number of long 720p videos")
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--short", type=int, default=6, help="number of 10 s 480p clips")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--fast", action="store_true", help="keyframe sampling (vidsearch index --fast)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        t = time.perf_counter()
        videos = make_videos(tmp_path / "videos", args.long, args.short, args.long_seconds)
        print(f"generated {len(videos)} videos in {time.perf_counter() - t:.1f} s")
        torch.manual_seed(0)
        config = ViCLIPConfig.preset("viclip-b16")
        ckpt = save_checkpoint(ViCLIP(config), tmp_path / "b16-random.pth", config)
        encoder = open_encoder(EncoderSpec(str(ckpt), device="cpu"))
        sampling = SamplingConfig()
        options = IndexOptions(
            model=str(ckpt), sampling=sampling, fast=args.fast, workers=args.workers, batch_size=args.batch_size
        )

        # Encoder only: decode every clip first (untimed), then time the encoder on them.
        clips = []
        for i, path in enumerate(videos):
            result = decode_job(
                DecodeJob(
                    job_id=i,
                    path=str(path),
                    num_frames=encoder.num_frames,
                    resolution=encoder.resolution,
                    sampling=sampling,
                    fast=args.fast,
                )
            )
            clips.append(result.clips())
        all_clips = np.concatenate(clips)
        encoder.encode_video(all_clips[:1])  # warm-up
        t = time.perf_counter()
        for lo in range(0, len(all_clips), args.batch_size):
            encoder.encode_video(all_clips[lo : lo + args.batch_size])
        enc_seconds = time.perf_counter() - t
        enc_cps = len(all_clips) / enc_seconds

        # End to end, on a fresh library.
        with Library.open(tmp_path / "lib") as library:
            t = time.perf_counter()
            report = index_folder(library, tmp_path / "videos", options, encoder=encoder)
            e2e_seconds = time.perf_counter() - t
        assert report.segments == len(all_clips) and not report.failed, report
        e2e_cps = report.segments / e2e_seconds

        print(
            f"videos: {len(videos)} ({args.long} x {args.long_seconds:.0f} s 720p GOP 250, {args.short} x 10 s 480p); clips: {len(all_clips)}; fast={args.fast}"
        )
        print(f"encoder only : {enc_cps:6.2f} clips/s ({enc_seconds:.1f} s)")
        print(f"end to end   : {e2e_cps:6.2f} clips/s, {len(videos) / e2e_seconds:.3f} videos/s ({e2e_seconds:.1f} s)")
        print(f"ratio end-to-end / encoder-only: {e2e_cps / enc_cps:.3f} (goal >= 0.9)")
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.stage_seconds.items())
        print(f"stages (runner's wall time; decoding overlaps in workers): {stages}")


if __name__ == "__main__":
    main()
