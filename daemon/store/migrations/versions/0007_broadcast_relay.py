"""A broadcast's length (a relayed stream must end), the dates it skips, and when a relay
was stopped; a speaker command's stream URL and end (a live play of a relayed stream).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("duration_s", sa.Integer, nullable=True))
        batch.add_column(sa.Column("skip_dates", sa.Text, nullable=True))
        # When the schedule was last set (null: at creation); slots count from it.
        batch.add_column(sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("speaker_commands") as batch:
        batch.add_column(sa.Column("stream_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("speaker_commands") as batch:
        batch.drop_column("ends_at")
        batch.drop_column("stream_url")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("stopped_at")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("planned_at")
        batch.drop_column("skip_dates")
        batch.drop_column("duration_s")
