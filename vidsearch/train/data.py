"""Training data: captioned clips, a decode-once frame cache, batch sampling and augmentation.

**Frame cache.** Decoding dominates a small model's epoch, so every video is decoded once, resized
to the model resolution and stored as uint8 in one ``.npy`` file opened as a memory map:
``[n_videos, cache_frames, res, res, 3]``. Its size is exactly
``n_videos * cache_frames * res * res * 3`` bytes (3000 clips x 16 frames at 32 px: 147 MB; at
224 px: 7.2 GB). It lives on disk, so the process's own memory stays small and the OS page cache
holds what fits. :func:`build_frame_cache` refuses to write a cache above ``max_bytes`` and says
which option lowers it. The cached frames of a video are its ``cache_frames`` "middle" samples
(all frames when the clip is that short), so evaluation-style sampling of ``num_frames`` out of
them equals sampling the video itself whenever ``cache_frames`` equals the clip length.

**Temporal jitter** picks one random frame inside each of ``num_frames`` equal segments of the
cached frames (the official "rand" sampling); without it, the middle frame of each segment.

**Spatial augmentation** is a random scaled/translated crop, the same for every frame of a clip
(a per-frame crop would add fake motion). There are deliberately no flips or hue changes:
captions often name directions and colours, which those would falsify.

**Batches** never hold the same caption twice when it can be avoided: two clips with one caption
in a batch are false negatives for each other under the contrastive loss. Clips with a
``group`` (the annotations' optional ``group`` field) count by group instead: paraphrases of one
event are kept apart like identical captions, and are positives when they do meet.

**Time reversal** (:func:`parse_reverse_pairs`, :func:`swap_words`): a clip whose caption names
one word of a pair such as ``left=right`` also enters its batch played backwards, with the
words of every pair swapped ("a red circle moving left" -> "... moving right"). The two
samples differ only in frame order, so the contrastive loss gets a direct signal for temporal
order (time-reversed clips as hard negatives: Bagad et al., "Test of Time", CVPR 2023).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsearch.errors import InputError, MediaError
from vidsearch.media.sampling import SamplingConfig

__all__ = [
    "Clip",
    "FrameCache",
    "build_frame_cache",
    "cache_bytes",
    "split_heldout",
    "unique_caption_batches",
    "neighbour_batches",
    "segment_indices",
    "random_crop",
    "cache_key",
    "parse_reverse_pairs",
    "swap_words",
]

LOG = logging.getLogger(__name__)

# decode(path, frame_count, res) -> uint8 [frame_count, res, res, 3]; the default is the decode pool.
Decoder = Callable[[Path, int, int], np.ndarray]
# (cache row, its frames or None, the error naming the file or None)
_Decoded = tuple[int, np.ndarray | None, str | None]


@dataclass(frozen=True)
class Clip:
    """One training example: a video file, one of its captions and optionally its group.

    Clips of one ``group`` (e.g. paraphrased captions of the same event) are positives of each
    other in the loss and are kept out of each other's batches; without a group a clip's
    caption is its group.
    """

    video: Path
    caption: str
    group: str | None = None

    @property
    def key(self) -> str:
        """What the loss and the batch sampler compare: the group, else the caption."""
        return self.caption if self.group is None else f"group:{self.group}"


def cache_bytes(n_videos: int, cache_frames: int, resolution: int) -> int:
    """Size in bytes of a frame cache (uint8 RGB)."""
    return n_videos * cache_frames * resolution * resolution * 3


def _decode_in_process(decode: Decoder, videos: Sequence[Path], count: int, res: int) -> Iterator[_Decoded]:
    """A caller's own decoder, run here (tests and synthetic data: nothing to contain)."""
    for row, v in enumerate(videos):
        try:
            yield row, decode(Path(v), count, res), None
        except Exception as exc:  # noqa: BLE001 -- reported with the file's name by _fill
            yield row, None, f"{v}: {exc}"


def _decode_in_pool(videos: Sequence[Path], count: int, res: int, workers: int, antialias: bool) -> Iterator[_Decoded]:
    """The ``count`` middle samples of each whole video (the index's sampling), resized to
    ``res``, decoded in the crash-contained pool: a decoder that segfaults or hangs on one file
    fails that file, not the training run."""
    from vidsearch.media.jobs import DecodedVideo, DecodeJob
    from vidsearch.media.pool import DecodePool

    jobs = [
        DecodeJob(row, str(v), count, res, sampling=SamplingConfig.whole_video(antialias))
        for row, v in enumerate(videos)
    ]
    with DecodePool(workers=workers) as pool:
        for result in pool.run(jobs):  # in completion order: rows say where each one goes
            if isinstance(result, DecodedVideo):
                yield result.job_id, result.clips()[0], None  # the whole-video segment
            else:
                yield result.job_id, None, f"{result.path}: {result.reason}"


class FrameCache:
    """Decoded uint8 frames ``[n_videos, cache_frames, res, res, 3]``, memory-mapped from disk."""

    def __init__(self, path: str | os.PathLike[str], videos: Sequence[Path]) -> None:
        self.path = Path(path)
        self.frames = np.load(self.path, mmap_mode="r")
        self.videos = list(videos)
        self.index = {v: i for i, v in enumerate(self.videos)}
        if self.frames.shape[0] != len(self.videos):
            raise InputError(
                f"frame cache {self.path} holds {self.frames.shape[0]} videos, expected {len(self.videos)}; delete it"
            )

    @property
    def cache_frames(self) -> int:
        """Frames kept per video."""
        return int(self.frames.shape[1])

    def get(self, rows: Sequence[int], frame_idx: np.ndarray) -> torch.Tensor:
        """uint8 frames ``[B, T, res, res, 3]`` of cache rows ``rows`` at ``frame_idx [B, T]``."""
        out = np.stack([self.frames[r, frame_idx[k]] for k, r in enumerate(rows)])
        return torch.from_numpy(out)


def build_frame_cache(
    videos: Sequence[Path],
    path: str | os.PathLike[str],
    *,
    cache_frames: int,
    resolution: int,
    max_bytes: int,
    workers: int = 1,
    antialias: bool = False,
    decode: Decoder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FrameCache:
    """Decode every video once into a memory-mapped cache file, or reuse a complete one.

    The file is written under a temporary name and renamed when complete, so an interrupted
    build starts over and a finished one is reused by the next run (e.g. ``--resume``).

    Args:
        videos: video files, one cache row each, in this order.
        path: the ``.npy`` cache file.
        cache_frames: frames kept per video (middle sampling; repeats for shorter clips).
        resolution: square frame side (the model's input resolution).
        max_bytes: refuse caches larger than this.
        workers: decoding processes of the crash-contained pool
            (:class:`vidsearch.media.pool.DecodePool`).
        antialias: antialias the pool's resize (off: as the published ViCLIP models saw frames).
        decode: ``decode(path, cache_frames, resolution) -> uint8 [cache_frames, res, res, 3]``,
            run in this process; default: the decode pool with the index's middle sampling of
            the whole video and its resize.
        progress: called as ``progress(done, total)`` while decoding.

    Raises:
        InputError: the cache would exceed ``max_bytes``.
        MediaError: a video cannot be decoded (the message names it).
    """
    path = Path(path)
    size = cache_bytes(len(videos), cache_frames, resolution)
    if size > max_bytes:
        raise InputError(
            f"the frame cache would need {size / 2**30:.1f} GiB ({len(videos)} videos x {cache_frames} frames "
            f"at {resolution}px), above the {max_bytes / 2**30:.1f} GiB limit; lower --cache-frames or raise --cache-gb"
        )
    if path.exists():
        return FrameCache(path, videos)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    shape = (len(videos), cache_frames, resolution, resolution, 3)
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    if decode is not None:
        results = _decode_in_process(decode, videos, cache_frames, resolution)
    else:
        results = _decode_in_pool(videos, cache_frames, resolution, max(1, min(workers, len(videos))), antialias)
    _fill(arr, results, len(videos), progress)
    arr.flush()
    del arr
    os.replace(tmp, path)
    LOG.info("cached %d videos (%.1f MB) in %s", len(videos), size / 1e6, path)
    return FrameCache(path, videos)


def _fill(
    arr: np.ndarray, results: Iterator[_Decoded], total: int, progress: Callable[[int, int], None] | None
) -> None:
    for done, (row, frames, error) in enumerate(results, start=1):
        if error is not None or frames is None:
            raise MediaError(f"cannot decode {error}; fix or remove it from the annotations")
        if frames.shape != arr.shape[1:]:
            raise MediaError(f"decoder returned frames of shape {frames.shape}, expected {arr.shape[1:]}")
        arr[row] = frames
        if progress is not None:
            progress(done, total)


def cache_key(videos: Sequence[Path], cache_frames: int, resolution: int, antialias: bool = False) -> str:
    """A short hash naming a cache: same videos (paths, sizes, mtimes), geometry and resize, same key."""
    h = hashlib.sha1(f"{cache_frames}:{resolution}{':aa' if antialias else ''}".encode())
    for v in videos:
        st = v.stat()
        h.update(f"{v}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def split_heldout(clips: Sequence[Clip], count: int, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Hold out up to ``count`` videos (with all their captions) for validation.

    Videos are picked in a seeded random order and skipped when one of their captions is
    already held out, so validation captions are distinct where the data allows it: a
    duplicate caption would make its ranking ambiguous.

    Returns:
        ``(train, heldout)`` clip lists; no video is in both.
    """
    by_video: dict[Path, list[Clip]] = {}
    for c in clips:
        by_video.setdefault(c.video, []).append(c)
    order = list(by_video)
    np.random.default_rng(seed).shuffle(order)
    held: set[Path] = set()
    seen: set[str] = set()
    for v in order:
        if len(held) >= count:
            break
        caps = {c.caption for c in by_video[v]}
        if caps & seen:
            continue
        held.add(v)
        seen |= caps
    train = [c for c in clips if c.video not in held]
    heldout = [c for c in clips if c.video in held]
    return train, heldout


def unique_caption_batches(captions: Sequence[str], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle indices into batches in which no caption appears twice, where possible.

    Each caption's clips are first spread evenly over the epoch (member ``r`` of a caption with
    ``n`` clips gets the sort key ``(r + u) / n``, ``u`` uniform), so frequent captions do not
    pile up anywhere; a greedy pass then defers any index whose caption is already in the batch
    being filled. Only when too few distinct captions are left does a batch repeat one (the loss
    counts such repeats as positives, not negatives).

    Returns:
        Batches of indices into ``captions``, every index exactly once, all full except the last.
    """
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(captions):
        groups.setdefault(c, []).append(i)
    keyed = []
    for members in groups.values():
        n = len(members)
        perm = rng.permutation(n)
        for r, m in enumerate(perm):
            keyed.append(((r + rng.random()) / n, members[m]))
    keyed.sort()
    pending = [k[1] for k in keyed]
    batches: list[list[int]] = []
    while pending:
        batch, seen, rest = [], set(), []
        for i in pending:
            if len(batch) < batch_size and captions[i] not in seen:
                batch.append(i)
                seen.add(captions[i])
            else:
                rest.append(i)
        if len(batch) < batch_size and rest:  # only duplicates remain: accept them
            take = batch_size - len(batch)
            batch.extend(rest[:take])
            rest = rest[take:]
        batches.append(batch)
        pending = rest
    return batches


MAX_NEIGHBOUR_CAPTIONS = 5000  # above this, the pairwise caption similarity costs too much


def neighbour_batches(
    captions: Sequence[str], batch_size: int, rng: np.random.Generator, group: int = 8
) -> list[list[int]]:
    """Batches made of groups of similar captions: hard negatives for each other.

    A random clip seeds each group; the group is filled with one clip of each of the
    ``group - 1`` distinct captions sharing the most words with the seed's (word-set Jaccard,
    random tie-break). "a red circle moving left" then meets "... moving right" and "a blue
    circle moving left" in the same batch, so the loss must use every word, motion included.
    No caption appears twice in a batch while others remain. With more than
    ``MAX_NEIGHBOUR_CAPTIONS`` distinct captions this falls back to :func:`unique_caption_batches`.

    Returns:
        Batches of indices into ``captions``, every index exactly once.
    """
    distinct = sorted(set(captions))
    if len(distinct) > MAX_NEIGHBOUR_CAPTIONS or group < 2:
        return unique_caption_batches(captions, batch_size, rng)
    cid = {c: k for k, c in enumerate(distinct)}
    vocab: dict[str, int] = {}
    sets = [set(c.lower().split()) for c in distinct]
    for s in sets:
        for w in s:
            vocab.setdefault(w, len(vocab))
    words = np.zeros((len(distinct), len(vocab)), np.float32)
    for k, s in enumerate(sets):
        words[k, [vocab[w] for w in s]] = 1.0
    inter = words @ words.T
    union = words.sum(1)[:, None] + words.sum(1)[None, :] - inter
    sim = inter / np.maximum(union, 1.0)
    pools: list[list[int]] = [[] for _ in distinct]
    for i in rng.permutation(len(captions)):
        pools[cid[captions[i]]].append(int(i))
    left = np.array([len(p) for p in pools])
    batches: list[list[int]] = []
    while left.sum() > 0:
        batch: list[int] = []
        used = np.zeros(len(distinct), bool)
        while len(batch) < batch_size:
            avail = (left > 0) & ~used
            if not avail.any():
                break
            # seed in proportion to the clips left, so every clip is equally likely to lead
            w = np.where(avail, left, 0).astype(np.float64)
            seed = int(rng.choice(len(distinct), p=w / w.sum()))
            score = np.where(avail, sim[seed] + 1e-3 * rng.random(len(distinct)), -np.inf)
            score[seed] = np.inf
            take = min(group, batch_size - len(batch), int(avail.sum()))
            for k in np.argsort(-score)[:take]:
                batch.append(pools[k].pop())
                left[k] -= 1
                used[k] = True
        if len(batch) < batch_size:  # only captions already in this batch are left: repeat them
            for k in np.flatnonzero(left > 0):
                while left[k] > 0 and len(batch) < batch_size:
                    batch.append(pools[k].pop())
                    left[k] -= 1
        batches.append(batch)
    return batches


def segment_indices(cached: int, num_frames: int, batch: int, rng: np.random.Generator | None) -> np.ndarray:
    """Frame positions ``[batch, num_frames]`` within ``cached`` frames.

    With ``rng``: one random frame inside each of ``num_frames`` equal segments (temporal
    jitter). Without: the middle frame of each segment, as the index samples.
    """
    edges = np.linspace(0, cached, num_frames + 1).astype(np.int64)
    lo, hi = edges[:-1], np.maximum(edges[1:] - 1, edges[:-1])
    if rng is None:
        return np.broadcast_to((lo + hi) // 2, (batch, num_frames)).copy()
    return lo + (rng.random((batch, num_frames)) * (hi - lo + 1)).astype(np.int64)


def random_crop(x: torch.Tensor, min_scale: float, max_shift: float, generator: torch.Generator) -> torch.Tensor:
    """Zoom into a random square of each clip, the same window for all its frames.

    Args:
        x: float frames ``[B, T, C, H, W]``.
        min_scale: smallest side of the window as a fraction of the frame (1: no zoom).
        max_shift: largest translation of the window centre, as a fraction of the frame side.
        generator: the random source (seeded by the caller).

    Returns:
        ``[B, T, C, H, W]`` resampled bilinearly; windows leaving the frame are edge-padded.
    """
    B, T, C, H, W = x.shape
    scale = min_scale + (1.0 - min_scale) * torch.rand(B, generator=generator)
    shift = (torch.rand(B, 2, generator=generator) * 2 - 1) * max_shift * 2  # grid units are [-1, 1]
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    theta = theta.to(x.device, x.dtype).repeat_interleave(T, dim=0)  # one window per clip
    frames = x.reshape(B * T, C, H, W)
    grid = F.affine_grid(theta, [B * T, C, H, W], align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(B, T, C, H, W)


def parse_reverse_pairs(spec: str) -> tuple[tuple[str, str], ...]:
    """Parse ``"left=right,up=down"`` into word pairs that swap meaning when time runs backwards.

    Raises:
        InputError: a pair is not two different single words, or a word is in two pairs.
    """
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in spec.split(","):
        if not item.strip():
            continue
        a, sep, b = (w.strip().lower() for w in item.partition("="))
        if not sep or not re.fullmatch(r"\w+", a) or not re.fullmatch(r"\w+", b) or a == b:
            raise InputError(f"--reverse-pairs: {item.strip()!r} is not two different words like 'left=right'")
        if a in seen or b in seen:
            raise InputError(f"--reverse-pairs: {item.strip()!r} repeats a word of another pair")
        seen |= {a, b}
        pairs.append((a, b))
    return tuple(pairs)


def swap_words(caption: str, pairs: Sequence[Sequence[str]]) -> str | None:
    """The caption of the time-reversed clip: every word of ``pairs`` swapped with its partner.

    Whole words only, case-insensitive, keeping a leading capital; all occurrences are swapped at
    once, so "left then right" becomes "right then left" (the reversed order of events).

    Returns:
        The swapped caption, or None when the caption names no word of ``pairs``.
    """
    partner = {}
    for a, b in pairs:
        partner[a.lower()], partner[b.lower()] = b.lower(), a.lower()
    if not partner:
        return None
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, partner)) + r")\b", re.IGNORECASE)

    def repl(m: re.Match[str]) -> str:
        word = partner[m.group(0).lower()]
        return word.capitalize() if m.group(0)[0].isupper() else word

    out, n = pattern.subn(repl, caption)
    return out if n else None
