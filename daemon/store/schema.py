"""Table definitions, written with SQLAlchemy Core so the same queries run on PostgreSQL.

The migrations under `migrations/versions` create these tables; a change here
always comes with a new migration.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(255), nullable=False, server_default=""),
    sa.Column("client", sa.String(64), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
)

# Cameras added through the API (cameras from the YAML file are never stored).
# The password is kept because the camera needs it; it is never returned.
cameras = sa.Table(
    "cameras",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("host", sa.String(253), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("password", sa.String(255), nullable=True),
    sa.Column("share_with_district", sa.Boolean, nullable=False),
    sa.Column("share_with_radio", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("sync_time", sa.Boolean, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("timeout_s", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The speaker command outbox: a command is written here before it is published, and
# every step of its delivery is recorded on the same row (docs/mqtt-speakers.md).
speaker_commands = sa.Table(
    "speaker_commands",
    metadata,
    sa.Column("cmd_id", sa.String(32), primary_key=True),
    sa.Column("speaker_id", sa.String(63), nullable=False, index=True),
    sa.Column("driver", sa.String(16), nullable=False),
    sa.Column("op", sa.String(16), nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
    sa.Column("item_id", sa.String(128), nullable=True),
    sa.Column("media", sa.String(128), nullable=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("volume", sa.Integer, nullable=True),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("error", sa.String(64), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # A relay: the station's own URL (played as it is, never downloaded by loacam) and
    # when the speaker must stop it.
    sa.Column("stream_url", sa.Text, nullable=True),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
)

# Zones (villages) named through the API; zones named only in the YAML are not stored.
zones = sa.Table(
    "zones",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# When each speaker last changed between online and offline, so an offline alarm
# still counts from the right moment after a daemon restart.
speaker_presence = sa.Table(
    "speaker_presence",
    metadata,
    sa.Column("speaker_id", sa.String(63), primary_key=True),
    sa.Column("online", sa.Boolean, nullable=False),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
)

# Alarms (raised, then cleared) and the daemon's event log of them.
alarms = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(63), nullable=False, index=True),
    sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("message", sa.Text, nullable=False),
)

event_log = sa.Table(
    "event_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(63), nullable=False, server_default=""),
    sa.Column("message", sa.Text, nullable=False),
)

# The radio station's library: recordings it uploaded (and, later, saved speech).
# `file` is what speakers play (loudness-normalised, in the speakers' format);
# `original` is the file as uploaded, kept so it can be rendered again.
media_items = sa.Table(
    "media_items",
    metadata,
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Rendered speech, keyed by what produced it (normalised text, engine, voice, settings):
# the same announcement is never synthesised twice while it is cached.
audio_renders = sa.Table(
    "audio_renders",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("file", sa.String(64), nullable=False, index=True),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("voice", sa.String(32), nullable=False),
    sa.Column("normalized_text", sa.Text, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Broadcasts (issue 7): what airs, to whom and when. `targets` is JSON
# ({"all": bool, "zones": [...], "speakers": [...]}); the schedule is `start_at` plus
# an RRULE or a lunar day/month (daemon/schedule/recurrence.py).
broadcasts = sa.Table(
    "broadcasts",
    metadata,
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
    sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rrule", sa.Text, nullable=True),
    sa.Column("lunar_day", sa.Integer, nullable=True),
    sa.Column("lunar_month", sa.Integer, nullable=True),
    sa.Column("lateness_s", sa.Integer, nullable=False, server_default="600"),
    sa.Column("duration_s", sa.Integer, nullable=True),  # a relay's length (it must end)
    sa.Column("skip_dates", sa.Text, nullable=True),  # JSON list of local dates not aired
    sa.Column("planned_at", sa.DateTime(timezone=True), nullable=True),  # schedule last set
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per (broadcast, slot), inserted before the slot is dispatched: the unique
# constraint is what keeps a crash, a restart or a second engine from airing it twice.
executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "broadcast_id", sa.String(32), sa.ForeignKey("broadcasts.id"), nullable=False, index=True
    ),
    sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),  # a relay's end sent
    sa.UniqueConstraint("broadcast_id", "slot", name="uq_executions_broadcast_slot"),
)

# A broadcast's deliveries are its speaker commands, found by source and execution.
sa.Index("ix_speaker_commands_source_item", speaker_commands.c.source, speaker_commands.c.item_id)
