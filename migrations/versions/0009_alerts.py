"""alerts: one row per alert of a watched stream

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

``vidsearch watch`` writes a row when a standing query starts matching an event on a stream and
completes it when the event ends and its clip is cut (see ``AlertRecord`` in
``vidsearch/store/schema.py``). A new table only: no existing row changes.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('stream', sa.Text(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('peak', sa.Float(), nullable=False),
    sa.Column('peak_time', sa.Float(), nullable=False),
    sa.Column('clip', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('key', name=op.f('uq_alerts_key')),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_alerts_stream_start', 'alerts', ['stream', 'start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alerts_stream_start', table_name='alerts')
    op.drop_table('alerts')
