"""SIGKILL at any moment of `vidsearch index` leaves a library that opens, answers, and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import videogen
from conftest import default_sigint
from faults import plugin_env

from vidsearch.store.library import Library

N_VIDEOS = 6


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash-videos")
    for i in range(N_VIDEOS):
        videogen.write_video(root / f"v{i}.mp4", seconds=2, fps=8, pattern="noise" if i % 2 else "moving_square")
    return root


def index_cmd(folder: Path, lib: Path, ckpt: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vidsearch.cli",
        "index",
        str(folder),
        "--library",
        str(lib),
        "--model",
        str(ckpt),
        "--workers",
        "1",
        "--batch-size",
        "1",
        "--json",
    ]


def crashing_index_cmd(folder: Path, lib: Path, ckpt: Path, crash_after: int) -> list[str]:
    """The same run as `index_cmd`, told to SIGKILL itself right after its `crash_after`-th commit."""
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[5])\n"
        "from faults import crash_after_commits\n"
        "from vidsearch.indexer.pipeline import IndexOptions, Stages, index_folder\n"
        "from vidsearch.store.library import Library\n"
        "folder, lib, ckpt, n = sys.argv[1:5]\n"
        "with Library.open(lib) as library:\n"
        "    stages = Stages(sink=crash_after_commits(int(n)))\n"
        "    index_folder(library, folder, IndexOptions(model=ckpt, workers=1, batch_size=1), stages=stages)\n"
    )
    tests = str(Path(__file__).resolve().parent)
    return [sys.executable, "-c", script, str(folder), str(lib), str(ckpt), str(crash_after), tests]


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def assert_consistent(lib: Path) -> int:
    """The library opens, FAISS holds exactly SQLite's vectors, a query answers. Returns #videos."""
    with Library.open(lib, create=False) as library:
        spaces = library.spaces()
        if not spaces:
            return 0
        space = spaces[0]
        index = library.vector_index(space)
        db_ids = library.segment_ids(space.id)
        assert np.array_equal(np.sort(index.ids()), db_ids)
        from vidsearch.search import search_vectors

        hits = search_vectors(library, space, np.ones(space.dim, dtype=np.float32) / np.sqrt(space.dim), k=N_VIDEOS)
        stats = library.stats()
        assert len(hits) == stats["videos_indexed"] == len(db_ids)  # one segment per 2 s video
        return stats["videos_indexed"]


def test_kill_after_commits_then_resume(folder: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    committed = 0
    for crash_after in (1, 3):  # the second run resumes, commits 3 more videos, and dies again
        proc = subprocess.run(
            crashing_index_cmd(folder, lib, tiny_checkpoint, crash_after),
            env=env_with(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        committed += crash_after
        # Killed before the FAISS file was saved: the committed vectors are recovered from SQLite.
        assert assert_consistent(lib) == committed
    proc = subprocess.run(
        index_cmd(folder, lib, tiny_checkpoint), env=env_with(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["added"], report["unchanged"]) == (N_VIDEOS - committed, committed)
    assert assert_consistent(lib) == N_VIDEOS


def test_kill_at_random_moments(folder: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    for delay in (1.0, 3.0, 5.0):
        proc = subprocess.Popen(
            index_cmd(folder, lib, tiny_checkpoint), env=env_with(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        if lib.joinpath("library.sqlite").exists():
            assert_consistent(lib)
    proc = subprocess.run(
        index_cmd(folder, lib, tiny_checkpoint), env=env_with(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert assert_consistent(lib) == N_VIDEOS


def _indexed_count(lib: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{lib / 'library.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select count(*) from videos where status = 'indexed'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def signal_index_run(folder: Path, lib: Path, ckpt: Path, sig: int) -> tuple[int, str]:
    """Start `vidsearch index`, send ``sig`` once 2 videos are committed; ``(exit code, stderr)``."""
    # The last video's decoder hangs, so the run is surely still going when the signal arrives.
    env = plugin_env(VIDSEARCH_FAULT_INJECT=f"hang:v{N_VIDEOS - 1}.mp4")
    proc = subprocess.Popen(
        index_cmd(folder, lib, ckpt),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _indexed_count(lib) < 2:
        time.sleep(0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_keeps_what_was_committed(folder: Path, tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib = tmp_path / "lib"
    code, err = signal_index_run(folder, lib, tiny_checkpoint, signal.SIGINT)
    assert code == 130, (code, err)
    assert "interrupted" in err and "Traceback" not in err
    done = assert_consistent(lib)
    assert 2 <= done < N_VIDEOS
    proc2 = subprocess.run(
        index_cmd(folder, lib, tiny_checkpoint), env=env_with(), capture_output=True, text=True, timeout=300
    )
    assert proc2.returncode == 0, proc2.stderr
    assert json.loads(proc2.stdout)["added"] == N_VIDEOS - done
    assert assert_consistent(lib) == N_VIDEOS
