"""actor tubes: actor_scans, actor_tubes, actor_boxes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Adds the tables of ``vidsearch enrich actors`` (see ``vidsearch/store/schema.py``): one scan per
video and label set, the person tubes found in it and each tube's box at every keyframe. Only
new tables: existing rows are untouched and every video starts unscanned.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('actor_scans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('label_set', sa.Text(), nullable=False),
    sa.Column('detector', sa.String(length=200), nullable=False),
    sa.Column('keyframes', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_actor_scans_segment_id_segments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_actor_scans_space_id_spaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actor_scans')),
    sa.UniqueConstraint('segment_id', 'label_set', name=op.f('uq_actor_scans_segment_id'))
    )
    op.create_index('ix_actor_scans_space_set', 'actor_scans', ['space_id', 'label_set'], unique=False)
    op.create_table('actor_tubes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scan_id', sa.Integer(), nullable=False),
    sa.Column('track', sa.Integer(), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['scan_id'], ['actor_scans.id'], name=op.f('fk_actor_tubes_scan_id_actor_scans'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actor_tubes'))
    )
    op.create_index(op.f('ix_actor_tubes_scan_id'), 'actor_tubes', ['scan_id'], unique=False)
    op.create_table('actor_boxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tube_id', sa.Integer(), nullable=False),
    sa.Column('t', sa.Float(), nullable=False),
    sa.Column('x1', sa.Float(), nullable=False),
    sa.Column('y1', sa.Float(), nullable=False),
    sa.Column('x2', sa.Float(), nullable=False),
    sa.Column('y2', sa.Float(), nullable=False),
    sa.Column('det_score', sa.Float(), nullable=True),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['tube_id'], ['actor_tubes.id'], name=op.f('fk_actor_boxes_tube_id_actor_tubes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_actor_boxes'))
    )
    op.create_index(op.f('ix_actor_boxes_tube_id'), 'actor_boxes', ['tube_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_actor_boxes_tube_id'), table_name='actor_boxes')
    op.drop_table('actor_boxes')
    op.drop_index(op.f('ix_actor_tubes_scan_id'), table_name='actor_tubes')
    op.drop_table('actor_tubes')
    op.drop_index('ix_actor_scans_space_set', table_name='actor_scans')
    op.drop_table('actor_scans')
