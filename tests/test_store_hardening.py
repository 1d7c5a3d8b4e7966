"""Issue 12, storage half: corrupted index files, disk full, corrupted or read-only libraries,
concurrent saves and removes, symlinked folders, undecodable names, FIFOs, --verify, SIGTERM.

Most tests drive the real index runner, store and commit stage with the fake decoder/encoder of
``test_index_stages`` (no model, milliseconds per file); the CLI ones use the tiny checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_index_stages import DIM, FakeDecoder, FakeEncoder
from typer.testing import CliRunner

from vidsearch import errors
from vidsearch.cli import commands  # noqa: F401  (registers the commands)
from vidsearch.cli.main import app
from vidsearch.errors import CheckpointError, LibraryError
from vidsearch.indexer.options import IndexOptions
from vidsearch.indexer.pipeline import Stages, index_files, index_folder
from vidsearch.store.library import DB_NAME, Library
from vidsearch.store.vectors import VectorIndex


def bytes_safe_encode(encoder: object, options: IndexOptions):
    """Like test_index_stages.fake_encode, seeded by the name's bytes (names need not be UTF-8)."""
    import zlib

    def encode(video):
        out = []
        for i in range(len(video.segments)):
            x = np.random.default_rng(zlib.crc32(os.fsencode(Path(video.path).name) + b"/%d" % i)).standard_normal(DIM)
            out.append((x / np.linalg.norm(x)).astype(np.float32))
        return np.stack(out)

    return encode


STAGES = Stages(decode=FakeDecoder, encode=bytes_safe_encode)
CLI = [sys.executable, "-m", "vidsearch.cli"]


def make_files(folder: Path, n: int, prefix: str = "v") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{prefix}{i}.mp4"
        p.write_bytes(os.urandom(256) + str(i).encode())
        paths.append(p)
    return paths


def fake_index(library: Library, folder: Path, **options: object):
    return index_folder(library, folder, IndexOptions(batch_size=1, **options), encoder=FakeEncoder(), stages=STAGES)


def indexed_library(tmp_path: Path, n: int = 3) -> tuple[Path, Path]:
    """``(folder, library)``: ``n`` fake videos in ``tmp_path/videos``, indexed into ``tmp_path/lib``."""
    folder, lib = tmp_path / "videos", tmp_path / "lib"
    make_files(folder, n)
    with Library.open(lib) as library:
        fake_index(library, folder)
    return folder, lib


def consistent(library: Library) -> int:
    """FAISS holds exactly SQLite's vectors; returns how many."""
    space = library.spaces()[0]
    index = library.vector_index(space, refresh=True)
    db_ids = library.segment_ids(space.id)
    assert np.array_equal(np.sort(index.ids()), db_ids)
    return len(db_ids)


def paths_in(library: Library) -> list[str]:
    from vidsearch.store.videos import snapshot

    with library.session() as s:
        return sorted(v.path for v in snapshot(s, None).videos)


# ------------------------------------------------------------------ 2: corrupted FAISS file
def test_corrupted_index_file_is_detected_and_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((300, 16)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    path = tmp_path / "space-1.faiss"
    VectorIndex.build(np.arange(300), xb).save(path)
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = os.urandom(64)  # what the adversarial pass did: faiss loads this happily
    path.write_bytes(bytes(raw))
    with pytest.raises(LibraryError, match="corrupted \\(checksum mismatch\\)"):
        VectorIndex.load(path)

    # In a library: one warning line, the index rebuilt from SQLite, sane scores.
    lib = tmp_path / "lib"
    make_files(tmp_path / "videos", 4)
    with Library.open(lib) as library:
        fake_index(library, tmp_path / "videos")
    ipath = lib / "indexes" / "space-1.faiss"
    raw = bytearray(ipath.read_bytes())
    raw[-40:-8] = b"\x7f" * 32  # overwrite vector bytes near the end
    ipath.write_bytes(bytes(raw))
    caplog.clear()
    with Library.open(lib) as library:
        from vidsearch.search import search_vectors

        space = library.spaces()[0]
        hits = search_vectors(library, space, np.ones(DIM, np.float32) / 2, k=4)
        assert len(hits) == 4 and all(-1.0 <= h.score <= 1.0 for h in hits)
        assert consistent(library) == 8
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "rebuilding" in warnings[0].getMessage() and "checksum" in warnings[0].getMessage()


def test_impossible_scores_are_never_shown() -> None:
    from vidsearch.search import _sane

    D = np.array([[5e34, 0.9, np.nan, 0.5, -0.99]], np.float32)
    I = np.array([[7, 1, 9, 2, 3]])
    D2, I2 = _sane(D, I)
    assert I2[0].tolist()[:3] == [1, 2, 3] and (I2[0][3:] == -1).all()
    assert (np.abs(D2[I2 >= 0]) <= 1.0).all()


# ------------------------------------------------------------------ 3: weights changed under a space
def test_changed_checkpoint_is_refused(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import shutil

    from conftest import make_tiny_checkpoint

    from vidsearch.models import EncoderSpec, open_encoder
    from vidsearch.store.spaces import SpaceInfo

    ckpt = tmp_path / "mine.pth"
    shutil.copy(tiny_checkpoint, ckpt)
    shutil.copy(tiny_checkpoint.with_suffix(".json"), ckpt.with_suffix(".json"))
    enc = open_encoder(EncoderSpec(str(ckpt), device="cpu"))
    space = SpaceInfo(id=1, key=enc.key, dim=enc.embed_dim, model_spec=dict(enc.spec), sampling={}, generation=0)
    assert open_encoder(EncoderSpec.for_space(space, device="cpu")).key == enc.key
    make_tiny_checkpoint(ckpt, seed=1)  # a second `finetune --out` to the same path
    with pytest.raises(CheckpointError) as e:
        open_encoder(EncoderSpec.for_space(space, device="cpu"))
    from vidsearch.cli.errors import message

    msg = str(e.value)
    old = enc.key.split("@")[1]
    assert "\n" not in msg and old in msg and "now" in msg and "restore" in msg
    # The library's words name no flag; the CLI's line adds the one to use.
    assert "--model" not in msg and "--model" in message(e.value)


# ------------------------------------------------------------------ 4: symlinked folders
@pytest.mark.parametrize("link_first", [True, False])
def test_link_and_folder_store_one_row_per_file(tmp_path: Path, link_first: bool) -> None:
    folder = tmp_path / "real"
    make_files(folder, 3)
    link = tmp_path / "link"
    link.symlink_to(folder, target_is_directory=True)
    with Library.open(tmp_path / "lib") as library:
        first, second = (link, folder) if link_first else (folder, link)
        assert fake_index(library, first).added == 3
        again = fake_index(library, second)
        assert again.added == 0 and again.removed == 0 and again.unchanged == 3
        assert paths_in(library) == sorted(str(folder.resolve() / f"v{i}.mp4") for i in range(3))
        assert consistent(library) == 6
        # Forgetting through the link forgets the real files.
        assert library.remove_paths([link / "v0.mp4"]) == 1


# ------------------------------------------------------------------ 6: undecodable file names
def test_undecodable_name_is_stored_losslessly(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    make_files(folder, 2)
    raw = os.fsencode(folder) + b"/caf\xe9-\xff.mp4"  # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as fh:
        fh.write(os.urandom(300))
    with Library.open(tmp_path / "lib") as library:
        report = fake_index(library, folder)
        assert report.added == 3 and report.failed == []
        stored = [p for p in paths_in(library) if "caf" in p]
        assert len(stored) == 1 and os.fsencode(stored[0]) == raw and os.path.exists(stored[0])
        assert fake_index(library, folder).unchanged == 3  # found again under the same key
    from vidsearch.paths import display_path

    assert display_path(stored[0]).endswith("caf\\xe9-\\xff.mp4")
    # JSON output round-trips the name, `info` prints it escaped.
    result = CliRunner().invoke(app, ["info", "--library", str(tmp_path / "lib"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    code = CliRunner().invoke(app, ["info", "--library", str(tmp_path / "lib")], catch_exceptions=False).exit_code
    assert code == 0


# ------------------------------------------------------------------ 7: FIFOs and other non-files
def test_fifo_is_skipped_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    make_files(folder, 2)
    os.mkfifo(folder / "pipe.mp4")
    with Library.open(tmp_path / "lib") as library:
        t0 = time.monotonic()
        report = fake_index(library, folder)
        assert time.monotonic() - t0 < 30
        assert report.added == 2 and report.failed == [(str(folder.resolve() / "pipe.mp4"), "not a regular file")]
        files = index_files(library, [folder / "pipe.mp4"], IndexOptions(), encoder=FakeEncoder(), stages=STAGES)
        assert [r for _, r in files.failed] == ["not a regular file"]


# ------------------------------------------------------------------ index --verify
def test_verify_finds_a_same_size_same_mtime_replacement(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    (path,) = make_files(folder, 1)
    with Library.open(tmp_path / "lib") as library:
        fake_index(library, folder)
        st = path.stat()
        path.write_bytes(os.urandom(st.st_size))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert fake_index(library, folder).unchanged == 1  # by design: stat looks the same
        report = fake_index(library, folder, verify=True)
        assert report.updated == 1 and report.unchanged == 0
        assert fake_index(library, folder, verify=True).unchanged == 1


# ------------------------------------------------------------------ 10: disk full
def _disk_full_at_commit(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    from vidsearch.store import segments

    real = segments.add_segments
    calls = {"n": 0}

    def add(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*a, **k)

    monkeypatch.setattr(segments, "add_segments", add)


def test_disk_full_is_one_line_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "videos"
    make_files(folder, 5)
    lib = tmp_path / "lib"
    with Library.open(lib) as library:
        _disk_full_at_commit(monkeypatch, after=2)
        with pytest.raises(errors.DiskFullError) as e:
            fake_index(library, folder)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"disk full while writing {lib / DB_NAME} (") and "MB free" in msg
        assert "nothing committed before this write was lost" in msg
        monkeypatch.undo()
        assert consistent(library) == 4
        assert fake_index(library, folder).added == 3
        assert consistent(library) == 10


def _tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    if os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )


def test_disk_full_on_a_real_full_disk(tmp_path: Path) -> None:
    """A 16 MB tmpfs really filling up (root only: the injection test above runs everywhere)."""
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "16m"):
        pytest.skip("cannot mount a tmpfs here (needs root); test_disk_full_is_one_line_and_resumes injects the error")
    try:
        folder = tmp_path / "videos"
        make_files(folder, 60)
        lib = disk / "lib"
        with Library.open(lib) as library:
            filler = disk / "filler"
            with open(filler, "wb") as fh:  # leave about 40 KB free
                free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
                fh.write(b"\0" * max(0, free - 40_000))
            with pytest.raises(errors.DiskFullError) as e:
                fake_index(library, folder)
            assert "\n" not in str(e.value) and "disk full while writing" in str(e.value)
            filler.unlink()
            done = consistent(library)
            fake_index(library, folder)
            assert consistent(library) == 120 > done
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


# ------------------------------------------------------------------ 11: corrupted library.sqlite
def _corrupt_db(lib: Path) -> None:
    db = lib / DB_NAME
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = con.execute("PRAGMA page_size").fetchone()[0]
        root = con.execute("select rootpage from sqlite_master where name = 'videos'").fetchone()[0]
    raw = bytearray(db.read_bytes())
    start = (root - 1) * page
    raw[start : start + page] = b"\xa5" * page  # the videos table's b-tree page
    db.write_bytes(bytes(raw))


def test_corrupted_database_is_reported_with_advice(tmp_path: Path) -> None:
    folder, lib = indexed_library(tmp_path)
    with Library.open(lib) as library:
        assert library.check() == []
        backup = library.backup(tmp_path / "backup.sqlite")
    _corrupt_db(lib)
    runner = CliRunner()
    with pytest.raises(errors.CorruptLibraryError) as e:
        runner.invoke(app, ["info", "--library", str(lib), "--check"], catch_exceptions=False)
    msg = str(e.value)
    assert "\n" not in msg and "corrupted" in msg and "backup" in msg and "vidsearch index DIR" in msg
    with pytest.raises(errors.CorruptLibraryError):
        with Library.open(lib) as library:
            fake_index(library, folder)
    # The backup made with `vidsearch backup` is whole and usable.
    os.replace(backup, lib / DB_NAME)
    for extra in ("-wal", "-shm"):
        (lib / (DB_NAME + extra)).unlink(missing_ok=True)
    with Library.open(lib) as library:
        assert library.check() == [] and consistent(library) == 6


def test_backup_command_while_writing(tmp_path: Path) -> None:
    folder, lib = indexed_library(tmp_path)
    dest = tmp_path / "copies"
    dest.mkdir()
    result = CliRunner().invoke(app, ["backup", str(dest), "--library", str(lib), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    out = Path(json.loads(result.stdout)["backup"])
    with contextlib.closing(sqlite3.connect(out)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("select count(*) from videos").fetchone()[0] == 3


def test_info_check_reports_a_damaged_index_file(tmp_path: Path) -> None:
    folder, lib = indexed_library(tmp_path)
    ipath = lib / "indexes" / "space-1.faiss"
    raw = bytearray(ipath.read_bytes())
    raw[-20:-10] = b"\x01" * 10
    ipath.write_bytes(bytes(raw))
    result = CliRunner().invoke(app, ["info", "--library", str(lib), "--check", "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 1 and "checksum" in problems[0]


# ------------------------------------------------------------------ 12: remove during enrich
class TextEncoder(FakeEncoder):
    temperature = 0.01

    def encode_text(self, texts):
        import zlib

        x = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM) for t in texts]).astype(
            np.float32
        )
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_remove_while_enrich_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `vidsearch remove` process deletes a video between enrich's check and its insert."""
    from vidsearch.enrich.recognize import recognize_library
    from vidsearch.store import segments

    folder = tmp_path / "videos"
    make_files(folder, 3)
    lib = tmp_path / "lib"
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\ncat\nbird\n")
    with Library.open(lib) as library:
        fake_index(library, folder)
    real = segments.existing_segment_ids
    procs: list[subprocess.Popen] = []

    def alive_then_remove(s, ids):
        alive = real(s, ids)
        if not procs:
            procs.append(
                subprocess.Popen(
                    [*CLI, "remove", str(folder / "v1.mp4"), "--library", str(lib)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            deadline = time.monotonic() + 15  # old code: the remove commits here; new: it waits for us
            while time.monotonic() < deadline and procs[0].poll() is None:
                time.sleep(0.2)
        return alive

    monkeypatch.setattr(segments, "existing_segment_ids", alive_then_remove)
    with Library.open(lib) as library:
        report = recognize_library(library, str(labels), encoder=TextEncoder())
    out, err = procs[0].communicate(timeout=120)
    assert procs[0].returncode == 0, err
    assert report.labelled == 6
    with contextlib.closing(sqlite3.connect(lib / DB_NAME)) as con:
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        assert con.execute("select count(*) from videos").fetchone()[0] == 2
        assert con.execute("select count(*) from segment_recognitions").fetchone()[0] == 4


# ------------------------------------------------------------------ 13: concurrent saves, read-only queries
SAVER = """
import sys, numpy as np
from vidsearch.errors import LibraryError
from vidsearch.store.vectors import VectorIndex
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
failed = torn = 0
for i in range(n):
    xb = rng.standard_normal((200 + seed, 8)).astype(np.float32)
    try:
        VectorIndex.build(np.arange(len(xb)), xb).save(path)
    except LibraryError:
        failed += 1
    try:
        VectorIndex.load(path)
    except LibraryError:
        torn += 1
print(failed, torn)
"""


def test_concurrent_saves_never_fail_or_tear(tmp_path: Path) -> None:
    path = tmp_path / "indexes" / "space-1.faiss"
    path.parent.mkdir()
    VectorIndex.empty(8).save(path)
    procs = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(seed), "20"], stdout=subprocess.PIPE, text=True)
        for seed in range(3)
    ]
    results = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert results == [["0", "0"]] * 3
    assert not list(path.parent.glob("*.tmp"))


def test_query_never_writes_the_index_and_stale_temps_are_cleaned(tmp_path: Path) -> None:
    folder, lib = indexed_library(tmp_path)
    with Library.open(lib) as library:
        library.remove_paths([folder / "v0.mp4"])  # SQLite moves on, the FAISS file is now stale
    ipath = lib / "indexes" / "space-1.faiss"
    before = ipath.read_bytes()
    with Library.open(lib, read_only=True) as library:
        from vidsearch.search import search_vectors

        hits = search_vectors(library, library.spaces()[0], np.ones(DIM, np.float32) / 2, k=5)
        assert {Path(h.path).name for h in hits} == {"v1.mp4", "v2.mp4"}  # synced in memory
    assert ipath.read_bytes() == before
    stale = ipath.parent / ".space-1.faiss.abc123.tmp"
    stale.write_bytes(b"half a save")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    with Library.open(lib):
        pass
    assert not stale.exists()


# ------------------------------------------------------------------ 14: read-only library
@contextlib.contextmanager
def read_only_dir(folder: Path):
    """Make ``folder`` unwritable: a read-only bind mount as root (root ignores chmod), else chmod."""
    if os.geteuid() == 0:
        ok = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
        ok = ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode == 0
        if not ok:
            subprocess.run(["umount", str(folder)], capture_output=True)
            pytest.skip("root without mount permission: cannot make a directory read-only here")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        for f in folder.rglob("*"):
            f.chmod(0o555 if f.is_dir() else 0o444)
        try:
            yield
        finally:
            for f in folder.rglob("*"):
                f.chmod(0o755 if f.is_dir() else 0o644)
            folder.chmod(mode)


def test_read_only_library(tmp_path: Path) -> None:
    folder, lib = indexed_library(tmp_path)
    runner = CliRunner()
    with read_only_dir(lib):
        with pytest.raises(OSError):
            (lib / "probe").write_text("x")
        result = runner.invoke(app, ["info", "--library", str(lib), "--json"], catch_exceptions=False)
        assert result.exit_code == 0 and json.loads(result.stdout)["videos_indexed"] == 3
        with Library.open(lib, read_only=True) as library:
            from vidsearch.search import search_vectors

            assert len(search_vectors(library, library.spaces()[0], np.ones(DIM, np.float32) / 2, k=3)) == 3
        for args in (["remove", str(folder / "v0.mp4")], ["reindex"], ["index", str(folder)]):
            with pytest.raises(errors.ReadOnlyLibraryError, match="is read-only"):
                runner.invoke(app, [*args, "--library", str(lib)], catch_exceptions=False)
        with pytest.raises(errors.ReadOnlyLibraryError):
            with Library.open(lib) as library:
                fake_index(library, folder)


# ------------------------------------------------------------------ 15: SIGTERM during index
def test_sigterm_during_index_is_like_ctrl_c(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import videogen
    from test_crash_safety import N_VIDEOS, assert_consistent, signal_index_run

    folder = tmp_path / "videos"
    for i in range(N_VIDEOS):
        videogen.write_video(folder / f"v{i}.mp4", seconds=2, fps=8, pattern="noise" if i % 2 else "moving_square")
    lib = tmp_path / "lib"
    code, err = signal_index_run(folder, lib, tiny_checkpoint, signal.SIGTERM)
    assert code == 143, (code, err)
    assert "terminated" in err and "Traceback" not in err
    from vidsearch.store.vectors.fileformat import read_header

    with Library.open(lib, read_only=True) as library:
        space = library.spaces()[0]
        header = read_header(library.index_path(space.id))
        assert header["meta"]["generation"] == space.generation  # saved on the way out
    assert 2 <= assert_consistent(lib) < N_VIDEOS
