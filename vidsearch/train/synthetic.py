"""A seeded generator of captioned synthetic videos: coloured shapes moving over a texture.

Each clip shows one shape of one colour moving in one direction over a random textured
background; its caption names all three (``"a red circle moving left"``): 5 colours x 4 shapes
x 4 directions = 80 captions. The clips are written as real video files with PyAV and listed
in a JSON annotation file (``[{"video": "x.mp4", "caption": "..."}]``) that ``vidsearch bench``
and ``vidsearch finetune`` read.

Motion is the part a frame-order-blind model cannot see: a clip moving left covers the same
positions as one moving right, in the opposite order, because every trajectory is drawn as an
unordered segment first and only then oriented by the direction.

:func:`make_sequence_video` strings several actions together in one video and returns their
time spans, for localization tests.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from vidsearch.fileio import atomic_write_text

__all__ = [
    "COLOURS",
    "SHAPES",
    "DIRECTIONS",
    "Action",
    "Span",
    "all_actions",
    "render_clip",
    "encode_video",
    "make_split",
    "make_dataset",
    "direction_pairs",
    "make_sequence_video",
    "TINY_CONFIG",
    "TINY_RECIPE",
    "background",
    "signed_distance",
]

LOG = logging.getLogger(__name__)

# Saturated colours far from each other and from the grey-ish backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 70, 235),
    "yellow": (240, 220, 30),
    "white": (250, 250, 250),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
# Unit vector of each direction in image coordinates (x right, y down).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


# The recommended tiny ViCLIP for this data (docs/finetune.md): 32 px frames in 8 px patches, so
# a 4-frame clip is 64 tokens; ~1.3 M parameters besides the 6.3 M of the token embedding.
TINY_CONFIG: dict[str, int] = dict(
    input_resolution=32, patch_size=8, vision_width=128, vision_layers=4, vision_heads=4, embed_dim=128,
    num_frames=4, text_width=128, text_layers=2, text_heads=2,
)
# `vidsearch finetune` flags that train TINY_CONFIG from scratch on ~3,000 clips (docs/finetune.md
# says why each): motion direction is learnt only after several hundred steps with many distinct
# captions per batch, so large batches and enough steps matter more than any trick.
TINY_RECIPE: tuple[str, ...] = (
    "--epochs", "30", "--lr", "5e-4", "--batch-size", "64", "--warmup", "0.05", "--weight-decay", "0.05",
    "--temp", "0.07",
)


@dataclass(frozen=True)
class Action:
    """One thing a clip shows: a shape of a colour moving in a direction."""

    colour: str
    shape: str
    direction: str

    @property
    def caption(self) -> str:
        """The caption naming colour, shape and motion."""
        return f"a {self.colour} {self.shape} moving {self.direction}"


@dataclass(frozen=True)
class Span:
    """Where an action happens in a sequence video, in seconds and frames (end exclusive)."""

    start: float
    end: float
    start_frame: int
    end_frame: int
    caption: str


def all_actions() -> list[Action]:
    """The 80 actions, in a fixed order (colour, then shape, then direction)."""
    return [Action(c, s, d) for c in COLOURS for s in SHAPES for d in DIRECTIONS]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random low-contrast texture: a few sinusoid gratings plus fine noise, greyish tint."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    field = np.zeros((size, size), np.float32)
    for _ in range(3):
        fx, fy = rng.uniform(-6, 6, size=2)
        field += np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi))
    field /= 3.0
    base = rng.uniform(70, 150)
    tint = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    grey = base + rng.uniform(15, 35) * field + rng.normal(0, 6, size=(size, size)).astype(np.float32)
    return grey[:, :, None] * tint[None, None, :]


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Approximate signed distance (pixels, negative inside) of a shape of radius ``r``."""
    if shape == "circle":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * r
    if shape == "triangle":
        # pointing up: a bottom edge and two slanted edges, each a half-plane distance
        c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
        bottom = dy - 0.5 * r
        left = -c * dx - s * dy - 0.5 * r
        right = c * dx - s * dy - 0.5 * r
        return np.maximum(bottom, np.maximum(left, right))
    if shape == "cross":
        arm = 0.33 * r
        bar_h = np.maximum(np.abs(dx) - r, np.abs(dy) - arm)
        bar_v = np.maximum(np.abs(dx) - arm, np.abs(dy) - r)
        return np.minimum(bar_h, bar_v)
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


def _trajectory(rng: np.random.Generator, direction: str, size: int, radius: float, num_frames: int) -> np.ndarray:
    """Centre positions ``[T, 2]`` (x, y) of a straight move in ``direction``, inside the frame.

    The segment is drawn without regard to its orientation and then oriented, so opposite
    directions have the same distribution of positions (only their order differs).
    """
    margin = radius + 2.0
    span = size - 2 * margin
    # most of the way across: the move spans several patches even at a small model resolution
    length = rng.uniform(0.75, 1.0) * span
    lo = rng.uniform(margin, margin + span - length)
    across = rng.uniform(margin, size - margin)
    t = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)
    along = lo + length * t
    ux, uy = DIRECTIONS[direction]
    if ux + uy < 0:  # left or up: run the same segment backwards
        along = along[::-1]
    if ux != 0:
        return np.stack([along, np.full_like(along, across)], axis=1)
    return np.stack([np.full_like(along, across), along], axis=1)


def render_clip(action: Action, rng: np.random.Generator, *, size: int = 64, num_frames: int = 16) -> np.ndarray:
    """Render ``action`` as uint8 frames ``[num_frames, size, size, 3]``.

    The background, shape size, path and a small colour jitter are drawn from ``rng``.
    """
    if action.colour not in COLOURS or action.shape not in SHAPES or action.direction not in DIRECTIONS:
        raise ValueError(f"unknown action {action}")
    bg = _background(rng, size)
    radius = rng.uniform(0.1, 0.14) * size
    path = _trajectory(rng, action.direction, size, radius, num_frames)
    colour = np.clip(np.asarray(COLOURS[action.colour], np.float32) + rng.normal(0, 8, size=3), 0, 255)
    grid = np.arange(size, dtype=np.float32) + 0.5
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i, (cx, cy) in enumerate(path):
        dx = grid[None, :] - cx
        dy = grid[:, None] - cy
        # one pixel of soft edge: anti-aliased, so sub-pixel motion is visible
        alpha = np.clip(0.5 - _signed_distance(action.shape, dx, dy, radius), 0.0, 1.0)[:, :, None]
        frames[i] = np.clip(bg * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    return frames


def encode_video(path: str | os.PathLike, frames: np.ndarray, *, fps: int = 8, codec: str = "libx264") -> Path:
    """Write uint8 frames ``[T, H, W, 3]`` as a video file (container from the extension).

    Writes to a temporary name and renames, so an interrupted run never leaves a truncated
    file under the final name.

    Args:
        path: output file, e.g. ``clip.mp4``.
        frames: RGB frames; H and W must be even for ``libx264``.
        fps: frame rate.
        codec: ``libx264`` (small, near-lossless at crf 18) or ``mpeg4``.
    """
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    h, w = frames.shape[1:3]
    options = {"preset": "ultrafast", "crf": "18"} if codec == "libx264" else {}
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps), options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec == "mpeg4":
            stream.codec_context.bit_rate = 2_000_000
            stream.codec_context.qmax = 4
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    os.replace(tmp, path)
    return path


def _clip_rng(seed: int, index: int) -> np.random.Generator:
    # One independent stream per clip: clip i is the same whatever else is generated.
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def make_split(
    out_dir: str | os.PathLike,
    name: str,
    count: int,
    *,
    seed: int,
    size: int = 64,
    num_frames: int = 16,
    fps: int = 8,
    codec: str = "libx264",
    distinct: bool = False,
) -> Path:
    """Write ``count`` clips under ``out_dir/name/`` and their annotations to ``out_dir/name.json``.

    Args:
        out_dir: dataset folder.
        name: split name, e.g. ``"train"``; videos go to ``out_dir/name/``.
        count: number of clips. With ``distinct`` at most 80.
        seed: the split's seed; use different seeds for different splits.
        size: frame width and height in pixels.
        num_frames: frames per clip.
        fps: frame rate.
        codec: see :func:`encode_video`.
        distinct: every clip gets a different caption (a held-out set where each caption has
            exactly one right video); otherwise captions cycle through the 80 actions in a
            seeded order, so each appears ``count / 80`` times.

    Returns:
        The annotation file path (video paths in it are relative to ``out_dir/name``).
    """
    actions = all_actions()
    if distinct and count > len(actions):
        raise ValueError(f"distinct captions: at most {len(actions)} clips, asked for {count}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(len(actions))
    video_dir = Path(out_dir) / name
    video_dir.mkdir(parents=True, exist_ok=True)
    ext = ".mp4" if codec == "libx264" else ".avi"
    records = []
    for i in range(count):
        action = actions[order[i % len(actions)]]
        frames = render_clip(action, _clip_rng(seed, i), size=size, num_frames=num_frames)
        file = f"{name}_{i:05d}{ext}"
        encode_video(video_dir / file, frames, fps=fps, codec=codec)
        records.append({"video": file, "caption": action.caption})
    ann = atomic_write_text(Path(out_dir) / f"{name}.json", json.dumps(records, indent=0))
    LOG.info("wrote %d clips to %s", count, video_dir)
    return ann


def make_dataset(
    out_dir: str | os.PathLike,
    *,
    train: int = 3000,
    heldout: int = 80,
    seed: int = 0,
    size: int = 64,
    num_frames: int = 16,
    fps: int = 8,
) -> tuple[Path, Path]:
    """Write a training split and a held-out split with distinct captions.

    Returns:
        ``(train_annotations, heldout_annotations)``; videos are in ``out_dir/train`` and
        ``out_dir/heldout``.
    """
    kw = dict(size=size, num_frames=num_frames, fps=fps)
    tr = make_split(out_dir, "train", train, seed=seed, **kw)
    # a different seed stream: no held-out clip repeats a training clip
    ho = make_split(out_dir, "heldout", heldout, seed=seed + 1_000_003, distinct=True, **kw)
    return tr, ho


def direction_pairs(captions: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of captions that differ only by opposite directions (left/right, up/down)."""
    where = {c: i for i, c in enumerate(captions)}
    pairs = []
    for i, c in enumerate(captions):
        head, _, last = c.rpartition(" ")
        if last in ("left", "up"):
            j = where.get(f"{head} {_OPPOSITE[last]}")
            if j is not None:
                pairs.append((i, j))
    return pairs


def make_sequence_video(
    path: str | os.PathLike,
    actions: Sequence[Action],
    *,
    seed: int = 0,
    size: int = 64,
    frames_per_action: int = 16,
    fps: int = 8,
    codec: str = "libx264",
) -> list[Span]:
    """Write one video showing ``actions`` one after another; return their time spans.

    Args:
        path: output video file.
        actions: the actions in order (e.g. three different ones from :func:`all_actions`).
        seed: seeds backgrounds and paths.
        size, frames_per_action, fps, codec: clip geometry and encoding.

    Returns:
        One :class:`Span` per action, in order; spans are contiguous and cover the video.
    """
    if not actions:
        raise ValueError("make_sequence_video needs at least one action")
    clips, spans = [], []
    for k, action in enumerate(actions):
        clips.append(render_clip(action, _clip_rng(seed, k), size=size, num_frames=frames_per_action))
        a, b = k * frames_per_action, (k + 1) * frames_per_action
        spans.append(Span(a / fps, b / fps, a, b, action.caption))
    encode_video(path, np.concatenate(clips), fps=fps, codec=codec)
    return spans


# Public names of the drawing helpers, for generators of other synthetic data (several shapes per video).
background = _background
signed_distance = _signed_distance
