"""End-to-end: subtitled and spoken videos through `index`, `query --said/--mode`, `transcribe`, `transcript`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import speechgen
import videogen
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app, bare_ray_flag

runner = CliRunner()

BRIDGE = [(1.0, 3.0, "Good morning everyone"), (4.0, 6.0, "the bridge is closed today")]
LECTURE = [(0.5, 2.5, "welcome to the lecture on rivers")]
TRAIN = [(1.0, 3.0, "the train leaves at noon")]
CAFE = [(0.5, 2.5, "Le café est fermé")]


def run_json(*args: str, expect: int = 0) -> dict | list:
    result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == expect, result.stdout
    return json.loads(result.stdout)


def _make_folder(folder: Path) -> None:
    videogen.write_video(folder / "bridge.mp4", seconds=7, fps=5, pattern="gradient", color=(200, 40, 40))
    speechgen.write_srt(folder / "bridge.srt", BRIDGE)
    videogen.write_video(folder / "lecture.mp4", seconds=4, fps=5, pattern="moving_square", color=(40, 200, 40))
    speechgen.write_vtt(folder / "lecture.en.vtt", LECTURE)
    src = videogen.write_video(folder.parent / "train_src.mp4", seconds=4, fps=5, pattern="noise")
    srt = speechgen.write_srt(folder.parent / "train.srt", TRAIN)
    speechgen.embed_subtitles(src, srt, folder / "train.mp4", "mov_text", "eng")
    videogen.write_video(folder / "cafe.mp4", seconds=4, fps=5, pattern="gradient", color=(40, 40, 200))
    speechgen.write_srt(folder / "cafe.fr.srt", CAFE, encoding="cp1252")
    videogen.write_video(folder / "broken.mp4", seconds=3, fps=5, pattern="gradient", color=(120, 120, 120))
    (folder / "broken.srt").write_bytes(b"1\n00:00:0x --> garbage\n\xff\xfe\x00 not a subtitle\n")
    videogen.write_video(folder / "plain.mp4", seconds=3, fps=5, pattern="moving_square", color=(200, 200, 40))
    # audio whose every packet is damaged: the video is indexed, the transcript records why not
    with_audio = videogen.write_video(folder.parent / "audio_src.mp4", seconds=3, fps=5, audio=True)
    subprocess.run(
        [speechgen.ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(with_audio), "-c", "copy"]
        + ["-bsf:a", "noise=amount=-1", str(folder / "corrupt.mkv")],
        check=True,
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> tuple[Path, Path, str]:
    """(folder, library, checkpoint): the subtitled folder indexed once (subtitles need no flag)."""
    root = tmp_path_factory.mktemp("speech")
    folder, lib = root / "videos", root / "lib"
    _make_folder(folder)
    out = run_json("index", str(folder), "--library", str(lib), "--model", str(tiny_checkpoint), "--workers", "1")
    assert out["added"] == 7 and not out["failed"]  # the damaged audio does not fail the video
    said = out["transcripts"]
    assert said["transcribed"] == 4 and said["lines"] == 5 and said["unchanged"] == 0
    assert any("cp1252" in n["note"] for n in said["notes"])
    return folder, lib, str(tiny_checkpoint)


def query(lib: Path, *args: str) -> list[dict]:
    return run_json("query", *args, "--library", str(lib))  # type: ignore[return-value]


def test_said_phrase_finds_the_video_the_span_and_the_words(indexed: tuple[Path, Path, str]) -> None:
    folder, lib, _ = indexed
    hits = query(lib, "--said", "bridge is closed")
    assert [Path(h["path"]).name for h in hits] == ["bridge.mp4"]
    top = hits[0]
    assert top["why"] == "said" and top["matched"] == ["transcripts"]
    assert top["said"]["text"] == "the bridge is closed today" and top["said"]["match"] == "bridge is closed"
    # a subtitle line is timed as a whole: the span is placed by the words' position in it
    assert 4.0 <= top["start"] <= 4.5 and 5.0 <= top["end"] <= 6.0 and top["start"] == top["said"]["start"]
    assert query(lib, "--said", "closed bridge") == []  # a phrase: these words, in this order
    assert [Path(h["path"]).name for h in query(lib, "closed bridge", "--mode", "said")] == ["bridge.mp4"]


@pytest.mark.parametrize(
    ("phrase", "video", "text"),
    [
        ("cafe est ferme", "cafe.mp4", "Le café est fermé"),  # cp1252 file; diacritics folded
        ("lecture on rivers", "lecture.mp4", "welcome to the lecture on rivers"),  # .en.vtt
        ("train leaves", "train.mp4", "the train leaves at noon"),  # embedded mov_text
    ],
)
def test_every_subtitle_source_is_searchable(
    indexed: tuple[Path, Path, str], phrase: str, video: str, text: str
) -> None:
    _, lib, _ = indexed
    hits = query(lib, "--said", phrase)
    assert [Path(h["path"]).name for h in hits] == [video] and hits[0]["said"]["text"] == text


def test_modes_seen_said_both(indexed: tuple[Path, Path, str]) -> None:
    _, lib, _ = indexed
    seen = query(lib, "bridge", "--mode", "seen")
    assert len(seen) == 7 and all(h["why"] == "seen" and h["said"] is None for h in seen)
    said = query(lib, "bridge", "--mode", "said")
    assert [Path(h["path"]).name for h in said] == ["bridge.mp4"] and said[0]["why"] == "said"
    both = query(lib, "bridge")  # the default with transcripts: both, fused
    assert len(both) == 7 and Path(both[0]["path"]).name == "bridge.mp4"
    assert both[0]["why"] == "both" and both[0]["said"]["match"] == "bridge"
    assert {h["why"] for h in both[1:]} == {"seen"}
    # a spoken phrase plus what is seen: the vectors get the text, the transcripts the phrase
    mixed = query(lib, "a red gradient", "--said", "train leaves")
    assert Path(mixed[0]["path"]).name == "train.mp4" and mixed[0]["why"] == "both"
    result = runner.invoke(app, ["query", "x", "--mode", "heard", "--library", str(lib)])
    assert result.exit_code != 0


def test_transcript_command_formats_and_reasons(indexed: tuple[Path, Path, str]) -> None:
    folder, lib, _ = indexed
    got = run_json("transcript", str(folder / "bridge.mp4"), "--library", str(lib))
    assert got["source"] == "sidecar" and got["backend"] == "bridge.srt"
    assert [(x["start"], x["end"], x["text"]) for x in got["lines"]] == BRIDGE
    srt = runner.invoke(app, ["transcript", str(folder / "bridge.mp4"), "--library", str(lib), "--format", "srt"])
    assert srt.exit_code == 0 and "00:00:04,000 --> 00:00:06,000\nthe bridge is closed today" in srt.stdout
    vtt = runner.invoke(app, ["transcript", str(got["video_id"]), "--library", str(lib), "--format", "vtt"])
    assert vtt.stdout.startswith("WEBVTT") and "00:00:01.000 --> 00:00:03.000" in vtt.stdout
    broken = run_json("transcript", str(folder / "broken.mp4"), "--library", str(lib))
    assert broken["lines"] == [] and any("broken.srt" in n for n in broken["notes"])
    info = run_json("info", "--library", str(lib))
    assert info["transcripts"] == {"videos": 4, "videos_without_words": 3, "lines": 5}
    assert set(info["speech_backends"]) == {"whisper", "pocketsphinx"}
    assert "weak" in info["speech_backends"]["pocketsphinx"]["note"]


def test_rerun_adds_nothing_and_a_new_sidecar_is_picked_up(indexed: tuple[Path, Path, str], tmp_path: Path) -> None:
    folder, lib, ckpt = indexed
    copy = tmp_path / "lib"
    shutil.copytree(lib, copy)
    again = run_json("index", str(folder), "--library", str(copy), "--model", ckpt, "--workers", "1")
    assert again["unchanged"] == 7 and again["transcripts"]["transcribed"] == 0
    assert again["transcripts"]["unchanged"] == 7 and again["transcripts"]["lines"] == 0
    added = folder / "plain.srt"
    try:
        speechgen.write_srt(added, [(0.5, 1.5, "a yellow square moves")])
        out = run_json("transcribe", "--library", str(copy))
        assert out["transcribed"] == 1 and out["lines"] == 1 and out["unchanged"] == 6
        assert [Path(h["path"]).name for h in query(copy, "--said", "yellow square")] == ["plain.mp4"]
    finally:
        added.unlink()


def _segments(lib: Path) -> list[tuple]:
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute(
            "SELECT video_id, start, end, text FROM transcript_segments ORDER BY video_id, start"
        ).fetchall()


KILL_SCRIPT = """
import os, signal, sys
from vidsearch.indexer.transcribe import transcribe_library
from vidsearch.store.library import Library

def die(done):
    if done == 2:
        os.kill(os.getpid(), signal.SIGKILL)

with Library.open(sys.argv[1], create=False) as lib:
    transcribe_library(lib, None, after_commit=die)
"""


def test_kill_9_during_transcription_then_resume(indexed: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, lib, _ = indexed
    copy = tmp_path / "lib"
    shutil.copytree(lib, copy)
    want = _segments(copy)
    with sqlite3.connect(copy / "library.sqlite") as db:  # as if never transcribed
        db.execute("DELETE FROM transcripts")
        db.execute("DELETE FROM transcript_segments")
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(copy)], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    with sqlite3.connect(copy / "library.sqlite") as db:
        assert db.execute("SELECT count(*) FROM transcripts").fetchone()[0] == 2  # two committed, whole
    out = run_json("transcribe", "--library", str(copy))
    assert out["unchanged"] == 2 and out["transcribed"] + len(out["without_words"]) == 5
    got = _segments(copy)
    assert sorted(got) == sorted(want) and len(set(got)) == len(got)  # nothing lost, nothing twice
    with sqlite3.connect(copy / "library.sqlite") as db:  # the FTS index agrees with its table
        db.execute("INSERT INTO transcript_fts(transcript_fts, rank) VALUES ('integrity-check', 1)")
        hits = db.execute("SELECT count(*) FROM transcript_fts WHERE transcript_fts MATCH 'bridge'").fetchone()[0]
    assert hits == 1


def test_speech_backend_reasons_for_videos_without_usable_audio(
    indexed: tuple[Path, Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("pocketsphinx", reason="the speech extra is not installed")
    _, lib, _ = indexed
    copy = tmp_path / "lib"
    shutil.copytree(lib, copy)
    out = run_json("transcribe", "--backend", "pocketsphinx", "--library", str(copy))
    reasons = {Path(w["path"]).name: w["reason"] for w in out["without_words"]}
    assert "no audio track" in reasons["plain.mp4"]
    assert "cannot be decoded" in reasons["corrupt.mkv"]
    assert out["unchanged"] == 4  # subtitled videos keep their subtitles
    again = run_json("transcribe", "--backend", "pocketsphinx", "--library", str(copy))
    assert again["unchanged"] == 7 and not again["without_words"]  # the same backend is not retried


def test_whisper_offline_is_one_line_and_exit_2(tmp_path: Path, tiny_checkpoint: Path) -> None:
    pytest.importorskip("faster_whisper", reason="the speech extra is not installed")
    folder = tmp_path / "videos"
    videogen.write_video(folder / "a.mp4", seconds=1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    cmd = [sys.executable, "-m", "vidsearch.cli", "index", str(folder), "--library", str(tmp_path / "lib")]
    proc = subprocess.run(
        [*cmd, "--model", str(tiny_checkpoint), "--transcribe", "whisper:tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "hf download Systran/faster-whisper-tiny" in lines[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "lib" / "library.sqlite").exists()


def test_bare_transcribe_flag_means_whisper() -> None:
    assert bare_ray_flag(["index", "d", "--transcribe"]) == ["index", "d", "--transcribe=whisper"]
    assert bare_ray_flag(["index", "--transcribe", "d"]) == ["index", "--transcribe=whisper", "d"]
    assert bare_ray_flag(["index", "--transcribe", "pocketsphinx", "d"])[2] == "pocketsphinx"
    assert bare_ray_flag(["index", "--transcribe", "whisper:small"])[2] == "whisper:small"


class _NoModel:
    """An embedder that fails the test if a query asks it for anything."""

    def embed_text(self, *args: object) -> None:
        raise AssertionError("a said-only query used the video model")

    embed_file = rerank = embed_text


def test_said_only_queries_load_no_model(indexed: tuple[Path, Path, str]) -> None:
    from vidsearch.store.library import Library
    from vidsearch.usecases.query import Query, search

    _, lib, _ = indexed
    with Library.open(lib, create=False, read_only=True) as library:
        for query in (Query(said="bridge is closed"), Query(text="bridge", mode="said")):
            page = search(library, query, _NoModel())  # type: ignore[arg-type]
            assert [Path(h.path).name for h in page.hits] == ["bridge.mp4"] and page.hits[0].matched == ("transcripts",)
