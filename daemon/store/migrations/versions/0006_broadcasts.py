"""Broadcasts and their executions (one row per broadcast and air time).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("voice", sa.String(32), nullable=True),
        sa.Column("media_id", sa.String(32), nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("targets", sa.Text, nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("volume", sa.Integer, nullable=True),
        sa.Column("start_at", _TS, nullable=False),
        sa.Column("rrule", sa.Text, nullable=True),
        sa.Column("lunar_day", sa.Integer, nullable=True),
        sa.Column("lunar_month", sa.Integer, nullable=True),
        sa.Column("lateness_s", sa.Integer, nullable=False, server_default="600"),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "broadcast_id",
            sa.String(32),
            sa.ForeignKey("broadcasts.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("slot", _TS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fired_at", _TS, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("broadcast_id", "slot", name="uq_executions_broadcast_slot"),
    )
    # A broadcast's deliveries are its speaker commands, found by source and execution.
    op.create_index("ix_speaker_commands_source_item", "speaker_commands", ["source", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_speaker_commands_source_item", table_name="speaker_commands")
    for table in ("executions", "broadcasts"):
        op.drop_table(table)
