"""The open-set rule written once: the default rule and user overrides (vidsearch.labels)."""

from __future__ import annotations

import pytest

from vidsearch.errors import InputError
from vidsearch.labels import (
    DEFAULT_MSP_THRESHOLD,
    DEFAULT_TEMPERATURE,
    OpenSetRule,
    default_rule,
    label_set_name,
    override_rule,
    read_templates,
)


def test_default_rule() -> None:
    assert default_rule() == OpenSetRule("msp", DEFAULT_TEMPERATURE, DEFAULT_MSP_THRESHOLD) == OpenSetRule()
    assert default_rule(0.02) == OpenSetRule("msp", 0.02, 0.5)
    assert default_rule(None).temperature == 0.01


def test_override_rule() -> None:
    rule = OpenSetRule("energy", 0.05, -1.0)
    assert override_rule(rule) == rule
    assert override_rule(rule, temperature=0.1) == OpenSetRule("energy", 0.1, -1.0)
    # back to msp: its default threshold, since energy's threshold has another scale
    assert override_rule(rule, score="msp") == OpenSetRule("msp", 0.05, DEFAULT_MSP_THRESHOLD)
    assert override_rule(default_rule(), score="maxcos", threshold=0.3) == OpenSetRule("maxcos", 0.01, 0.3)
    with pytest.raises(InputError, match="score energy needs a threshold"):
        override_rule(default_rule(), score="energy")
    with pytest.raises(InputError, match="msp, energy, maxcos"):
        override_rule(default_rule(), score="entropy", threshold=0.1)


def test_label_set_name_and_templates(tmp_path) -> None:
    assert label_set_name("ucf101") == "ucf101"
    assert label_set_name(tmp_path / "x.txt") == str((tmp_path / "x.txt").resolve())
    assert read_templates(None)[0] == "a video of a person {}."
    bad = tmp_path / "t.txt"
    bad.write_text("a video of {}\n# comment\nno slot here\n", encoding="utf-8")
    with pytest.raises(InputError, match="template 2"):
        read_templates(bad)
