"""Training data pieces: batches without duplicate captions, frame sampling, crops, the frame cache."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from vidsearch.errors import InputError, MediaError
from vidsearch.media import middle_indices
from vidsearch.train.data import (
    Clip,
    build_frame_cache,
    cache_bytes,
    neighbour_batches,
    parse_reverse_pairs,
    random_crop,
    segment_indices,
    split_heldout,
    swap_words,
    unique_caption_batches,
)


@pytest.mark.parametrize("seed", range(5))
def test_batches_cover_every_index_once_without_duplicate_captions(seed):
    rng = np.random.default_rng(seed)
    captions = [f"c{int(i)}" for i in rng.integers(0, 20, size=203)]
    batches = unique_caption_batches(captions, 16, np.random.default_rng(seed))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(captions)))
    assert all(len(b) == 16 for b in batches[:-1])
    # a caption with more clips than there are batches must repeat somewhere; nothing else may
    excess = sum(max(0, n - len(batches)) for n in Counter(captions).values())
    repeats = sum(len(b) - len({captions[i] for i in b}) for b in batches)
    assert repeats <= excess + 2


def test_batches_have_no_duplicates_when_captions_allow_it():
    captions = [f"c{i % 40}" for i in range(400)]  # 40 captions x 10 clips
    batches = unique_caption_batches(captions, 32, np.random.default_rng(0))
    for b in batches:
        assert len({captions[i] for i in b}) == len(b)


def test_batches_are_deterministic_and_shuffled():
    captions = [f"c{i % 7}" for i in range(70)]
    a = unique_caption_batches(captions, 8, np.random.default_rng(1))
    b = unique_caption_batches(captions, 8, np.random.default_rng(1))
    c = unique_caption_batches(captions, 8, np.random.default_rng(2))
    assert a == b and a != c


def test_neighbour_batches_group_similar_captions():
    from vidsearch.testing.synthetic import all_actions

    captions = [a.caption for a in all_actions()] * 5
    batches = neighbour_batches(captions, 16, np.random.default_rng(0), group=8)
    assert sorted(i for b in batches for i in b) == list(range(len(captions)))
    assert all(len(b) == 16 for b in batches)
    # the first group of a batch: the seed and the 7 captions closest to it, all distinct;
    # each shares 4 of its 5 words with the seed (one attribute changed)
    first = [captions[i].split() for i in batches[0][:8]]
    assert len({" ".join(c) for c in first}) == 8
    assert all(sum(a != b for a, b in zip(first[0], c, strict=False)) == 1 for c in first[1:])
    assert neighbour_batches(captions, 16, np.random.default_rng(0), group=8) == batches


@pytest.mark.parametrize("cached,frames", [(16, 8), (16, 4), (12, 8), (8, 8), (5, 8)])
def test_segment_sampling_middle_matches_the_index_and_jitter_stays_in_segments(cached, frames):
    mid = segment_indices(cached, frames, 3, None)
    if cached >= frames:
        assert mid[0].tolist() == middle_indices(cached, frames)
    jit = segment_indices(cached, frames, 500, np.random.default_rng(0))
    assert jit.min() >= 0 and jit.max() < cached
    assert (np.diff(jit, axis=1) >= 0).all()  # frame order is kept
    if cached >= 2 * frames:
        assert len(np.unique(jit[:, 0])) > 1  # it does jitter


def test_split_heldout_is_disjoint_with_distinct_captions():
    clips = [Clip(Path(f"v{i}.mp4"), f"cap{i % 10}") for i in range(100)]
    clips += [Clip(Path("v3.mp4"), "extra caption of v3")]
    train, held = split_heldout(clips, 8, seed=0)
    assert len({c.video for c in held}) == 8
    assert not {c.video for c in held} & {c.video for c in train}
    assert len({c.caption for c in held}) == len(held)
    assert len(train) + len(held) == len(clips)
    assert split_heldout(clips, 8, seed=0) == (train, held)


def test_random_crop_identity_and_same_window_for_all_frames():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 16, 16)
    same = random_crop(x, 1.0, 0.0, g)
    assert torch.allclose(same, x, atol=1e-5)
    # a clip whose frames are equal stays equal frame to frame after cropping
    y = x[:, :1].expand(2, 3, 3, 16, 16).contiguous()
    out = random_crop(y, 0.6, 0.2, g)
    assert torch.allclose(out[:, 0], out[:, 2]) and not torch.allclose(out, y)


def _fake_decoder(path: Path, count: int, res: int) -> np.ndarray:
    k = int(path.stem[1:])
    if k == 99:
        raise RuntimeError("broken file")
    return np.full((count, res, res, 3), k, np.uint8)


def _never(path: Path, count: int, res: int) -> np.ndarray:
    raise AssertionError("a complete cache must not be decoded again")


def test_frame_cache_builds_once_and_enforces_its_bound(tmp_path):
    videos = [tmp_path / f"v{i}.mp4" for i in range(5)]
    path = tmp_path / "cache" / "c.npy"
    cache = build_frame_cache(videos, path, cache_frames=4, resolution=8, max_bytes=10**6, decode=_fake_decoder)
    assert cache.frames.shape == (5, 4, 8, 8, 3)
    got = cache.get([3, 1], np.array([[0, 3], [1, 2]]))
    assert got.shape == (2, 2, 8, 8, 3) and int(got[0, 0, 0, 0, 0]) == 3 and int(got[1, 1, 0, 0, 0]) == 1
    # reused: a decoder that would fail is never called
    again = build_frame_cache(videos, path, cache_frames=4, resolution=8, max_bytes=10**6, decode=_never)
    assert np.array_equal(np.asarray(again.frames), np.asarray(cache.frames))
    with pytest.raises(InputError, match="--cache-frames"):
        build_frame_cache(
            videos,
            tmp_path / "big.npy",
            cache_frames=4,
            resolution=8,
            max_bytes=cache_bytes(5, 4, 8) - 1,
            decode=_fake_decoder,
        )
    with pytest.raises(MediaError, match="v99"):
        build_frame_cache(
            [tmp_path / "v99.mp4"],
            tmp_path / "bad.npy",
            cache_frames=2,
            resolution=8,
            max_bytes=10**6,
            decode=_fake_decoder,
        )
    assert not (tmp_path / "bad.npy").exists()


def test_frame_cache_decodes_real_videos_like_the_index(tmp_path):
    from vidsearch.media import probe, read_frames
    from vidsearch.testing.synthetic import Action, encode_video, render_clip

    frames = render_clip(Action("red", "circle", "up"), np.random.default_rng(0), size=32, num_frames=12)
    video = encode_video(tmp_path / "a.mp4", frames)
    cache = build_frame_cache([video], tmp_path / "c.npy", cache_frames=4, resolution=16, max_bytes=10**6)
    want, _ = read_frames(video, middle_indices(probe(video).num_frames, 4), 16)
    assert np.array_equal(np.asarray(cache.frames[0]), want)


def test_frame_cache_decodes_in_the_crash_contained_pool(tmp_path):
    """Several workers, rows in the videos' order whatever order they finish in, short clips
    padded like the index pads them, and a broken file is a MediaError naming it."""
    from vidsearch.media import probe, read_frames
    from vidsearch.testing.synthetic import Action, encode_video, render_clip

    rng = np.random.default_rng(1)
    videos = [
        encode_video(tmp_path / f"v{i}.mp4", render_clip(Action("blue", "square", "left"), rng, size=32, num_frames=n))
        for i, n in enumerate((12, 3, 9))  # 3 frames < cache_frames: the last one repeats
    ]
    cache = build_frame_cache(videos, tmp_path / "c.npy", cache_frames=6, resolution=16, max_bytes=10**6, workers=2)
    for row, video in enumerate(videos):
        indices = middle_indices(probe(video).num_frames, 6)
        want, _ = read_frames(video, indices, 16)
        assert np.array_equal(np.asarray(cache.frames[row]), want), video
    assert middle_indices(3, 6) == [0, 1, 2, 2, 2, 2]

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="broken.mp4"):
        build_frame_cache([videos[0], broken], tmp_path / "bad.npy", cache_frames=4, resolution=16, max_bytes=10**6)
    assert not (tmp_path / "bad.npy").exists()


def test_reverse_pairs_parse_and_reject_bad_specs():
    assert parse_reverse_pairs("left=right, Up=down,") == (("left", "right"), ("up", "down"))
    assert parse_reverse_pairs("") == ()
    for bad in ("left", "left=left", "left=right,right=up", "two words=x", "a=b=c"):
        with pytest.raises(InputError, match="reverse-pairs"):
            parse_reverse_pairs(bad)


def test_swap_words_swaps_whole_words_both_ways_at_once():
    pairs = (("left", "right"), ("up", "down"))
    assert swap_words("a red circle moving left", pairs) == "a red circle moving right"
    assert swap_words("a red circle moving right", pairs) == "a red circle moving left"
    assert swap_words("a cross moving down", pairs) == "a cross moving up"
    # all occurrences at once: the events of a reversed clip come in the opposite order
    assert swap_words("Left first, then right.", pairs) == "Right first, then left."
    assert swap_words("a leftover upside", pairs) is None  # whole words only
    assert swap_words("a red circle moving left", ()) is None


def test_read_clips_carries_the_annotation_group(tmp_path):
    import json

    from vidsearch.train.run import read_clips

    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    ann = tmp_path / "ann.json"
    ann.write_text(
        json.dumps(
            [
                {"video": "a.mp4", "caption": "a red disc going left", "group": "red circle left"},
                {"video": "b.mp4", "caption": ["a ball in red heading left", "a blue box"]},
                {"video": "gone.mp4", "caption": "x", "group": "g"},
            ]
        )
    )
    clips, missing = read_clips("json", ann, tmp_path)
    assert missing == ["gone.mp4"]
    assert [(c.video.name, c.group) for c in clips] == [("a.mp4", "red circle left"), ("b.mp4", None), ("b.mp4", None)]
    # the key the loss and the sampler compare: the group, else the caption
    assert [c.key for c in clips] == ["group:red circle left", "a ball in red heading left", "a blue box"]
