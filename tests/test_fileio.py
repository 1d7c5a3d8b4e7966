"""vidsearch.fileio: atomic, durable writes with unique temporary names, and stale-temp cleanup."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vidsearch.fileio import atomic_write, atomic_write_text, clean_stale_temps
from vidsearch.store.library import Library


def write_temp(path: Path, age_s: float = 0.0) -> Path:
    """A leftover temporary file whose last write was ``age_s`` seconds ago."""
    path.write_bytes(b"half a file")
    when = os.stat(path).st_mtime - age_s
    os.utime(path, (when, when))
    return path


def test_write_replaces_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    target = tmp_path / "sub" / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
    assert len(synced) == 4  # the file and its folder, per write


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    atomic_write(target, lambda fh: fh.write(b"old"))

    def broken(fh) -> None:
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_concurrent_writers_use_their_own_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    inside = threading.Barrier(2)
    names: list[str] = []

    def write(text: str) -> None:
        def body(fh) -> None:
            names.append(fh.name)
            inside.wait(timeout=10)  # both temp files exist at the same time
            fh.write(text.encode())

        atomic_write(target, body)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("a" * 1000, "b" * 1000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 2
    assert target.read_text() in ("a" * 1000, "b" * 1000)


def test_clean_stale_temps(tmp_path: Path) -> None:
    target = tmp_path / "space-1.faiss"
    target.write_bytes(b"index")
    stale = write_temp(tmp_path / ".space-1.faiss.abc123.tmp", age_s=3600)
    fresh = write_temp(tmp_path / ".space-1.faiss.def456.tmp")
    other = write_temp(tmp_path / ".space-2.faiss.abc123.tmp")
    unrelated = write_temp(tmp_path / ".space-1.faiss.abc.tmp.keep", age_s=3600)
    assert clean_stale_temps(tmp_path, "space-1.faiss", min_age_s=600) == 1
    assert not stale.exists() and fresh.exists() and other.exists() and target.exists()
    assert clean_stale_temps(tmp_path, "space-1.faiss") == 1 and not fresh.exists() and other.exists()
    assert clean_stale_temps(tmp_path, "*.faiss") == 1 and not other.exists()
    assert target.exists() and unrelated.exists()


def test_library_open_removes_stale_index_temps(tmp_path: Path) -> None:
    """A crash mid-save leaves a temporary index file; the next open removes it once it is stale."""
    with Library.open(tmp_path / "lib") as library:
        folder = library.index_path(1).parent
    folder.mkdir(parents=True)
    stale = write_temp(folder / ".space-1.faiss.x1y2z3.tmp", age_s=3600)
    live = write_temp(folder / ".space-1.faiss.a1b2c3.tmp")  # a save in progress elsewhere
    with Library.open(tmp_path / "lib"):
        pass
    assert not stale.exists() and live.exists()
