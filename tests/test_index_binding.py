"""An index file belongs to one space of one library: a copy from another library is not used,
and `info --check` says so; a damaged header is named as damage."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import videogen
from sqlalchemy import text

from vidsearch.errors import LibraryError
from vidsearch.indexer.pipeline import IndexOptions, index_folder
from vidsearch.store.library import Library
from vidsearch.store.vectors.fileformat import read_index_file


def _library(root: Path, name: str, ckpt: Path, color: tuple[int, int, int]) -> Path:
    videogen.write_video(root / f"{name}-videos" / f"{name}.mp4", seconds=2, fps=10, size=(64, 48), color=color)
    with Library.open(root / name) as lib:
        report = index_folder(lib, root / f"{name}-videos", IndexOptions(model=str(ckpt), workers=1))
        assert not report.failed
        lib.vector_index(lib.spaces()[0])  # writes space-1.faiss
    return root / name


def test_an_index_file_copied_from_another_library_is_rebuilt(
    tmp_path: Path, tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = _library(tmp_path, "a", tiny_checkpoint, (220, 40, 40))
    b = _library(tmp_path, "b", tiny_checkpoint, (40, 40, 220))
    with Library.open(a, create=False) as lib:
        sp = lib.spaces()[0]
        gen = sp.generation
        lib.vector_index(sp)
    with Library.open(b, create=False) as lib:
        sp = lib.spaces()[0]
        with lib.engine.begin() as conn:  # the same generation: only the binding tells the files apart
            conn.execute(text("UPDATE spaces SET generation = :g WHERE id = :i"), {"g": gen, "i": sp.id})
        b_ids = np.sort(lib.segment_ids(sp.id))
        path = lib.index_path(sp.id)
    shutil.copy(a / "indexes" / path.name, path)
    with Library.open(b, create=False) as lib:
        problems = lib.check()
        assert any("another library" in p for p in problems), problems
        assert lib.stats()["spaces"][0]["index_up_to_date"] is False
        with caplog.at_level(logging.WARNING):
            index = lib.vector_index(lib.spaces()[0])
        assert "another library" in caplog.text
        assert np.array_equal(np.sort(index.ids()), b_ids)
        assert lib.check() == []  # rebuilt and saved: bound to this library now


def test_an_index_file_from_before_the_binding_is_adopted(
    tmp_path: Path, tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file an older vidsearch wrote names no owner: it is this library's own, kept (an on-disk
    IVF index must not be rebuilt flat) and stamped at the next writer's save."""
    from vidsearch.store.vectors import VectorIndex

    lib_dir = _library(tmp_path, "a", tiny_checkpoint, (220, 40, 40))
    path = lib_dir / "indexes" / "space-1.faiss"
    legacy = VectorIndex.load(path)
    legacy.meta.pop("owner")
    legacy.save(path)
    with Library.open(lib_dir, create=False, read_only=True) as lib:
        assert lib.check() == []
        with caplog.at_level(logging.INFO):
            index = lib.vector_index(lib.spaces()[0])
        assert "rebuil" not in caplog.text and len(index.ids()) > 0
    assert "owner" not in read_index_file(path)[0]["meta"]  # a read-only handle replaces no file
    with Library.open(lib_dir, create=False) as lib:
        sp = lib.spaces()[0]
        lib.vector_index(sp)
        assert read_index_file(path)[0]["meta"]["owner"] == sp.uid


def test_a_flipped_bit_in_the_header_is_named_as_damage(tmp_path: Path, tiny_checkpoint: Path) -> None:
    lib_dir = _library(tmp_path, "a", tiny_checkpoint, (220, 40, 40))
    path = lib_dir / "indexes" / "space-1.faiss"
    raw = bytearray(path.read_bytes())
    raw[20] ^= 0x80  # inside the JSON header: no longer UTF-8
    path.write_bytes(bytes(raw))
    with pytest.raises(LibraryError) as e:
        read_index_file(path)
    assert "header is damaged" in str(e.value) and "codec" not in str(e.value)
