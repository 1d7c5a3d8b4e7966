"""failed options: videos.failed_options

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

The options a video failed under become a JSON column (``{"window": 8.0, "stride": 4.0,
"timeout": null, "fast": false}``) that the index run compares with its own to decide whether to
retry it. Before, they were only the end of the failure's text, "(with --window 8 --stride 4)",
which the run parsed back with a regular expression; the upgrade parses that text once here, so
existing failures keep their retry policy. The text stays as users read it.

Like 0004, the column is added and dropped with SQLite's own ``ALTER TABLE`` (batch mode would
recreate ``videos`` and cascade-delete its segments).
"""
from __future__ import annotations

import json
import re

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

# The suffix the index run appended up to revision 0006.
_WITH = re.compile(r" \(with (--[^()]*)\)$")
_FLAG = re.compile(r"--(window|stride|timeout) (\S+)")


def _options(reason: str | None) -> dict | None:
    found = _WITH.search(reason or "")
    if found is None:
        return None
    text = found.group(1)
    values = {name: float(value) for name, value in _FLAG.findall(text)}
    return {
        "window": values.get("window"),
        "stride": values.get("stride"),
        "timeout": values.get("timeout"),
        "fast": "--fast" in text.split(),
    }


def upgrade() -> None:
    op.add_column('videos', sa.Column('failed_options', sa.JSON(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, error FROM videos WHERE status = 'failed' AND error IS NOT NULL")).all()
    for vid, error in rows:
        options = _options(error)
        if options is not None:
            conn.execute(
                sa.text("UPDATE videos SET failed_options = :options WHERE id = :id"),
                {"options": json.dumps(options), "id": vid},
            )


def downgrade() -> None:
    op.execute("ALTER TABLE videos DROP COLUMN failed_options")
