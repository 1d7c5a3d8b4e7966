"""video ids are never reused: videos gets AUTOINCREMENT

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

SQLite gives a new row the largest id plus one, so after ``remove`` of the newest videos the
next ``index`` handed their ids to other files, and shared links (``#v=5``) and moment ids then
opened another video. With ``AUTOINCREMENT`` an id is never handed out twice (``sqlite_sequence``
keeps the largest one ever used; it starts at the largest id present, as ids removed before this
migration are not known).

``videos`` is rebuilt (SQLite cannot add AUTOINCREMENT in place). Dropping the old copy with
foreign keys on would cascade-delete every segment, vector and label, so the rebuild runs with
them off (:func:`vidsearch.store.library.migrate` turns them off before the migration's
transaction; the pragma is a no-op inside one) and refuses to run otherwise.
"""
from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _foreign_keys_off() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "migration 0006 rebuilds the videos table and must run with foreign keys off "
            "(else every segment would be deleted); open the library with vidsearch to migrate it"
        )


def _rebuild(autoincrement: bool) -> None:
    _foreign_keys_off()
    with op.batch_alter_table('videos', recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass
    violations = op.get_bind().exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise RuntimeError(f"migration 0006 left {len(violations)} dangling reference(s); the library is unchanged")


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
