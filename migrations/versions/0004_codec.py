"""video codec: videos.codec

Revision ID: 0004
Revises: 0003 (see down_revision below)
Create Date: 2026-12-01

Records the FFmpeg codec name of each video's stream at index time, so front ends (``vidsearch
serve``) know whether a browser can play the file. Existing rows get NULL ("not recorded"); the
server then reads the codec from the file header when it first needs it.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
# INTEGRATOR: this branch has no 0003 yet, so 0004 follows 0002 here; set this to '0003' when
# merging with the branch that adds 0003 (vectors moved to the embeddings table), or Alembic sees
# two heads.
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('videos') as batch_op:
        batch_op.add_column(sa.Column('codec', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('videos') as batch_op:
        batch_op.drop_column('codec')
