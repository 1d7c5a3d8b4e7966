"""The transcript pass (indexer.transcribe): a recognizer that fails on a video costs that video's words only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import videogen

from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.pipeline import index_folder
from vidsearch.indexer.transcribe import transcribe_library
from vidsearch.speech.transcript import Line
from vidsearch.store.library import Library


class FailingRecognizer:
    """A recognizer that raises on every video (what a library bug or exhausted memory looks like)."""

    name = "pocketsphinx"

    def transcribe(self, samples: np.ndarray) -> tuple[tuple[Line, ...], str | None]:
        raise RuntimeError("the decoder ran out of memory")


def test_a_failed_transcription_keeps_the_vectors_records_nothing_and_is_retried(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    folder = tmp_path / "videos"
    videogen.write_video(folder / "talk.mp4", seconds=2, fps=4, audio=True)
    videogen.write_video(folder / "other.mp4", seconds=2, fps=4, pattern="moving_square", audio=True)
    with Library.open(tmp_path / "lib", create=True) as lib:
        index_folder(lib, folder, IndexOptions(model=str(tiny_checkpoint), workers=1, device="cpu"))
        report = transcribe_library(lib, "pocketsphinx", transcriber=FailingRecognizer())
        assert report.failed == 2 and report.transcribed == 0 and report.lines == 0
        assert all("RuntimeError: the decoder ran out of memory" in r for _, r in report.without_words)
        assert report.to_dict()["failed"] == 2
        assert lib.stats()["videos_indexed"] == 2  # the vectors stay
        pytest.importorskip("pocketsphinx", reason="the speech extra is not installed")
        again = transcribe_library(lib, "pocketsphinx")  # nothing was recorded: both are tried again
        assert again.failed == 0 and again.unchanged == 0 and len(again.without_words) == 2
        assert transcribe_library(lib, "pocketsphinx").unchanged == 2  # now recorded: not again
