"""The library schema is managed by Alembic: created, upgraded, and guarded against the future."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from vidsearch.errors import LibraryError
from vidsearch.store.library import DB_NAME, Library, _alembic_config


def head() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def test_new_library_is_at_head(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    assert con.execute("select version_num from alembic_version").fetchone()[0] == head()
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert {"videos", "segments", "spaces"} <= tables


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    engine = create_engine(f"sqlite:///{tmp_path / 'lib' / DB_NAME}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    with Library.open(tmp_path / "lib") as lib:  # opening migrates back to head
        assert lib.stats()["videos_indexed"] == 0
    assert {"videos", "segments", "spaces"} <= set(inspect(create_engine(f"sqlite:///{tmp_path / 'lib' / DB_NAME}")).get_table_names())


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    con.execute("update alembic_version set version_num = 'f00dfeed9999'")
    con.commit()
    con.close()
    with pytest.raises(LibraryError, match="newer vidsearch"):
        Library.open(tmp_path / "lib")
    proc = subprocess.run([sys.executable, "-m", "vidsearch.cli", "info", "--library", str(tmp_path / "lib")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "newer vidsearch" in proc.stderr and "Traceback" not in proc.stderr


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="cannot open library database"):
        Library.open(tmp_path / "lib")


def test_library_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LibraryError, match="is a file"):
        Library.open(tmp_path / "file")
