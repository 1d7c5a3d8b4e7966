"""The library schema is managed by Alembic: created, upgraded, and guarded against the future."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from vidsearch.errors import LibraryError
from vidsearch.store.library import DB_NAME, SCHEMA_HEAD, Library, _alembic_config, schema_revision


def head() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def test_schema_head_constant_is_alembics_head() -> None:
    # Library.open skips Alembic when the database is at SCHEMA_HEAD: a new migration must move it.
    assert SCHEMA_HEAD == head()


def test_up_to_date_library_opens_without_importing_alembic(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    probe = (
        "import sys; from vidsearch.store.library import Library\n"
        f"Library.open({str(tmp_path / 'lib')!r}).close()\n"
        "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def _new_library_downgraded_to(lib: Path, revision: str):
    """A new library at ``lib`` taken down to ``revision``; returns an engine on its database."""
    with Library.open(lib):
        pass
    engine = create_engine(f"sqlite:///{lib / DB_NAME}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    return engine


def test_a_library_behind_head_is_still_migrated(tmp_path: Path) -> None:
    engine = _new_library_downgraded_to(tmp_path / "lib", "0004")
    assert schema_revision(engine) == "0004"
    engine.dispose()
    with Library.open(tmp_path / "lib") as lib:
        assert schema_revision(lib.engine) == SCHEMA_HEAD


def test_a_read_command_upgrades_a_library_made_by_an_older_vidsearch(tmp_path: Path) -> None:
    """query and info open read-only; a library from before an upgrade still answers them (it is
    migrated once where its folder is writable) instead of being called read-only."""
    engine = _new_library_downgraded_to(tmp_path / "lib", "0005")
    engine.dispose()
    with Library.open(tmp_path / "lib", create=False, read_only=True) as lib:
        assert lib.read_only and schema_revision(lib.engine) == SCHEMA_HEAD


def test_new_library_is_at_head(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    assert con.execute("select version_num from alembic_version").fetchone()[0] == head()
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert {"videos", "segments", "spaces"} <= tables


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    engine = _new_library_downgraded_to(tmp_path / "lib", "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    with Library.open(tmp_path / "lib") as lib:  # opening migrates back to head
        assert lib.stats()["videos_indexed"] == 0
    assert {"videos", "segments", "spaces"} <= set(
        inspect(create_engine(f"sqlite:///{tmp_path / 'lib' / DB_NAME}")).get_table_names()
    )


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib"):
        pass
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    con.execute("update alembic_version set version_num = 'f00dfeed9999'")
    con.commit()
    con.close()
    with pytest.raises(LibraryError, match="newer vidsearch"):
        Library.open(tmp_path / "lib")
    proc = subprocess.run(
        [sys.executable, "-m", "vidsearch.cli", "info", "--library", str(tmp_path / "lib")],
        capture_output=True,
        text=True,
        timeout=120,
    )
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


def _library_at(db: Path, revision: str):
    """An engine on a fresh database migrated to ``revision`` (and the Alembic config used)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{db}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine, cfg


def _seed_0002(conn, vectors: dict[int, np.ndarray]) -> None:
    conn.execute(text("INSERT INTO spaces VALUES (1, 'm@1', 2, '{}', '{}', 3, '2026-01-01', '2026-01-01')"))
    conn.execute(
        text(
            "INSERT INTO videos (id, path, size, mtime_ns, fingerprint, status, updated_at) VALUES (7, '/v.mp4', 10, 1, 'fp', 'indexed', '2026-01-01')"
        )
    )
    for sid, vec in vectors.items():
        conn.execute(
            text("INSERT INTO segments VALUES (:id, 7, 1, 'window', :s, :e, :v)"),
            {"id": sid, "s": float(sid), "e": sid + 1.0, "v": vec.astype("<f4").tobytes()},
        )
    conn.execute(
        text(
            "INSERT INTO label_sets VALUES (1, 1, 'set', 'h', '[\"a\"]', '[\"{}\"]', :e, 1, 'msp', 1.0, 0.5, NULL, '2026-01-01', '2026-01-01')"
        ),
        {"e": np.ones(2, "<f4").tobytes()},
    )
    conn.execute(text("INSERT INTO segment_recognitions VALUES (1, :sid, 0.9, 0)"), {"sid": min(vectors)})


def test_0003_moves_vectors_out_of_segments_and_back(tmp_path: Path) -> None:
    """Upgrade moves every vector into `embeddings` (labels survive); downgrade moves them back."""
    db = tmp_path / "lib" / DB_NAME
    rng = np.random.default_rng(0)
    vectors = {sid: rng.standard_normal(2).astype(np.float32) for sid in (3, 5, 11)}
    engine, cfg = _library_at(db, "0002")
    with engine.begin() as conn:
        _seed_0002(conn, vectors)
    engine.dispose()

    with Library.open(db.parent, create=False) as library:  # opening migrates to head
        with library.engine.connect() as conn:
            assert "vector" not in {c["name"] for c in inspect(conn).get_columns("segments")}
            rows = conn.execute(text("SELECT segment_id, vector FROM embeddings ORDER BY segment_id")).all()
            assert [r[0] for r in rows] == sorted(vectors)
            assert conn.execute(text("SELECT count(*) FROM segment_recognitions")).scalar() == 1
        ids, xb = library.load_vectors(1)
        assert ids.tolist() == sorted(vectors)
        assert np.array_equal(xb, np.stack([vectors[i] for i in sorted(vectors)]))
        # a segment deleted later takes its vector with it (ON DELETE CASCADE)
        with library.engine.begin() as conn:
            conn.execute(text("DELETE FROM segments WHERE id = 11"))
        assert library.load_vectors(1)[0].tolist() == [3, 5]

    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # past 0006 first: its rebuild needs foreign keys off before a transaction
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006")
    with engine.begin() as conn:
        conn.execute(text("PRAGMA foreign_keys=ON"))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    with engine.connect() as conn:
        assert "embeddings" not in inspect(conn).get_table_names()
        back = dict(conn.execute(text("SELECT id, vector FROM segments")).all())
        assert sorted(back) == [3, 5]
        for sid, blob in back.items():
            assert np.array_equal(np.frombuffer(blob, "<f4"), vectors[sid])
        assert conn.execute(text("SELECT count(*) FROM segment_recognitions")).scalar() == 1
    engine.dispose()
    with Library.open(db.parent, create=False) as library:  # and up again, vectors intact
        assert library.load_vectors(1)[0].tolist() == [3, 5]


def test_0007_reads_the_failed_options_out_of_the_reason_once(tmp_path: Path) -> None:
    """Failures stored as text "(with --window ...)" get their options as JSON; the text stays."""
    from vidsearch.indexer.options import IndexOptions, failed_with_other_options
    from vidsearch.media import SamplingConfig
    from vidsearch.store import videos

    db = tmp_path / "lib" / DB_NAME
    engine, _ = _library_at(db, "0006")
    rows = {
        1: "timed out after 3 s (with --window 8 --stride 4 --timeout 3)",
        2: "decoder crashed (signal 11) (with --window 6 --stride 2 --fast)",
        3: "cannot read: Permission denied",
    }
    with engine.begin() as conn:
        for vid, error in rows.items():
            conn.execute(
                text(
                    "INSERT INTO videos (id, path, size, mtime_ns, fingerprint, status, error, updated_at) "
                    "VALUES (:id, :path, 10, 1, 'fp', 'failed', :error, '2026-01-01')"
                ),
                {"id": vid, "path": f"/v{vid}.mp4", "error": error},
            )
    engine.dispose()
    with Library.open(db.parent, create=False) as library:
        with library.session() as s:
            known = {v.id: v for v in videos.snapshot(s, None).videos}
    assert known[1].failed_options == {"window": 8.0, "stride": 4.0, "timeout": 3.0, "fast": False}
    assert known[2].failed_options == {"window": 6.0, "stride": 2.0, "timeout": None, "fast": True}
    assert known[3].failed_options is None and known[3].error == rows[3]
    assert known[1].error == rows[1]  # users still read the options in the reason
    same = IndexOptions(timeout=3)
    other = IndexOptions(sampling=SamplingConfig(window=6, stride=2), fast=True, timeout=3)
    assert not failed_with_other_options(known[1].failed_options, same)
    assert failed_with_other_options(known[1].failed_options, other)
    assert not failed_with_other_options(known[3].failed_options, other)  # no options played a part


def test_a_migration_stopped_midway_leaves_no_half_made_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A process killed while the first command creates the library used to leave some tables made
    # and no revision stamped (SQLite DDL outside an explicit BEGIN commits on its own), and every
    # later open then failed with "table spaces already exists". The whole upgrade is one transaction.
    from alembic.operations import Operations

    made = []
    real_create_table = Operations.create_table

    def create_then_fail(self, name, *columns, **kw):  # type: ignore[no-untyped-def]
        if len(made) == 2:
            raise KeyboardInterrupt  # what a Ctrl-C mid-migration raises
        made.append(name)
        return real_create_table(self, name, *columns, **kw)

    monkeypatch.setattr(Operations, "create_table", create_then_fail)
    with pytest.raises(KeyboardInterrupt):
        Library.open(tmp_path / "lib")
    assert len(made) == 2
    con = sqlite3.connect(tmp_path / "lib" / DB_NAME)
    assert con.execute("select name from sqlite_master where type = 'table'").fetchall() == []
    con.close()
    monkeypatch.setattr(Operations, "create_table", real_create_table)
    with Library.open(tmp_path / "lib") as lib:
        assert lib.stats()["videos_indexed"] == 0
    assert schema_revision(create_engine(f"sqlite:///{tmp_path / 'lib' / DB_NAME}")) == SCHEMA_HEAD
