"""Video ids are never reused: a removed video's id (in shared links and moment ids) names nothing."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from vidsearch.store.library import DB_NAME, SCHEMA_HEAD, Library, _alembic_config, schema_revision
from vidsearch.store.schema import Video, VideoStatus


def _add(lib: Library, *names: str) -> list[int]:
    with lib.session() as s:
        rows = [Video(path=f"/v/{n}", size=1, mtime_ns=1, fingerprint=n, status=VideoStatus.INDEXED) for n in names]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def test_removed_ids_are_not_given_to_new_videos(tmp_path: Path) -> None:
    with Library.open(tmp_path / "lib") as lib:
        ids = _add(lib, *"abcdef")
        assert ids == [1, 2, 3, 4, 5, 6]
        lib.remove_videos([5, 6])
        assert _add(lib, "g", "h") == [7, 8]
    with Library.open(tmp_path / "lib") as lib:  # and after reopening
        lib.remove_videos([7, 8])
        assert _add(lib, "i") == [9]


def test_migration_keeps_every_segment_and_stops_reuse(tmp_path: Path) -> None:
    lib_dir = tmp_path / "lib"
    with Library.open(lib_dir) as lib:
        pass
    engine = create_engine(f"sqlite:///{lib_dir / DB_NAME}")
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO spaces VALUES (1, 'm@1', 2, '{}', '{}', 3, '2026-01-01', '2026-01-01')"))
        for vid in (1, 2, 3):
            conn.execute(
                text(
                    "INSERT INTO videos (id, path, size, mtime_ns, fingerprint, status, updated_at) "
                    "VALUES (:id, :p, 10, 1, 'fp', 'indexed', '2026-01-01')"
                ),
                {"id": vid, "p": f"/v/{vid}.mp4"},
            )
            conn.execute(text("INSERT INTO segments VALUES (:id, :id, 1, 'video', 0.0, 1.0)"), {"id": vid})
            conn.execute(text("INSERT INTO embeddings VALUES (:id, x'0000803f00000000')"), {"id": vid})
    engine.dispose()
    with Library.open(lib_dir) as lib:  # migrates
        assert schema_revision(lib.engine) == SCHEMA_HEAD
        with lib.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM segments")).scalar() == 3
            assert conn.execute(text("SELECT count(*) FROM embeddings")).scalar() == 3
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # back on afterwards
        lib.remove_videos([3])
        assert _add(lib, "new") == [4]
