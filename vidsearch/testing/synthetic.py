"""A seeded generator of captioned synthetic videos: coloured shapes moving over a texture.

Each clip shows one shape of one colour moving in one direction over a random background; its
caption names all three. The clips are written as real video files with PyAV and listed in a
JSON annotation file (``[{"video": "x.mp4", "caption": "...", "colour", "shape", "direction",
"group"}]``) that ``vidsearch bench`` and ``vidsearch finetune`` read (they use ``video`` and
``caption``; ``finetune`` also ``group``: the action's canonical caption, shared by its paraphrases).

What varies from clip to clip is a *generator setting* (:mod:`vidsearch.testing.domains`): the
``default`` one is the original fixed look (5 colours x 4 shapes x 4 directions = 80 captions
such as ``"a red circle moving left"``); ``family`` randomises frame size, clip length, shape,
object size, speed, background, noise, compression and caption wording per clip (domain
randomisation), and the held-out settings draw from other ranges and another caption grammar.

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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidsearch.fileio import atomic_write_text
from vidsearch.testing.domains import SHAPE_WORDS, GeneratorSetting, Look, get_setting

# Re-exported: the proofs that render these clips train the models these name.
from vidsearch.testing.recipes import (
    DEFAULT_SETTING_CONFIG,
    DEFAULT_SETTING_RECIPE,
    FAMILY_CONFIG,
    FAMILY_RECIPE,
    REVERSE_PAIRS,
    TINY_CONFIG,
    TINY_RECIPE,
)

__all__ = [
    "COLOURS",
    "SHAPES",
    "DIRECTIONS",
    "Action",
    "Span",
    "all_actions",
    "setting_actions",
    "render_clip",
    "render_look",
    "encode_video",
    "make_split",
    "make_dataset",
    "heldout_seed",
    "direction_pairs",
    "action_pairs",
    "make_sequence_video",
    "GENERATOR_VERSION",
    "TINY_CONFIG",
    "FAMILY_CONFIG",
    "TINY_RECIPE",
    "REVERSE_PAIRS",
    "FAMILY_RECIPE",
    "DEFAULT_SETTING_CONFIG",
    "DEFAULT_SETTING_RECIPE",
    "background",
    "signed_distance",
]

LOG = logging.getLogger(__name__)

# What make_split writes for one seed and setting; bumped whenever that changes, so a benchmark that
# keeps generated data between runs knows to write it again (2: every record carries its "group").
GENERATOR_VERSION = 2

# Saturated colours far from each other and from the grey-ish backgrounds.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 70, 235),
    "yellow": (240, 220, 30),
    "white": (250, 250, 250),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")  # the default setting's; others add more
# Unit vector of each direction in image coordinates (x right, y down).
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


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


def _background(rng: np.random.Generator, width: int, height: int | None = None, kind: str = "grating") -> np.ndarray:
    """A random low-contrast background ``[H, W, 3]`` (float) with a greyish tint and fine noise.

    Kinds: ``grating`` (a few sinusoid gratings), ``blobs`` (smooth random blobs), ``flat``
    (uniform), ``gradient`` (a linear ramp), ``checker`` (a low-contrast checkerboard).
    """
    height = width if height is None else height
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx, yy = xx / width, yy / height
    field = np.zeros((height, width), np.float32)
    if kind == "grating":
        for _ in range(3):
            fx, fy = rng.uniform(-6, 6, size=2)
            field += np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 2 * np.pi))
        field /= 3.0
    elif kind == "blobs":
        for _ in range(6):
            cx, cy, sigma = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            field += rng.choice((-1.0, 1.0)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        field = np.clip(field, -1.0, 1.0)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        field = 2.0 * (np.cos(angle) * xx + np.sin(angle) * yy) - (np.cos(angle) + np.sin(angle))
    elif kind == "checker":
        period = rng.uniform(0.08, 0.25)
        phase = rng.uniform(0, 1, size=2)
        field = np.where((np.floor(xx / period + phase[0]) + np.floor(yy / period + phase[1])) % 2 == 0, 1.0, -1.0)
        field = field.astype(np.float32)
    elif kind != "flat":
        raise ValueError(f"unknown background kind {kind!r}; choose grating, blobs, flat, gradient or checker")
    base = rng.uniform(70, 150)
    tint = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    grey = base + rng.uniform(15, 35) * field + rng.normal(0, 6, size=(height, width)).astype(np.float32)
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
    if shape == "diamond":
        # corners at radius r: distance to the edges of an L1 ball
        return (np.abs(dx) + np.abs(dy) - r) / np.sqrt(2.0)
    if shape == "star":
        # five points: the radius swings between 0.45 r and r with the angle (point up)
        angle = np.arctan2(dy, dx) + np.pi / 2
        edge = r * (0.45 + 0.55 * (0.5 + 0.5 * np.cos(5 * angle)) ** 2)
        return np.sqrt(dx * dx + dy * dy) - edge
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPE_WORDS)}")


def _trajectory(
    rng: np.random.Generator,
    direction: str,
    width: int,
    height: int,
    radius: float,
    num_frames: int,
    travel: tuple[float, float] = (0.75, 1.0),
) -> np.ndarray:
    """Centre positions ``[T, 2]`` (x, y) of a straight move in ``direction``, inside the frame.

    The move covers a share drawn from ``travel`` of the free path along its axis (the speed).
    The segment is drawn without regard to its orientation and then oriented, so opposite
    directions have the same distribution of positions (only their order differs).
    """
    ux, uy = DIRECTIONS[direction]
    along_size, across_size = (width, height) if ux != 0 else (height, width)
    margin = radius + 2.0
    span = along_size - 2 * margin
    length = rng.uniform(*travel) * span
    lo = rng.uniform(margin, margin + span - length)
    across = rng.uniform(margin, across_size - margin)
    t = np.linspace(0.0, 1.0, num_frames, dtype=np.float32)
    along = lo + length * t
    if ux + uy < 0:  # left or up: run the same segment backwards
        along = along[::-1]
    if ux != 0:
        return np.stack([along, np.full_like(along, across)], axis=1)
    return np.stack([np.full_like(along, across), along], axis=1)


def render_clip(action: Action, rng: np.random.Generator, *, size: int = 64, num_frames: int = 16) -> np.ndarray:
    """Render ``action`` with the ``default`` look as uint8 frames ``[num_frames, size, size, 3]``.

    The background, shape size, path and a small colour jitter are drawn from ``rng``.
    """
    if action.colour not in COLOURS or action.shape not in SHAPES or action.direction not in DIRECTIONS:
        raise ValueError(f"unknown action {action}")
    look = Look(
        width=size,
        height=size,
        num_frames=num_frames,
        background="grating",
        radius=(0.1, 0.14),
        travel=(0.75, 1.0),
        noise=0.0,
        colour_jitter=8.0,
        crf=18,
    )
    return render_look(action, rng, look)


def render_look(action: Action, rng: np.random.Generator, look: Look) -> np.ndarray:
    """Render ``action`` as uint8 frames ``[look.num_frames, look.height, look.width, 3]``.

    ``look`` fixes the frame geometry, background kind and ranges; the background, shape size
    (a share of the shorter side), path, colour jitter and pixel noise are drawn from ``rng``.
    """
    if action.colour not in COLOURS or action.shape not in SHAPE_WORDS or action.direction not in DIRECTIONS:
        raise ValueError(f"unknown action {action}")
    w, h, n = look.width, look.height, look.num_frames
    bg = _background(rng, w, h, look.background)
    radius = rng.uniform(*look.radius) * min(w, h)
    path = _trajectory(rng, action.direction, w, h, radius, n, look.travel)
    colour = np.clip(np.asarray(COLOURS[action.colour], np.float32) + rng.normal(0, look.colour_jitter, size=3), 0, 255)
    gx = np.arange(w, dtype=np.float32) + 0.5
    gy = np.arange(h, dtype=np.float32) + 0.5
    frames = np.empty((n, h, w, 3), np.uint8)
    for i, (cx, cy) in enumerate(path):
        dx = gx[None, :] - cx
        dy = gy[:, None] - cy
        # one pixel of soft edge: anti-aliased, so sub-pixel motion is visible
        alpha = np.clip(0.5 - _signed_distance(action.shape, dx, dy, radius), 0.0, 1.0)[:, :, None]
        frame = bg * (1 - alpha) + colour * alpha
        if look.noise > 0:  # sensor-like noise, new in every frame
            frame = frame + rng.normal(0, look.noise, size=frame.shape).astype(np.float32)
        frames[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def encode_video(
    path: str | os.PathLike, frames: np.ndarray, *, fps: int = 8, codec: str = "libx264", crf: int = 18
) -> Path:
    """Write uint8 frames ``[T, H, W, 3]`` as a video file (container from the extension).

    Writes to a temporary name and renames, so an interrupted run never leaves a truncated
    file under the final name.

    Args:
        path: output file, e.g. ``clip.mp4``.
        frames: RGB frames; H and W must be even for ``libx264``.
        fps: frame rate.
        codec: ``libx264`` (small, near-lossless at crf 18) or ``mpeg4``.
        crf: ``libx264`` constant rate factor: higher is smaller and blockier.
    """
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    h, w = frames.shape[1:3]
    options = {"preset": "ultrafast", "crf": str(crf)} if codec == "libx264" else {}
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


def _look_rng(seed: int, index: int) -> np.random.Generator:
    # The per-clip setting draws (size, length, background kind, wording...) use their own
    # stream, so a fixed setting renders exactly what the clip stream alone would.
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0x100C]))


def setting_actions(setting: GeneratorSetting) -> list[Action]:
    """The actions of a setting, in a fixed order (colour, then shape, then direction)."""
    return [Action(c, s, d) for c in setting.colours for s in setting.shapes for d in DIRECTIONS]


def make_split(
    out_dir: str | os.PathLike,
    name: str,
    count: int,
    *,
    seed: int,
    size: int | None = None,
    num_frames: int | None = None,
    fps: int = 8,
    codec: str = "libx264",
    distinct: bool = False,
    setting: str | GeneratorSetting = "default",
) -> Path:
    """Write ``count`` clips under ``out_dir/name/`` and their annotations to ``out_dir/name.json``.

    Args:
        out_dir: dataset folder.
        name: split name, e.g. ``"train"``; videos go to ``out_dir/name/``.
        count: number of clips. With ``distinct`` at most the setting's number of actions (80
            for ``default``).
        seed: the split's seed; use different seeds for different splits.
        size: frame width and height in pixels (None: drawn from the setting).
        num_frames: frames per clip (None: drawn from the setting).
        fps: frame rate.
        codec: see :func:`encode_video`.
        distinct: every clip gets a different action, hence caption (a held-out set where each
            caption has exactly one right video); otherwise the clips cycle through the actions
            in a seeded order, so each appears ``count / actions`` times.
        setting: a preset name of :mod:`vidsearch.testing.domains` or a setting; every clip draws
            its look and caption wording from it.

    Returns:
        The annotation file path (video paths in it are relative to ``out_dir/name``). Each
        record also names the clip's ``colour``, ``shape``, ``direction`` and ``setting``.
    """
    gen = get_setting(setting) if isinstance(setting, str) else setting
    actions = setting_actions(gen)
    if distinct and count > len(actions):
        raise ValueError(f"distinct captions: at most {len(actions)} clips, asked for {count}")
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])).permutation(len(actions))
    video_dir = Path(out_dir) / name
    video_dir.mkdir(parents=True, exist_ok=True)
    ext = ".mp4" if codec == "libx264" else ".avi"
    records = []
    for i in range(count):
        action = actions[order[i % len(actions)]]
        lrng = _look_rng(seed, i)
        look = gen.draw(lrng)
        if size is not None:
            look = replace(look, width=size, height=size)
        if num_frames is not None:
            look = replace(look, num_frames=num_frames)
        caption = gen.grammar.caption(action.colour, action.shape, action.direction, lrng)
        frames = render_look(action, _clip_rng(seed, i), look)
        file = f"{name}_{i:05d}{ext}"
        encode_video(video_dir / file, frames, fps=fps, codec=codec, crf=look.crf)
        records.append(
            {
                "video": file,
                "caption": caption,
                "colour": action.colour,
                "shape": action.shape,
                "direction": action.direction,
                "setting": gen.name,
                # the action, worded canonically: paraphrases of one action are one group
                # (positives in training), and it swaps like a caption under --reverse-pairs
                "group": action.caption,
            }
        )
    ann = atomic_write_text(Path(out_dir) / f"{name}.json", json.dumps(records, indent=0))
    LOG.info("wrote %d clips (setting %s) to %s", count, gen.name, video_dir)
    return ann


def make_dataset(
    out_dir: str | os.PathLike,
    *,
    train: int = 3000,
    heldout: int = 80,
    seed: int = 0,
    size: int | None = None,
    num_frames: int | None = None,
    fps: int = 8,
    setting: str = "default",
    heldout_setting: str | None = None,
) -> tuple[Path, Path]:
    """Write a training split and a held-out split with distinct captions.

    Args:
        out_dir, seed, size, num_frames, fps: see :func:`make_split`.
        train, heldout: clips per split.
        setting: the training split's generator setting.
        heldout_setting: the held-out split's (None: ``setting``).

    Returns:
        ``(train_annotations, heldout_annotations)``; videos are in ``out_dir/train`` and
        ``out_dir/heldout``.
    """
    kw = dict(size=size, num_frames=num_frames, fps=fps)
    tr = make_split(out_dir, "train", train, seed=seed, setting=setting, **kw)
    # a different seed stream: no held-out clip repeats a training clip
    ho = make_split(
        out_dir, "heldout", heldout, seed=heldout_seed(seed), distinct=True, setting=heldout_setting or setting, **kw
    )
    return tr, ho


def heldout_seed(seed: int, k: int = 0) -> int:
    """The seed of the ``k``-th held-out split of a dataset seeded ``seed`` (far from its training stream)."""
    return seed + 1_000_003 * (k + 1)


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


def action_pairs(records: Sequence[dict]) -> list[tuple[int, int]]:
    """Index pairs of annotation records whose actions differ only by opposite directions.

    Works for any caption wording: it compares the records' ``colour``, ``shape`` and
    ``direction`` fields (written by :func:`make_split`). The first index moves left or up.
    """
    where = {(r["colour"], r["shape"], r["direction"]): i for i, r in enumerate(records)}
    pairs = []
    for i, r in enumerate(records):
        if r["direction"] in ("left", "up"):
            j = where.get((r["colour"], r["shape"], _OPPOSITE[r["direction"]]))
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
