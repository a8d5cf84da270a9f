"""The command outbox: every speaker command and each step of its delivery, in the store."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.store.db import Store
from daemon.store.schema import speaker_commands
from drivers.speaker.model import Op, Priority


class DeliveryState(enum.StrEnum):
    """A command's delivery state; the names are the API contract's (architecture.md)."""

    QUEUED = "queued"  # written, not yet confirmed by the broker
    OFFLINE = "offline"  # the broker has it, the speaker is offline (it gets it on return)
    SENT = "sent"  # the broker has it (PUBACK)
    ACKNOWLEDGED = "acknowledged"  # the speaker accepted it
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"  # refused or could not be played; `error` says why
    EXPIRED = "expired"  # never executed: it expired before the speaker took it

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def terminal(self) -> bool:
        return self.rank == _RANK[DeliveryState.FINISHED]


# Reports may arrive out of order (an ack re-sent after `started`): a state only moves up.
_RANK = {
    DeliveryState.QUEUED: 0,
    DeliveryState.OFFLINE: 1,
    DeliveryState.SENT: 1,
    DeliveryState.ACKNOWLEDGED: 2,
    DeliveryState.STARTED: 3,
    DeliveryState.FINISHED: 4,
    DeliveryState.FAILED: 4,
    DeliveryState.EXPIRED: 4,
}


@dataclass
class CommandRecord:
    """One outbox row. Mutable: the dispatcher owns the live ones and saves their progress."""

    cmd_id: str
    speaker_id: str
    driver: str
    op: Op
    source: str
    item_id: str | None
    media: str | None
    priority: Priority
    volume: int | None
    issued_at: datetime
    expires_at: datetime
    state: DeliveryState = DeliveryState.QUEUED
    error: str | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    acked_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    updated_at: datetime | None = None
    # A relayed stream: the station's URL, passed to the speaker as it is (`media` is
    # then None), and when the speaker must stop playing it.
    stream_url: str | None = None
    ends_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.stream_url is not None

    def advance(self, state: DeliveryState, at: datetime, error: str | None = None) -> bool:
        """Move to `state` if that is progress; True if anything changed."""
        if self.state.terminal or state.rank <= self.state.rank:
            return False
        self.state = state
        self.updated_at = at
        if error is not None:
            self.error = error
        stamp = {
            DeliveryState.SENT: "sent_at",
            DeliveryState.OFFLINE: "sent_at",
            DeliveryState.ACKNOWLEDGED: "acked_at",
            DeliveryState.STARTED: "started_at",
            DeliveryState.FINISHED: "finished_at",
            DeliveryState.FAILED: "finished_at",
        }.get(state)
        if stamp is not None and getattr(self, stamp) is None:
            setattr(self, stamp, at)
        return True


_MUTABLE = (
    "state",
    "error",
    "attempts",
    "sent_at",
    "acked_at",
    "started_at",
    "finished_at",
    "duration_s",
    "updated_at",
)


def _row(record: CommandRecord) -> dict[str, object]:
    return {
        "cmd_id": record.cmd_id,
        "speaker_id": record.speaker_id,
        "driver": record.driver,
        "op": record.op.value,
        "source": record.source,
        "item_id": record.item_id,
        "media": record.media,
        "priority": int(record.priority),
        "volume": record.volume,
        "issued_at": record.issued_at,
        "expires_at": record.expires_at,
        "stream_url": record.stream_url,
        "ends_at": record.ends_at,
    } | {name: getattr(record, name) for name in _MUTABLE}


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time in loacam is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _record(row: sa.RowMapping) -> CommandRecord:
    return CommandRecord(
        cmd_id=row["cmd_id"],
        speaker_id=row["speaker_id"],
        driver=row["driver"],
        op=Op(row["op"]),
        source=row["source"],
        item_id=row["item_id"],
        media=row["media"],
        priority=Priority(row["priority"]),
        volume=row["volume"],
        issued_at=_utc(row["issued_at"]) or datetime.now(UTC),
        expires_at=_utc(row["expires_at"]) or datetime.now(UTC),
        state=DeliveryState(row["state"]),
        error=row["error"],
        attempts=row["attempts"],
        sent_at=_utc(row["sent_at"]),
        acked_at=_utc(row["acked_at"]),
        started_at=_utc(row["started_at"]),
        finished_at=_utc(row["finished_at"]),
        duration_s=row["duration_s"],
        updated_at=_utc(row["updated_at"]),
        stream_url=row["stream_url"],
        ends_at=_utc(row["ends_at"]),
    )


async def insert_commands(store: Store, records: Sequence[CommandRecord]) -> None:
    """Write new commands in one transaction (before any of them is published)."""
    if not records:
        return
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(speaker_commands), [_row(r) for r in records])


async def save_progress(store: Store, records: Iterable[CommandRecord]) -> None:
    """Write the delivery columns of these commands in one transaction."""
    rows = [{"key": r.cmd_id} | {name: getattr(r, name) for name in _MUTABLE} for r in records]
    if not rows:
        return
    statement = (
        sa.update(speaker_commands)
        .where(speaker_commands.c.cmd_id == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in _MUTABLE})
    )
    async with store.engine.begin() as conn:
        await conn.execute(statement, rows)


async def load_unfinished(store: Store) -> list[CommandRecord]:
    terminal = [s.value for s in DeliveryState if s.terminal]
    query = (
        sa.select(speaker_commands)
        .where(speaker_commands.c.state.not_in(terminal))
        .order_by(speaker_commands.c.issued_at)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_record(row) for row in rows]


async def recent_commands(
    store: Store, *, speaker_id: str | None = None, source: str | None = None, limit: int = 50
) -> list[CommandRecord]:
    query = sa.select(speaker_commands)
    if speaker_id is not None:
        query = query.where(speaker_commands.c.speaker_id == speaker_id)
    if source is not None:
        query = query.where(speaker_commands.c.source == source)
    query = query.order_by(
        speaker_commands.c.issued_at.desc(), speaker_commands.c.speaker_id
    ).limit(limit)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_record(row) for row in rows]


async def item_commands(store: Store, source: str, item_id: str) -> list[CommandRecord]:
    """Every command of one item (e.g. a broadcast's air time), through the (source,
    item_id) index."""
    query = (
        sa.select(speaker_commands)
        .where(speaker_commands.c.source == source, speaker_commands.c.item_id == item_id)
        .order_by(speaker_commands.c.issued_at, speaker_commands.c.speaker_id)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_record(row) for row in rows]


async def get_command(store: Store, cmd_id: str) -> CommandRecord | None:
    query = sa.select(speaker_commands).where(speaker_commands.c.cmd_id == cmd_id)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _record(row) if row is not None else None


def latest_per_speaker(commands: Sequence[CommandRecord]) -> list[CommandRecord]:
    """Each speaker's latest command (a resumed play supersedes the one cut off)."""
    latest: dict[str, CommandRecord] = {}
    for command in commands:
        known = latest.get(command.speaker_id)
        if known is None or command.issued_at > known.issued_at:
            latest[command.speaker_id] = command
    return list(latest.values())
