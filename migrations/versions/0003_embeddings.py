"""embeddings: segment vectors move out of the segment rows into their own table

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Search looks up the metadata of every hit (``segments`` joined to ``videos``); with a 3 KB vector
in each segment row those lookups touch ~40x more pages than the metadata needs, so at a million
segments they fall out of the page cache. The vectors are read only to build or sync a FAISS
index, so they get their own table keyed by the segment id. Upgrade moves every vector, downgrade
moves them back; no vector is re-encoded either way.

The column is dropped and added with SQLite's own ``ALTER TABLE`` (3.35+) rather than Alembic's
batch mode: batch mode recreates ``segments``, and dropping a parent table with foreign keys on
would cascade-delete every label and vector that points at it.
"""
from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _need_drop_column() -> None:
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(
            f"migration 0003 needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); this Python has {sqlite3.sqlite_version}"
        )


def upgrade() -> None:
    _need_drop_column()
    op.create_table('embeddings',
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_embeddings_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('segment_id', name=op.f('pk_embeddings'))
    )
    op.execute("INSERT INTO embeddings (segment_id, vector) SELECT id, vector FROM segments ORDER BY id")
    op.execute("ALTER TABLE segments DROP COLUMN vector")


def downgrade() -> None:
    _need_drop_column()
    # ADD COLUMN ... NOT NULL needs a default; every row gets its vector right after.
    op.execute("ALTER TABLE segments ADD COLUMN vector BLOB NOT NULL DEFAULT x''")
    op.execute("UPDATE segments SET vector = (SELECT e.vector FROM embeddings e WHERE e.segment_id = segments.id)")
    op.drop_table('embeddings')
