"""How far the frame-resize choice moves ViCLIP-B/16 embeddings (a benchmark, not a test).

The published ViCLIP models saw frames resized by torchvision 0.15.2: bicubic WITHOUT
antialiasing (vidsearch's default); newer torchvision antialiases (``--antialias``). This script
embeds the same clips both ways with the full-size B/16 vision tower (random weights, seeded:
no download) and prints the per-clip cosine between the two embeddings, the pixel difference
of the resized frames, and the machine's fp32 matmul GFLOP/s (to put the timing in context).

Frames are "real-looking": 1280x720, 1/f ("pink") noise texture as natural images have, plus
hard-edged moving shapes and fine stripes, which is where antialiasing matters most. Pass
``--video FILE`` (repeatable) to use real files instead (8 middle-sampled frames each).

Usage: python benchmarks/preprocess_choice.py [--clips 4] [--video a.mp4 ...] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import matmul_gflops  # noqa: E402  (the same matmul peak as encoder_speed)

from vidsearch.media import middle_indices, probe, read_frames  # noqa: E402
from vidsearch.media.resize import resize_frames  # noqa: E402
from vidsearch.models.preprocess import normalize_frames  # noqa: E402
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig  # noqa: E402

H, W, T = 720, 1280, 8


def pink_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A [h, w] texture with a 1/f amplitude spectrum (natural-image statistics), in [0, 1]."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    amp = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(h, w))
    spec = amp * np.exp(2j * np.pi * rng.random(amp.shape))
    img = np.fft.irfft2(spec, s=(h, w))
    img -= img.min()
    return img / max(img.max(), 1e-9)


def synthetic_clip(seed: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: a pink-noise scene, striped and solid shapes moving across it."""
    rng = np.random.default_rng(seed)
    base = np.stack([pink_noise(rng, H, W) for _ in range(3)], -1)
    base = 0.6 * base + 0.4 * base.mean(-1, keepdims=True)  # correlated channels, as in photos
    yy, xx = np.mgrid[:H, :W]
    shapes = [
        (
            rng.uniform(80, 200),
            rng.uniform(0, W),
            rng.uniform(0, H),
            rng.uniform(-30, 30),
            rng.uniform(-15, 15),
            rng.random(3),
        )
        for _ in range(5)
    ]
    stripes = 0.5 + 0.5 * np.sign(np.sin(xx * 2 * np.pi / rng.uniform(3, 7)))  # 3-7 px period fabric
    clip = np.empty((T, H, W, 3), np.uint8)
    for t in range(T):
        img = base.copy()
        for k, (r, x0, y0, vx, vy, col) in enumerate(shapes):
            cx, cy = x0 + vx * t, y0 + vy * t
            if k % 2:
                m = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * 0.6)  # rectangle
                img[m] = stripes[m, None] * col
            else:
                m = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2  # disc
                img[m] = col
        clip[t] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return clip


def file_clip(path: str) -> np.ndarray:
    """8 middle-sampled frames of a real file at full size (resolution = its height)."""
    info = probe(path)
    side = max(info.width, info.height)  # read_frames resizes to a square; keep all the detail
    frames, _ = read_frames(path, middle_indices(info.num_frames, T), side, antialias=True)
    return frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="synthetic clips (ignored with --video)")
    ap.add_argument("--video", action="append", default=[], help="use this file (repeatable)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    peak, peak_cpu = matmul_gflops()
    print(f"fp32 matmul: {peak:.0f} GFLOP/s wall ({peak_cpu:.0f} per CPU second), {torch.get_num_threads()} threads")

    torch.manual_seed(0)
    model = ViCLIP(ViCLIPConfig.preset("viclip-b16")).eval()
    res = model.config.input_resolution
    clips = [file_clip(v) for v in args.video] if args.video else [synthetic_clip(s) for s in range(args.clips)]
    source = ", ".join(args.video) if args.video else f"{len(clips)} synthetic {W}x{H} clips"
    print(f"ViCLIP-B/16, random weights (seed 0), {T} frames at {res} px; frames: {source}")

    cos, pix, secs = [], [], []
    for clip in clips:
        pair = [resize_frames(clip, res, antialias=a) for a in (False, True)]
        pix.append(np.abs(pair[0].astype(np.int16) - pair[1].astype(np.int16)).mean())
        t0 = time.perf_counter()
        with torch.inference_mode():
            x = torch.stack([normalize_frames(torch.from_numpy(p)) for p in pair])  # [2, T, C, H, W]
            emb = torch.nn.functional.normalize(model.encode_video(x).float(), dim=-1)
        secs.append((time.perf_counter() - t0) / 2)
        cos.append(float(emb[0] @ emb[1]))
    c = np.asarray(cos)
    print(f"cosine(no antialias, antialias) per clip: {' '.join(f'{v:.5f}' for v in c)}")
    print(f"  mean {c.mean():.5f}  min {c.min():.5f}  (1 - cosine: mean {1 - c.mean():.2e}, max {1 - c.min():.2e})")
    print(f"mean |pixel difference| of the resized frames: {np.mean(pix):.2f} / 255")
    print(f"vision tower: {np.median(secs):.2f} s per clip")


if __name__ == "__main__":
    main()
