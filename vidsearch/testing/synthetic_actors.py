"""Synthetic actor videos in AVA's format: two or three shapes moving in different directions at once.

Each video shows ``2`` or ``3`` coloured shapes (the colours, shapes and texture backgrounds of
:mod:`vidsearch.testing.synthetic`) over the whole video, each moving at constant speed in its own
direction (no two the same), so every keyframe holds several actions: only the box says which
action is whose. Every shape has a ground-truth box track (its bounding square at each
keyframe), written as an AVA annotation CSV (``video_id, t, x1, y1, x2, y2, action_id,
person_id``; keyframes every second; the class is the direction), with an AVA ``.pbtxt`` label
map of the four directions and prompt templates naming every colour and shape.

Shapes are placed so their centres stay at least ``min_gap`` pixels apart the whole time (drawn
again until they do), which keeps each shape's crop mostly its own.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidsearch.fileio import atomic_write_text
from vidsearch.testing.synthetic import COLOURS, DIRECTIONS, SHAPES, background, encode_video, signed_distance

__all__ = ["ActorClipSpec", "render_actor_video", "make_actor_dataset", "DIRECTION_IDS"]

LOG = logging.getLogger(__name__)

DIRECTION_IDS: dict[str, int] = {d: i + 1 for i, d in enumerate(DIRECTIONS)}  # AVA-style 1-based label ids


@dataclass(frozen=True)
class ActorClipSpec:
    """Geometry of the generated videos."""

    size: int = 160  # frame side (px)
    seconds: int = 5  # video length; keyframes at 1 .. seconds - 1
    fps: int = 8
    radius: tuple[float, float] = (7.0, 9.0)  # shape radius range (px)
    speed: float = 20.0  # px/s: a 2 s clip moves ~40 px, about as far as the training clips
    min_gap: float = 44.0  # least distance between two shape centres at any frame (px)


def _paths(rng: np.random.Generator, dirs: list[str], radii: list[float], spec: ActorClipSpec) -> np.ndarray:
    """Centre positions ``[K, T, 2]`` of straight constant-speed moves, inside the frame."""
    T = spec.seconds * spec.fps
    t = np.arange(T, dtype=np.float64) / spec.fps
    travel = spec.speed * (T - 1) / spec.fps
    out = np.zeros((len(dirs), T, 2))
    for k, (d, r) in enumerate(zip(dirs, radii, strict=False)):
        ux, uy = DIRECTIONS[d]
        margin = r + 2.0
        lo = rng.uniform(margin, spec.size - margin - travel)
        start_along = lo if ux + uy > 0 else lo + travel  # right/down start low, left/up start high
        across = rng.uniform(margin, spec.size - margin)
        along = start_along + (ux + uy) * spec.speed * t
        out[k] = np.stack([along, np.full(T, across)], 1) if ux != 0 else np.stack([np.full(T, across), along], 1)
    return out


def render_actor_video(
    rng: np.random.Generator, count: int, spec: ActorClipSpec = ActorClipSpec()
) -> tuple[np.ndarray, list[dict]]:
    """Frames ``[T, size, size, 3]`` of ``count`` shapes moving in different directions, and the shapes.

    Returns:
        ``(frames, actors)``; each actor is ``{"colour", "shape", "direction", "radius", "path"}``
        with ``path`` float ``[T, 2]`` centre positions.
    """
    if not 1 <= count <= len(DIRECTIONS):
        raise ValueError(f"count must be in 1..{len(DIRECTIONS)}, got {count}")
    dirs = [str(d) for d in rng.permutation(list(DIRECTIONS))[:count]]
    colours = [str(c) for c in rng.permutation(list(COLOURS))[:count]]
    shapes = [str(s) for s in rng.choice(SHAPES, size=count)]
    radii = [float(rng.uniform(*spec.radius)) for _ in range(count)]
    best, best_gap = None, -1.0
    for _ in range(200):  # rejection sampling: shapes keep apart
        paths = _paths(rng, dirs, radii, spec)
        gap = min(
            (np.linalg.norm(paths[i] - paths[j], axis=1).min() for i in range(count) for j in range(i + 1, count)),
            default=np.inf,
        )
        if gap > best_gap:
            best, best_gap = paths, gap
        if gap >= spec.min_gap:
            break
    paths = best
    bg = background(rng, spec.size)
    grid = np.arange(spec.size, dtype=np.float32) + 0.5
    T = paths.shape[1]
    frames = np.empty((T, spec.size, spec.size, 3), np.uint8)
    cols = [np.clip(np.asarray(COLOURS[c], np.float32) + rng.normal(0, 8, size=3), 0, 255) for c in colours]
    for i in range(T):
        img = bg.copy()
        for k in range(count):
            cx, cy = paths[k, i]
            alpha = np.clip(
                0.5 - signed_distance(shapes[k], grid[None, :] - cx, grid[:, None] - cy, radii[k]), 0.0, 1.0
            )[:, :, None]
            img = img * (1 - alpha) + cols[k] * alpha
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    actors = [
        {"colour": colours[k], "shape": shapes[k], "direction": dirs[k], "radius": radii[k], "path": paths[k]}
        for k in range(count)
    ]
    return frames, actors


def make_actor_dataset(
    out_dir: str | os.PathLike, videos: int = 40, *, seed: int = 0, spec: ActorClipSpec = ActorClipSpec()
) -> dict[str, Path]:
    """Write ``videos`` videos (2 or 3 shapes each, alternating) with AVA-format ground truth.

    Returns:
        Paths: ``videos`` (folder), ``annotations`` (CSV), ``labels`` (pbtxt), ``templates``.
    """
    root = Path(out_dir)
    vdir = root / "videos"
    vdir.mkdir(parents=True, exist_ok=True)
    rows: list[list] = []
    for v in range(videos):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA7A, v]))
        frames, actors = render_actor_video(rng, 2 + v % 2, spec)
        vid = f"actors_{v:04d}"
        encode_video(vdir / f"{vid}.mp4", frames, fps=spec.fps)
        for sec in range(1, spec.seconds):
            i = min(sec * spec.fps, frames.shape[0] - 1)  # the frame shown at the keyframe
            for pid, a in enumerate(actors):
                cx, cy = a["path"][i]
                r = a["radius"]
                box = [
                    max(0.0, cx - r) / spec.size,
                    max(0.0, cy - r) / spec.size,
                    min(spec.size, cx + r) / spec.size,
                    min(spec.size, cy + r) / spec.size,
                ]
                rows.append([vid, sec, *(f"{b:.4f}" for b in box), DIRECTION_IDS[a["direction"]], pid])
    ann = root / "annotations.csv"
    tmp = ann.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    os.replace(tmp, ann)
    pbtxt = "".join(
        f'label {{\n  name: "{d}"\n  label_id: {i}\n  label_type: PERSON_MOVEMENT\n}}\n'
        for d, i in DIRECTION_IDS.items()
    )
    labels = atomic_write_text(root / "directions.pbtxt", pbtxt)
    templates = atomic_write_text(
        root / "templates.txt", "".join(f"a {c} {s} moving {{}}\n" for c in COLOURS for s in SHAPES)
    )
    LOG.info("wrote %d actor videos (%d boxes) to %s", videos, len(rows), vdir)
    return {"videos": vdir, "annotations": ann, "labels": labels, "templates": templates}
