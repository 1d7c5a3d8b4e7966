"""Libraries that cannot be written (read-only folder, full disk) still answer every read
command, an empty `library.sqlite` is called empty, and a disk filling up during `index` is
reported in exactly one line."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
import videogen
from test_cli_hardening import one_line_error, run_main
from test_store_hardening import indexed_library, read_only_dir

from vidsearch.store.library import DB_NAME


def test_an_empty_database_file_is_called_empty_not_read_only(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / DB_NAME).write_bytes(b"")
    for args in (["info"], ["query", "a dog"]):
        code, _, err = run_main(*args, "--library", str(lib))
        one_line_error(code, err, "is empty (0 bytes)")
        assert "read-only" not in err
    assert (lib / DB_NAME).stat().st_size == 0  # a read command created nothing in it


def test_a_read_only_library_checks_and_backs_up(tmp_path: Path) -> None:
    _, lib = indexed_library(tmp_path)
    with read_only_dir(lib):
        code, out, err = run_main("info", "--check", "--library", str(lib))
        assert code == 0 and "check: OK" in out, (out, err)
        code, out, err = run_main("backup", str(tmp_path / "copy.sqlite"), "--library", str(lib))
        assert code == 0, err
    with sqlite3.connect(tmp_path / "copy.sqlite") as con:
        assert con.execute("SELECT count(*) FROM videos").fetchone()[0] == 3


def _tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    return subprocess.run(mount, capture_output=True).returncode == 0


def test_read_commands_answer_on_a_full_disk(tmp_path: Path) -> None:
    """16 KB left: query, info and backup still answer; a write says "disk full" in one line."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "8m"):
        pytest.skip("cannot mount a tmpfs here (needs root); the read-only test covers the immutable open")
    try:
        folder, lib = indexed_library(disk)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with open(disk / "filler", "wb") as fh:
            fh.write(b"\0" * max(0, free - 16_000))
        for f in lib.glob(f"{DB_NAME}-*"):  # as after a clean close: the next open must create them
            f.unlink()
        code, out, err = run_main("info", "--check", "--library", str(lib))
        assert code == 0 and "videos indexed: 3" in out and "check: OK" in out, (out, err)
        code, out, err = run_main("backup", str(tmp_path / "copy.sqlite"), "--library", str(lib))
        assert code == 0, err
        code, _, err = run_main("remove", str(folder / "v0.mp4"), "--library", str(lib))
        one_line_error(code, err, "disk full")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_disk_filling_up_during_index_is_one_line(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from vidsearch.store import segments
    from vidsearch.store.vectors import fileformat

    for i in range(2):
        videogen.write_video(tmp_path / "v" / f"{i}.mp4", seconds=1, fps=10, size=(64, 48))

    def full(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def full_file(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments, "add_segments", full)
    monkeypatch.setattr(fileformat, "atomic_write", full_file)
    lib = str(tmp_path / "lib")
    with caplog.at_level(logging.WARNING):
        code, _, err = run_main("index", str(tmp_path / "v"), "--library", lib, "--model", str(tiny_checkpoint))
    one_line_error(code, err, "disk full while writing")
    # a WARNING line would print before that one line (the index save hit the same full disk)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
