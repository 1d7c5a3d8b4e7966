"""vidsearch.fileio: atomic, durable writes with unique temporary names, and stale-temp cleanup."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from vidsearch.fileio import atomic_write, atomic_write_text, clean_stale_temps


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
    stale = tmp_path / ".space-1.faiss.abc123.tmp"
    stale.write_bytes(b"half")
    old = os.stat(stale).st_mtime - 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".space-1.faiss.def456.tmp"
    fresh.write_bytes(b"being written")
    other = tmp_path / ".space-2.faiss.abc123.tmp"
    other.write_bytes(b"another target's")
    unrelated = tmp_path / ".space-1.faiss.abc.tmp.keep"
    unrelated.write_bytes(b"not ours")
    assert clean_stale_temps(tmp_path, "space-1.faiss", min_age_s=600) == 1
    assert not stale.exists() and fresh.exists() and other.exists() and target.exists()
    assert clean_stale_temps(tmp_path, "space-1.faiss") == 1 and not fresh.exists() and other.exists()
    assert clean_stale_temps(tmp_path, "*.faiss") == 1 and not other.exists()
    assert target.exists() and unrelated.exists()
