"""Generator settings: per-clip domain randomisation, held-out presets, caption grammars."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from vidsearch.testing import synthetic as S
from vidsearch.testing.domains import HELDOUT_GRAMMAR, HELDOUT_SETTINGS, SETTINGS, TRAIN_GRAMMAR, get_setting


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def test_family_draws_a_different_look_per_clip_within_its_ranges():
    fam = get_setting("family")
    looks = [fam.draw(np.random.default_rng(i)) for i in range(200)]
    assert {(lk.width, lk.height) for lk in looks} == set(fam.sizes)
    assert {lk.background for lk in looks} == set(fam.backgrounds)
    frames = [lk.num_frames for lk in looks]
    assert min(frames) >= fam.frames[0] and max(frames) <= fam.frames[1] and len(set(frames)) > 5
    assert all(fam.noise[0] <= lk.noise <= fam.noise[1] for lk in looks)
    assert len({lk.crf for lk in looks}) > 5
    # same stream, same look
    assert fam.draw(np.random.default_rng(3)) == fam.draw(np.random.default_rng(3))


@pytest.mark.parametrize("name", HELDOUT_SETTINGS)
def test_heldout_settings_differ_from_training(name):
    fam, held = get_setting("family"), get_setting(name)
    assert held.grammar.templates and not set(held.grammar.templates) & set(fam.grammar.templates)
    differs = [
        not set(held.sizes) <= set(fam.sizes),
        set(held.shapes) != set(S.SHAPES),  # another shape set than the default four
        not set(held.backgrounds) <= set(fam.backgrounds),
        held.radius[0] < fam.radius[0] or held.radius[1] > fam.radius[1],
        held.travel[0] < fam.travel[0] or held.travel[1] > fam.travel[1],
        held.frames[0] < fam.frames[0] or held.frames[1] > fam.frames[1],
        held.crf[1] > fam.crf[1],
    ]
    assert sum(differs) >= 1, differs  # besides the caption grammar, checked above
    # every caption word naming the action is one training captions use: a model trained from
    # scratch cannot read a word it never saw
    assert set(held.colours) <= set(fam.colours) and set(held.shapes) <= set(fam.shapes)
    assert len(S.setting_actions(held)) >= 80  # 80 distinct captions for a held-out split


def test_grammars_reword_the_same_action():
    rng = np.random.default_rng(0)
    train = {TRAIN_GRAMMAR.caption("red", "circle", "left", rng) for _ in range(300)}
    held = {HELDOUT_GRAMMAR.caption("red", "circle", "left", rng) for _ in range(300)}
    assert len(train) > 30 and len(held) > 15 and not train & held
    assert all("red" in c for c in train | held)
    assert all(_words(c) & {"circle", "disc", "ball"} and _words(c) & {"left", "leftwards"} for c in train | held)
    # held-out captions only add function words to the training vocabulary
    vocab = set().union(*map(_words, train))
    assert set().union(*map(_words, held)) - vocab <= {"one", "which", "coloured"}
    assert S.Action("red", "circle", "left").caption == get_setting("default").grammar.caption(
        "red", "circle", "left", rng
    )
    with pytest.raises(ValueError, match="family"):
        get_setting("nope")


def test_new_shapes_render_and_opposite_moves_stay_reversed():
    look = dataclasses.replace(
        get_setting("family").draw(np.random.default_rng(1)), width=48, height=64, num_frames=6, noise=0.0
    )
    for shape in ("diamond", "star"):
        left = S.render_look(S.Action("green", shape, "left"), np.random.default_rng(7), look)
        right = S.render_look(S.Action("green", shape, "right"), np.random.default_rng(7), look)
        assert left.shape == (6, 64, 48, 3) and np.array_equal(left, right[::-1])
        d = np.abs(left[0].astype(np.int32) - np.asarray(S.COLOURS["green"])).sum(-1)
        assert (d < 60).sum() >= 10
    noisy = dataclasses.replace(look, noise=8.0)
    assert not np.array_equal(
        S.render_look(S.Action("red", "star", "up"), np.random.default_rng(2), noisy),
        S.render_look(S.Action("red", "star", "up"), np.random.default_rng(2), look),
    )
    with pytest.raises(ValueError):
        S.render_look(S.Action("red", "hexagon", "up"), np.random.default_rng(0), look)


def test_make_split_of_a_setting_is_seeded_and_labels_its_actions(tmp_path):
    from vidsearch.media import probe

    ann = S.make_split(tmp_path, "tf", 12, seed=4, setting="tiny-fast", distinct=True)
    again = S.make_split(tmp_path / "again", "tf", 12, seed=4, setting="tiny-fast", distinct=True)
    records = json.loads(ann.read_text())
    assert records == json.loads(again.read_text())
    assert len({r["caption"] for r in records}) == 12 and {r["setting"] for r in records} == {"tiny-fast"}
    assert {r["shape"] for r in records} <= set(get_setting("tiny-fast").shapes)
    # the group is the action worded canonically, whatever the caption's wording
    assert all(r["group"] == S.Action(r["colour"], r["shape"], r["direction"]).caption for r in records)
    info = probe(tmp_path / "tf" / records[0]["video"])
    assert (info.width, info.height, info.num_frames) == (40, 40, 10)
    fam = json.loads(S.make_split(tmp_path, "fam", 8, seed=4, setting="family").read_text())
    sizes = {probe(tmp_path / "fam" / r["video"]).width for r in fam}
    assert len(sizes) > 1  # drawn per clip
    with pytest.raises(ValueError):
        S.make_split(
            tmp_path, "x", len(S.setting_actions(get_setting("wide"))) + 1, seed=0, setting="wide", distinct=True
        )


def test_action_pairs_work_for_any_wording():
    records = [
        {"colour": "red", "shape": "star", "direction": "left", "caption": "star, red, going left"},
        {"colour": "red", "shape": "star", "direction": "up", "caption": "x"},
        {"colour": "red", "shape": "star", "direction": "right", "caption": "heading to the right is the red star"},
        {"colour": "blue", "shape": "star", "direction": "down", "caption": "y"},
        {"colour": "blue", "shape": "star", "direction": "up", "caption": "z"},
    ]
    assert S.action_pairs(records) == [(0, 2), (4, 3)]


def test_every_preset_is_listed_and_described():
    assert {"default", "family", *HELDOUT_SETTINGS} == set(SETTINGS)
    assert all(s.description for s in SETTINGS.values())
