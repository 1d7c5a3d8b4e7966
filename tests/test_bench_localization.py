"""Reading Charades-STA style localization annotations (vidsearch.bench.localization)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidsearch.bench.localization import read_localization_annotations
from vidsearch.errors import InputError


def test_read_localization_annotations(tmp_path: Path) -> None:
    f = tmp_path / "sta.txt"
    f.write_text(
        "3MSZA 24.3 30.4##person turn a light on.\n# comment\n\nAO8RW 0.0 6.9 a person is putting a book on a shelf.\n"
    )
    ms = read_localization_annotations(f)
    assert [(m.video, m.start, m.end, m.sentence) for m in ms] == [
        ("3MSZA", 24.3, 30.4, "person turn a light on."),
        ("AO8RW", 0.0, 6.9, "a person is putting a book on a shelf."),
    ]
    f.write_text("3MSZA 24.3##no end\n")
    with pytest.raises(InputError, match="line 1"):
        read_localization_annotations(f)
    f.write_text("3MSZA 5 2 backwards\n")
    with pytest.raises(InputError, match="start < end"):
        read_localization_annotations(f)
