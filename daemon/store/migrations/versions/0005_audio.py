"""Audio: the media library (uploaded recordings) and the rendered-speech cache.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "media_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("file", sa.String(64), nullable=False),
        sa.Column("original", sa.String(64), nullable=True),
        sa.Column("original_name", sa.String(255), nullable=False, server_default=""),
        sa.Column("source_codec", sa.String(32), nullable=False, server_default=""),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False, index=True),
    )
    op.create_table(
        "audio_renders",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("file", sa.String(64), nullable=False, index=True),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("voice", sa.String(32), nullable=False),
        sa.Column("normalized_text", sa.Text, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_used_at", _TS, nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("audio_renders", "media_items"):
        op.drop_table(table)
