"""transcripts: transcripts, transcript_segments and the transcript_fts full-text index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

What is said in each video (see ``vidsearch/store/schema.py``): one ``transcripts`` row per
video saying where its words came from, its timed lines in ``transcript_segments``, and an FTS5
index over their text (BM25; ``unicode61`` with diacritics removed, so "cafe" finds "café").
The index is external-content: it stores no second copy of the text, and triggers keep it in
step with every insert, update and delete (a video's cascade delete included). Only new tables:
every video starts without a transcript.
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


FTS = [
    "CREATE VIRTUAL TABLE transcript_fts USING fts5(text, content='transcript_segments', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER transcript_segments_ai AFTER INSERT ON transcript_segments BEGIN "
    "INSERT INTO transcript_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER transcript_segments_ad AFTER DELETE ON transcript_segments BEGIN "
    "INSERT INTO transcript_fts(transcript_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER transcript_segments_au AFTER UPDATE ON transcript_segments BEGIN "
    "INSERT INTO transcript_fts(transcript_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO transcript_fts(rowid, text) VALUES (new.id, new.text); END",
]


def upgrade() -> None:
    op.create_table('transcripts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('sidecars', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('backend', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=32), nullable=True),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], name=op.f('fk_transcripts_video_id_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transcripts')),
    sa.UniqueConstraint('video_id', name=op.f('uq_transcripts_video_id'))
    )
    op.create_table('transcript_segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('video_id', sa.Integer(), nullable=False),
    sa.Column('start', sa.Float(), nullable=False),
    sa.Column('end', sa.Float(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=32), nullable=True),
    sa.Column('backend', sa.String(length=200), nullable=False),
    sa.Column('words', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], name=op.f('fk_transcript_segments_video_id_videos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transcript_segments'))
    )
    op.create_index('ix_transcript_segments_video_start', 'transcript_segments', ['video_id', 'start'], unique=False)
    for statement in FTS:
        op.execute(statement)


def downgrade() -> None:
    for trigger in ('transcript_segments_au', 'transcript_segments_ad', 'transcript_segments_ai'):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS transcript_fts")
    op.drop_index('ix_transcript_segments_video_start', table_name='transcript_segments')
    op.drop_table('transcript_segments')
    op.drop_table('transcripts')
