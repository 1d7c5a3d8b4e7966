"""streams: the name each watched stream is shown under, by its URL

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``vidsearch watch --name NAME`` stores a stream's windows under its URL; this table keeps the
name, so ``query --source NAME`` and the results find the stream by it (see ``StreamRecord`` in
``vidsearch/store/schema.py``). A new table only: no existing row changes.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('streams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_streams')),
    sa.UniqueConstraint('name', name=op.f('uq_streams_name')),
    )
    op.create_index(op.f('ix_streams_uri'), 'streams', ['uri'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_streams_uri'), table_name='streams')
    op.drop_table('streams')
