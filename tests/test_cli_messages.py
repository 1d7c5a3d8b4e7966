"""Messages that said the wrong thing: a folder or a device given as weights, and bidi controls
in names printed raw (a right-to-left override reorders what the terminal shows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import videogen
from test_cli_hardening import one_line_error, run_main

from vidsearch.cli.format import plain, shown
from vidsearch.store.library import Library
from vidsearch.store.schema import Video, VideoStatus


@pytest.mark.parametrize(
    "model, says",
    [
        ("{dir}", "is a directory, not a file"),
        ("/dev/zero", "is not a regular file"),
        ("{dir}/no.pth", "does not exist"),
    ],
)
def test_model_paths_say_what_they_are(tmp_path: Path, model: str, says: str) -> None:
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=1, fps=10, size=(64, 48))  # so a model is needed
    code, _, err = run_main(
        "index", str(tmp_path / "v"), "--library", str(tmp_path / "lib"), "--model", model.format(dir=tmp_path)
    )
    one_line_error(code, err, says)


@pytest.mark.parametrize("control", ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200f", "\u061c"])
def test_bidi_controls_are_escaped(control: str) -> None:
    name = f"evil{control}4pm.exe"
    assert control not in plain(name) and control not in shown(name)
    assert f"\\u{ord(control):04x}" in plain(name)


def test_info_escapes_a_bidi_control_in_a_failed_file_name(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib, lib.session() as s:
        s.add(
            Video(
                path="/v/evil\u202e4pm.exe",
                size=1,
                mtime_ns=1,
                fingerprint="x",
                status=VideoStatus.FAILED,
                error="cannot decode",
            )
        )
    code, out, err = run_main("info", "--library", str(tmp_path / "lib"))
    assert code == 0, err
    assert "\u202e" not in out and "evil\\u202e4pm.exe" in out
