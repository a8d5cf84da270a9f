"""Speakers: the command outbox, zones, presence, alarms and the event log.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "speaker_commands",
        sa.Column("cmd_id", sa.String(32), primary_key=True),
        sa.Column("speaker_id", sa.String(63), nullable=False, index=True),
        sa.Column("driver", sa.String(16), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("source", sa.String(64), nullable=False, server_default=""),
        sa.Column("item_id", sa.String(128), nullable=True),
        sa.Column("media", sa.String(128), nullable=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("volume", sa.Integer, nullable=True),
        sa.Column("issued_at", _TS, nullable=False, index=True),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("acked_at", _TS, nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "zones",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "speaker_presence",
        sa.Column("speaker_id", sa.String(63), primary_key=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("since", _TS, nullable=False),
    )
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(63), nullable=False, index=True),
        sa.Column("since", _TS, nullable=False),
        sa.Column("raised_at", _TS, nullable=False, index=True),
        sa.Column("cleared_at", _TS, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_table(
        "event_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", _TS, nullable=False, index=True),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(63), nullable=False, server_default=""),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("event_log", "alarms", "speaker_presence", "zones", "speaker_commands"):
        op.drop_table(table)
