"""video codec: videos.codec

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Records the FFmpeg codec name of each video's stream at index time, so front ends (``vidsearch
serve``) know whether a browser can play the file. Existing rows get NULL ("not recorded"); the
server then reads the codec from the file header when it first needs it.

Like 0003, the column is added and dropped with SQLite's own ``ALTER TABLE`` (DROP COLUMN needs
3.35+, which 0003 already requires) rather than Alembic's batch mode: batch mode recreates
``videos``, and dropping it with foreign keys on would cascade-delete every segment, vector and
label of the library.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('videos', sa.Column('codec', sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE videos DROP COLUMN codec")
