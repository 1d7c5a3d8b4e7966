"""The synthetic captioned-video generator: determinism, captions, motion, files bench can read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidsearch.testing import synthetic as S


def test_eighty_distinct_captions_naming_colour_shape_direction():
    actions = S.all_actions()
    captions = [a.caption for a in actions]
    assert len(actions) == 80 and len(set(captions)) == 80
    assert S.Action("red", "circle", "left").caption == "a red circle moving left"


def test_render_is_deterministic_and_seed_dependent():
    a = S.Action("blue", "triangle", "up")
    f1 = S.render_clip(a, np.random.default_rng(3), size=32, num_frames=6)
    f2 = S.render_clip(a, np.random.default_rng(3), size=32, num_frames=6)
    f3 = S.render_clip(a, np.random.default_rng(4), size=32, num_frames=6)
    assert f1.shape == (6, 32, 32, 3) and f1.dtype == np.uint8
    assert np.array_equal(f1, f2)
    assert not np.array_equal(f1, f3)


def _centroid(frames: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """Centre of the pixels close to ``colour`` in each frame: ``[T, 2]`` (x, y)."""
    d = np.abs(frames.astype(np.int32) - np.asarray(colour)).sum(-1)
    out = []
    for m in d < 60:
        ys, xs = np.nonzero(m)
        out.append((xs.mean(), ys.mean()))
    return np.array(out)


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_shape_moves_in_its_direction(direction):
    frames = S.render_clip(S.Action("red", "square", direction), np.random.default_rng(1), size=64, num_frames=8)
    c = _centroid(frames, S.COLOURS["red"])
    step = np.diff(c, axis=0).mean(axis=0)
    ux, uy = S.DIRECTIONS[direction]
    assert step[0] * ux + step[1] * uy > 1.0  # at least a pixel per frame along the direction
    assert abs(step[0] * uy) + abs(step[1] * ux) < 0.3  # and none across it


def test_opposite_directions_cover_the_same_positions_reversed():
    # the same random draws, opposite directions: the same path run backwards, so a model
    # blind to frame order cannot tell them apart
    left = S.render_clip(S.Action("green", "cross", "left"), np.random.default_rng(7), size=48, num_frames=8)
    right = S.render_clip(S.Action("green", "cross", "right"), np.random.default_rng(7), size=48, num_frames=8)
    assert np.array_equal(left, right[::-1])


def test_direction_pairs():
    captions = [
        "a red circle moving left",
        "a red circle moving up",
        "a red circle moving right",
        "a blue cross moving down",
    ]
    assert S.direction_pairs(captions) == [(0, 2)]


def test_make_split_writes_videos_and_annotations_bench_reads(tmp_path):
    from vidsearch.bench.datasets import read_annotations, resolve_videos
    from vidsearch.media import probe

    ann = S.make_split(tmp_path, "heldout", 6, seed=5, size=32, num_frames=8, distinct=True)
    rs = read_annotations("json", ann)
    assert len(rs.captions) == 6 and len(set(rs.captions)) == 6
    paths = resolve_videos(rs.videos, tmp_path / "heldout")
    assert all(p is not None for p in paths)
    info = probe(paths[0])
    assert info.num_frames == 8 and (info.width, info.height) == (32, 32)
    again = S.make_split(tmp_path / "again", "heldout", 6, seed=5, size=32, num_frames=8, distinct=True)
    assert json.loads(again.read_text()) == json.loads(ann.read_text())
    with pytest.raises(ValueError):
        S.make_split(tmp_path, "x", 81, seed=0, distinct=True)


def test_sequence_video_spans(tmp_path):
    from vidsearch.media import probe, read_frames

    acts = [
        S.Action("red", "circle", "left"),
        S.Action("blue", "square", "down"),
        S.Action("yellow", "triangle", "right"),
    ]
    spans = S.make_sequence_video(tmp_path / "seq.mp4", acts, seed=2, size=64, frames_per_action=8, fps=8)
    assert [s.caption for s in spans] == [a.caption for a in acts]
    assert [(s.start_frame, s.end_frame) for s in spans] == [(0, 8), (8, 16), (16, 24)]
    assert spans[1].start == pytest.approx(1.0) and spans[2].end == pytest.approx(3.0)
    info = probe(tmp_path / "seq.mp4")
    assert info.num_frames == 24
    # the middle frame of each span shows that span's colour
    frames, _ = read_frames(tmp_path / "seq.mp4", [4, 12, 20], 64)
    for f, a in zip(frames, acts, strict=False):
        d = np.abs(f.astype(np.int32) - np.asarray(S.COLOURS[a.colour])).sum(-1)
        assert (d < 60).sum() >= 10


def test_reverse_pairs_swap_every_direction_wording_of_both_grammars():
    import re

    from vidsearch.testing.domains import DIRECTION_WORDS, HELDOUT_GRAMMAR, TRAIN_GRAMMAR
    from vidsearch.train.data import parse_reverse_pairs, swap_words

    pairs = parse_reverse_pairs(S.REVERSE_PAIRS)
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}

    def names(caption: str, direction: str) -> bool:
        return any(re.search(rf"\b{p}\b", caption) for p in DIRECTION_WORDS[direction])

    rng = np.random.default_rng(0)
    for grammar in (TRAIN_GRAMMAR, HELDOUT_GRAMMAR):
        for d in opposite:
            for _ in range(40):  # every template and synonym gets drawn
                cap = grammar.caption("red", "circle", d, rng)
                swapped = swap_words(cap, pairs)
                assert swapped is not None and names(swapped, opposite[d]) and not names(swapped, d), (cap, swapped)
                assert swap_words(swapped, pairs) == cap
