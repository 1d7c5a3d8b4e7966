"""zero-shot labels: label_sets, segment_recognitions, segment_labels

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Adds the tables of ``vidsearch enrich recognize`` (see ``vidsearch/store/schema.py``). Only new
tables: existing rows of 0001 libraries are untouched, and every segment starts unlabelled.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('labels_hash', sa.String(length=64), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('templates', sa.Text(), nullable=False),
    sa.Column('embeddings', sa.LargeBinary(), nullable=False),
    sa.Column('top', sa.Integer(), nullable=False),
    sa.Column('score_kind', sa.String(length=16), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('calibration', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['space_id'], ['spaces.id'], name=op.f('fk_label_sets_space_id_spaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_sets')),
    sa.UniqueConstraint('space_id', 'name', name=op.f('uq_label_sets_space_id'))
    )
    op.create_table('segment_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label_set_id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('prob', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['label_set_id'], ['label_sets.id'], name=op.f('fk_segment_labels_label_set_id_label_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_labels_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_labels')),
    sa.UniqueConstraint('label_set_id', 'segment_id', 'rank', name=op.f('uq_segment_labels_label_set_id'))
    )
    with op.batch_alter_table('segment_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_labels_segment_id'), ['segment_id'], unique=False)
        batch_op.create_index('ix_segment_labels_set_label', ['label_set_id', 'label'], unique=False)

    op.create_table('segment_recognitions',
    sa.Column('label_set_id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.Column('known_score', sa.Float(), nullable=False),
    sa.Column('unknown', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['label_set_id'], ['label_sets.id'], name=op.f('fk_segment_recognitions_label_set_id_label_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_segment_recognitions_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('label_set_id', 'segment_id', name=op.f('pk_segment_recognitions'))
    )
    with op.batch_alter_table('segment_recognitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_segment_recognitions_segment_id'), ['segment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('segment_recognitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_segment_recognitions_segment_id'))

    op.drop_table('segment_recognitions')
    with op.batch_alter_table('segment_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_labels_set_label')
        batch_op.drop_index(batch_op.f('ix_segment_labels_segment_id'))

    op.drop_table('segment_labels')
    op.drop_table('label_sets')
