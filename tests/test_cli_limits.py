"""Numbers past what any option means are refused up front (they overflowed later, with a
traceback, or failed every file), and `enrich recognize` says where its open-set rule came from."""

from __future__ import annotations

from pathlib import Path

import pytest
import videogen
from test_cli_hardening import one_line_error, run_main


@pytest.mark.parametrize(
    "args, says",
    [
        (["query", "--video", "{video}", "--end", "1e308"], "--end"),
        (["query", "--video", "{video}", "--start", "1e300", "--end", "1e301"], "--start"),
        (["enrich", "recognize", "--top", "99999999999999999999"], "--top"),
        (["enrich", "recognize", "--temperature", "1e-308"], "--temperature"),
        (
            ["enrich", "calibrate", "--annotations", "x.csv", "--videos", "{folder}", "--temperature", "1e-308"],
            "--temperature",
        ),
        (["localize", "{video}", "a dog", "--window", "1e308"], "--window"),
        (["localize", "{video}", "a dog", "--top", "0"], "--top"),
        (["index", "{folder}", "--window", "1e308"], "--window"),
        (["index", "{folder}", "--stride", "1e308"], "--stride"),
    ],
)
def test_huge_and_tiny_numbers_are_refused_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    video = videogen.write_video(tmp_path / "v" / "a.mp4", seconds=1, fps=10, size=(64, 48))
    filled = [a.format(video=video, folder=video.parent) for a in args]
    code, _, err = run_main(*filled, "--library", str(tmp_path / "lib"))
    one_line_error(code, err, says)
    assert not (tmp_path / "lib").exists()  # refused before any library was made


def test_recognize_names_where_its_rule_came_from(tmp_path: Path, tiny_checkpoint: Path) -> None:
    videogen.write_video(tmp_path / "v" / "a.mp4", seconds=2, fps=10, size=(64, 48))
    labels = tmp_path / "colours.txt"
    labels.write_text("red\ngreen\n")
    lib = str(tmp_path / "lib")
    code, _, err = run_main("index", str(tmp_path / "v"), "--library", lib, "--model", str(tiny_checkpoint))
    assert code == 0, err
    base = ("enrich", "recognize", "--library", lib, "--labels", str(labels))

    def rule_line(*extra: str) -> str:
        code, out, err = run_main(*base, *extra)
        assert code == 0, err
        return " ".join(out.split())  # the console wraps long lines

    assert "(default, not calibrated)" in rule_line()
    assert "unknown below 0.3 (as given, not calibrated)" in rule_line("--threshold", "0.3")
    # a plain re-run keeps the stored threshold: it is no default
    assert "unknown below 0.3 (kept from the last run, not calibrated)" in rule_line()
