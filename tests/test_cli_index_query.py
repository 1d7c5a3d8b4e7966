"""End-to-end: `vidsearch index` / `query` / `info` / `remove` / `reindex` on generated videos."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import videogen
from faults import FaultPlan, injected
from typer.testing import CliRunner

from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    # VIDSEARCH_FAULT_INJECT in `env`: the decoders of this run misbehave (tests/faults.py)
    with injected(FaultPlan.from_env(env or {})):
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout


def run_json(*args: str, env: dict[str, str] | None = None, expect: int = 0):
    code, out = run(*args, "--json", env=env)
    assert code == expect, out
    return json.loads(out)


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    videogen.write_video(folder / "gradient.mp4", seconds=3, fps=10, pattern="gradient", color=(200, 40, 40))
    videogen.write_video(folder / "square.mp4", seconds=3, fps=10, pattern="moving_square", color=(40, 200, 40))
    # Long enough for overlapping windows (default: videos over 12 s, 8 s windows every 4 s).
    videogen.write_video(folder / "sub dir" / "long noise.mkv", seconds=20, fps=5, pattern="noise", gop=25)
    return folder


def index_args(folder: Path, lib: Path, ckpt: Path) -> list[str]:
    return ["index", str(folder), "--library", str(lib), "--model", str(ckpt), "--workers", "1"]


def check_consistent(lib: Path) -> dict:
    """FAISS agrees with SQLite: same ids, no duplicates."""
    from vidsearch.store.library import Library

    with Library.open(lib, create=False) as library:
        for space in library.spaces():
            index = library.vector_index(space)
            ids = np.sort(index.ids())
            assert np.array_equal(ids, library.segment_ids(space.id))
            assert len(np.unique(ids)) == len(ids)
        return library.stats()


def test_index_then_query(videos: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    report = run_json(*index_args(videos, lib, tiny_checkpoint))
    assert report["added"] == 3 and report["failed"] == [] and report["model_loaded"]
    # 1 whole-video segment each, plus windows for the 20 s video: 0-8, 4-12, 8-16, 12-20.
    assert report["segments"] == 3 + 4
    # every stage is timed, and the run's wall time covers them all
    assert set(report["stage_seconds"]) == {"decode", "encode", "commit"}
    assert all(v > 0 for v in report["stage_seconds"].values())
    assert sum(report["stage_seconds"].values()) <= report["seconds"] + 0.01
    stats = check_consistent(lib)
    assert stats["videos_indexed"] == 3 and stats["spaces"][0]["segments"] == 7

    hits = run_json("query", "a green square moving", "--library", str(lib), "-k", "5")
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert {Path(h["path"]).name for h in hits} == {"gradient.mp4", "square.mp4", "long noise.mkv"}
    for h in hits:
        assert {"rank", "path", "score", "start", "end"} <= h.keys()
        assert 0.0 <= h["start"] < h["end"]
        assert h["matched"] == ["vectors"]  # the retrievers that found it
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    long_hit = next(h for h in hits if h["path"].endswith("long noise.mkv"))
    assert long_hit["kind"] == "window" and long_hit["end"] - long_hit["start"] == pytest.approx(8.0)

    # A video query with a file of the library finds that file first, with score ~1.
    for name in ("square.mp4", "sub dir/long noise.mkv"):
        hits = run_json("query", "--video", str(videos / name), "--library", str(lib))
        assert Path(hits[0]["path"]) == (videos / name).absolute()
        assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)

    # An image is a still clip: it ranks the library like a video query.
    from PIL import Image

    Image.fromarray(videogen.make_frame(5, (160, 120), color=(40, 200, 40))).save(tmp_path / "still.png")
    hits = run_json("query", "--video", str(tmp_path / "still.png"), "--library", str(lib))
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(-1.0 <= h["score"] <= 1.0 for h in hits)

    # A span of the long video matches the window covering it best.
    hits = run_json(
        "query",
        "--video",
        str(videos / "sub dir" / "long noise.mkv"),
        "--start",
        "8",
        "--end",
        "16",
        "--library",
        str(lib),
    )
    assert hits[0]["path"].endswith("long noise.mkv")
    assert (hits[0]["start"], hits[0]["end"]) == (8.0, 16.0)
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)

    # Filters.
    assert len(run_json("query", "anything", "--library", str(lib), "--min-score", "1")) == 0  # above every text score
    only = run_json("query", "anything", "--library", str(lib), "--path", "*.mkv")
    assert [Path(h["path"]).name for h in only] == ["long noise.mkv"]
    short = run_json("query", "anything", "--library", str(lib), "--max-duration", "5")
    assert {Path(h["path"]).name for h in short} == {"gradient.mp4", "square.mp4"}
    assert len(run_json("query", "anything", "--library", str(lib), "-k", "1")) == 1

    # The table output names the videos.
    code, out = run("query", "green square", "--library", str(lib))
    assert code == 0 and "square.mp4" in out


def test_incremental_runs(videos: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    run_json(*index_args(videos, lib, tiny_checkpoint))

    # Unchanged folder: no model load and no decoding (every decode would crash here).
    crash_all = {"VIDSEARCH_FAULT_INJECT": "crash:" + str(videos)}
    again = run_json(*index_args(videos, lib, tiny_checkpoint), env=crash_all)
    assert (again["added"], again["updated"], again["unchanged"], again["model_loaded"]) == (0, 0, 3, False)

    # Renamed and moved: recognized by content, keeps its embeddings, nothing encoded.
    (videos / "moved").mkdir()
    shutil.move(videos / "square.mp4", videos / "moved" / "renamed square.mp4")
    moved = run_json(*index_args(videos, lib, tiny_checkpoint), env=crash_all)
    assert (moved["moved"], moved["added"], moved["removed"], moved["model_loaded"]) == (1, 0, 0, False)
    hits = run_json("query", "--video", str(videos / "moved" / "renamed square.mp4"), "--library", str(lib))
    assert hits[0]["path"].endswith("renamed square.mp4") and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)

    # Touched but identical: no re-encoding either.
    os.utime(videos / "gradient.mp4", ns=(1_000_000_000, 1_000_000_000))
    touched = run_json(*index_args(videos, lib, tiny_checkpoint), env=crash_all)
    assert (touched["touched"], touched["updated"], touched["model_loaded"]) == (1, 0, False)

    # Changed content: re-encoded, old rows and vectors replaced.
    videogen.write_video(videos / "gradient.mp4", seconds=2, fps=10, pattern="noise")
    changed = run_json(*index_args(videos, lib, tiny_checkpoint))
    assert (changed["updated"], changed["added"], changed["unchanged"]) == (1, 0, 2)
    stats = check_consistent(lib)
    assert stats["spaces"][0]["segments"] == 7

    # Deleted: forgotten, its vectors gone.
    (videos / "gradient.mp4").unlink()
    deleted = run_json(*index_args(videos, lib, tiny_checkpoint), env=crash_all)
    assert deleted["removed"] == 1 and deleted["model_loaded"] is False
    stats = check_consistent(lib)
    assert stats["videos_indexed"] == 2 and stats["spaces"][0]["segments"] == 6
    assert all(not h["path"].endswith("gradient.mp4") for h in run_json("query", "x", "--library", str(lib)))


def test_info_remove_reindex(videos: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    run_json(*index_args(videos, lib, tiny_checkpoint))
    info = run_json("info", "--library", str(lib))
    assert info["videos_indexed"] == 3 and info["videos_failed"] == 0
    space = info["spaces"][0]
    assert space["key"].startswith("viclip-custom") and space["dim"] == 32 and space["index_vectors"] == 7

    index_file = Path(space["index_file"])
    index_file.unlink()  # a missing index is rebuilt from the stored embeddings
    assert len(run_json("query", "x", "--library", str(lib))) == 3
    assert index_file.exists()

    rebuilt = run_json("reindex", "--library", str(lib))
    assert rebuilt[0]["vectors"] == 7

    removed = run_json("remove", str(videos / "sub dir"), "--library", str(lib))
    assert removed == {"removed": 1}
    stats = check_consistent(lib)
    assert stats["videos_indexed"] == 2 and stats["spaces"][0]["segments"] == 2
    code, out = run("info", "--library", str(lib))
    assert code == 0 and "videos indexed: 2" in out


def test_bad_corpus_never_stops_a_run(tmp_path: Path, tiny_checkpoint: Path) -> None:
    corpus = tmp_path / "corpus"
    expected = videogen.make_bad_corpus(corpus)
    lib = tmp_path / "lib"
    report = run_json(*index_args(corpus, lib, tiny_checkpoint), expect=1)
    failed = {Path(f["path"]).relative_to(corpus.absolute()).as_posix(): f["reason"] for f in report["failed"]}
    for name, exp in expected.items():
        if exp.get("kind") in ("dir", "symlink_loop") or not name.endswith((".mp4", ".mkv", ".avi", ".webm")):
            continue  # not video files to a folder scan
        if exp["ok"] is True:
            assert name not in failed, f"{name} should index: {failed.get(name)}"
        elif exp["ok"] is False:
            assert name in failed, f"{name} should fail"
            assert "\n" not in failed[name] and exp["reason"] in failed[name].lower(), failed[name]
    stats = check_consistent(lib)
    assert stats["videos_failed"] == len(failed)
    assert {Path(f["path"]).name for f in stats["failed"]} >= {"empty.mp4", "text.mp4", "truncated.mp4"}
    # The library still answers, and a second run retries nothing and keeps the exit code.
    assert run_json("query", "anything", "--library", str(lib), "-k", "50")
    again = run_json(*index_args(corpus, lib, tiny_checkpoint), expect=1)
    assert (
        again["failed_unchanged"] == len(failed) - sum(1 for n in failed if "dangling" in n)
        and again["model_loaded"] is False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "/does/not/exist"], "is not a directory"),
        (["index", "{videos}", "--model", "viclip-nonsense"], "viclip-b16"),
        (["query", "   "], "query text is empty"),
        (["query"], "give either a query TEXT, --video FILE or --said PHRASE"),
        (["query", "x", "--library", "{empty}"], "run `vidsearch index"),
    ],
)
def test_bad_arguments_one_line_error(args: list[str], message: str, videos: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "empty").mkdir()
    args = [a.format(videos=videos, empty=tmp_path / "empty") for a in args]
    env = {**os.environ, "VIDSEARCH_LIBRARY": str(tmp_path / "lib")}
    proc = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_exit_code_says_whether_anything_failed(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Through the real entry point: 0 when all indexed, 1 when a file failed (also when not retried)."""
    import subprocess
    import sys

    folder = tmp_path / "videos"
    videogen.write_video(folder / "good.mp4", seconds=1)
    cmd = [sys.executable, "-m", "vidsearch.cli", *index_args(folder, tmp_path / "lib", tiny_checkpoint)]
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
    (folder / "bad.mp4").write_text("not a video")
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 1
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 1  # still failed, not retried
