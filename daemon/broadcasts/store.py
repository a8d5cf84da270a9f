"""Broadcasts and their executions in the store.

An execution row is the record that a slot (a broadcast's scheduled air time) has been
decided: claimed for airing or marked missed. It is inserted under the unique
constraint (broadcast_id, slot) before anything is dispatched, so whoever inserts it
first is the only one who airs that slot.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from daemon.schedule.recurrence import Lunar, Schedule
from daemon.store.db import Store
from daemon.store.schema import broadcasts as _broadcasts
from daemon.store.schema import executions as _executions

DEFAULT_LATENESS_S = 600


class Kind(enum.StrEnum):
    TEXT = "text"  # spoken by text-to-speech
    MEDIA = "media"  # a recording from the media library
    URL = "url"  # a relayed stream (e.g. the province's radio)


class Status(enum.StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    DONE = "done"  # no slot left to air


class ExecState(enum.StrEnum):
    PENDING = "pending"  # claimed, being dispatched
    DISPATCHED = "dispatched"  # handed to the speakers (their delivery is logged per speaker)
    MISSED = "missed"  # later than the broadcast's lateness: not aired
    FAILED = "failed"  # dispatch refused; `error` says why
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Targets:
    """Who hears it. The shape of daemon.speakers.service.Targets, kept here so the
    engine does not import the MQTT side; the dispatch wiring converts field by field."""

    all: bool = False
    zones: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {"all": self.all, "zones": list(self.zones), "speakers": list(self.speakers)}
        )

    @classmethod
    def from_json(cls, text: str) -> Targets:
        raw = json.loads(text)
        return cls(
            all=bool(raw.get("all", False)),
            zones=tuple(str(z) for z in raw.get("zones", ())),
            speakers=tuple(str(s) for s in raw.get("speakers", ())),
        )


@dataclass(frozen=True)
class BroadcastRecord:
    id: str
    title: str
    kind: Kind
    targets: Targets
    priority: str  # normal | priority | emergency (daemon.schedule.rules.PRIORITIES)
    start_at: datetime  # aware UTC
    created_by: str
    created_at: datetime
    updated_at: datetime
    text: str | None = None
    voice: str | None = None
    media_id: str | None = None
    url: str | None = None
    volume: int | None = None
    rrule: str | None = None
    lunar_day: int | None = None
    lunar_month: int | None = None
    lateness_s: int = DEFAULT_LATENESS_S
    duration_s: int | None = None  # a relayed stream's length: it is stopped after this
    skip_dates: tuple[date, ...] = ()  # Vietnam dates a recurring broadcast does not air
    planned_at: datetime | None = None  # when the schedule was last changed (None: created)
    status: Status = Status.ACTIVE

    @property
    def counts_from(self) -> datetime:
        """Slots before this were never part of the current schedule: not aired, not missed."""
        return self.planned_at or self.created_at

    @property
    def schedule(self) -> Schedule:
        lunar = Lunar(self.lunar_day, self.lunar_month) if self.lunar_day is not None else None
        return Schedule(
            self.start_at, rrule=self.rrule, lunar=lunar, skip=frozenset(self.skip_dates)
        )


@dataclass(frozen=True)
class ExecutionRecord:
    id: int
    broadcast_id: str
    slot: datetime  # the scheduled air time, aware UTC
    state: ExecState
    created_at: datetime
    fired_at: datetime | None = None  # when it was handed to dispatch; None if never
    error: str | None = None
    stopped_at: datetime | None = None  # a relay: when its end was sent to the speakers


def _to_db(value: datetime) -> datetime:
    # SQLite keeps a datetime's wall time and drops its offset: store UTC, always, so
    # that equal instants are equal strings (the unique constraint compares them).
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the broadcast store")
    return value.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time in the store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _broadcast_row(record: BroadcastRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "title": record.title,
        "kind": record.kind.value,
        "text": record.text,
        "voice": record.voice,
        "media_id": record.media_id,
        "url": record.url,
        "targets": record.targets.to_json(),
        "priority": record.priority,
        "volume": record.volume,
        "start_at": _to_db(record.start_at),
        "rrule": record.rrule,
        "lunar_day": record.lunar_day,
        "lunar_month": record.lunar_month,
        "lateness_s": record.lateness_s,
        "duration_s": record.duration_s,
        "planned_at": None if record.planned_at is None else _to_db(record.planned_at),
        "skip_dates": json.dumps([day.isoformat() for day in record.skip_dates])
        if record.skip_dates
        else None,
        "status": record.status.value,
        "created_by": record.created_by,
        "created_at": _to_db(record.created_at),
        "updated_at": _to_db(record.updated_at),
    }


def _broadcast(row: sa.RowMapping) -> BroadcastRecord:
    return BroadcastRecord(
        id=row["id"],
        title=row["title"],
        kind=Kind(row["kind"]),
        text=row["text"],
        voice=row["voice"],
        media_id=row["media_id"],
        url=row["url"],
        targets=Targets.from_json(row["targets"]),
        priority=row["priority"],
        volume=row["volume"],
        start_at=_utc(row["start_at"]),
        rrule=row["rrule"],
        lunar_day=row["lunar_day"],
        lunar_month=row["lunar_month"],
        lateness_s=row["lateness_s"],
        duration_s=row["duration_s"],
        planned_at=_utc_or_none(row["planned_at"]),
        skip_dates=tuple(date.fromisoformat(day) for day in json.loads(row["skip_dates"] or "[]")),
        status=Status(row["status"]),
        created_by=row["created_by"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _execution(row: sa.RowMapping) -> ExecutionRecord:
    return ExecutionRecord(
        id=row["id"],
        broadcast_id=row["broadcast_id"],
        slot=_utc(row["slot"]),
        state=ExecState(row["state"]),
        fired_at=_utc_or_none(row["fired_at"]),
        error=row["error"],
        created_at=_utc(row["created_at"]),
        stopped_at=_utc_or_none(row["stopped_at"]),
    )


async def insert_broadcast(store: Store, record: BroadcastRecord) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(_broadcasts).values(_broadcast_row(record)))


async def get_broadcast(store: Store, broadcast_id: str) -> BroadcastRecord | None:
    query = sa.select(_broadcasts).where(_broadcasts.c.id == broadcast_id)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _broadcast(row) if row is not None else None


async def active_broadcasts(store: Store) -> list[BroadcastRecord]:
    query = (
        sa.select(_broadcasts)
        .where(_broadcasts.c.status == Status.ACTIVE.value)
        .order_by(_broadcasts.c.created_at, _broadcasts.c.id)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_broadcast(row) for row in rows]


async def finish_broadcast(store: Store, broadcast: BroadcastRecord, now: datetime) -> bool:
    """Mark DONE a broadcast whose last slot is decided, unless it was changed or cancelled
    since it was read (a PATCH moving a one-off, a cancel during its dispatch win)."""
    statement = (
        sa.update(_broadcasts)
        .where(
            _broadcasts.c.id == broadcast.id,
            _broadcasts.c.status == Status.ACTIVE.value,
            _broadcasts.c.updated_at == _to_db(broadcast.updated_at),
        )
        .values(status=Status.DONE.value, updated_at=_to_db(now))
    )
    async with store.engine.begin() as conn:
        return (await conn.execute(statement)).rowcount == 1


async def set_status(store: Store, broadcast_id: str, status: Status, now: datetime) -> None:
    statement = (
        sa.update(_broadcasts)
        .where(_broadcasts.c.id == broadcast_id)
        .values(status=status.value, updated_at=_to_db(now))
    )
    async with store.engine.begin() as conn:
        await conn.execute(statement)


async def claim(
    store: Store, broadcast_id: str, slot: datetime, state: ExecState, now: datetime
) -> ExecutionRecord | None:
    """Insert the execution row of this slot; None if it already has one (someone else's)."""
    fired_at = _to_db(now) if state is ExecState.PENDING else None
    values = {
        "broadcast_id": broadcast_id,
        "slot": _to_db(slot),
        "state": state.value,
        "fired_at": fired_at,
        "created_at": _to_db(now),
    }
    try:
        async with store.engine.begin() as conn:
            result = await conn.execute(sa.insert(_executions).values(values))
    except IntegrityError:
        # The unique (broadcast_id, slot) row exists: another engine, or this one before
        # a restart, decided this slot. (A broadcast deleted meanwhile lands here too
        # through its foreign key, and has nothing to air either.)
        return None
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - SQLite and PostgreSQL both report it
        raise RuntimeError("the store did not report the new execution's id")
    return ExecutionRecord(
        id=int(key[0]),
        broadcast_id=broadcast_id,
        slot=_to_db(slot),
        state=state,
        fired_at=fired_at,
        created_at=_to_db(now),
    )


async def finish_execution(
    store: Store, execution_id: int, state: ExecState, error: str | None = None
) -> None:
    statement = (
        sa.update(_executions)
        .where(_executions.c.id == execution_id)
        .values(state=state.value, error=error)
    )
    async with store.engine.begin() as conn:
        await conn.execute(statement)


async def last_slot(store: Store, broadcast_id: str) -> datetime | None:
    """The latest slot of this broadcast that has an execution row, whatever its state."""
    query = sa.select(sa.func.max(_executions.c.slot)).where(
        _executions.c.broadcast_id == broadcast_id
    )
    async with store.engine.connect() as conn:
        value: datetime | None = (await conn.execute(query)).scalar()
    return _utc_or_none(value)


async def latest_fired_at(store: Store) -> datetime | None:
    """When anything was last handed to dispatch: the clock cannot honestly be before it."""
    query = sa.select(sa.func.max(_executions.c.fired_at))
    async with store.engine.connect() as conn:
        value: datetime | None = (await conn.execute(query)).scalar()
    return _utc_or_none(value)


async def executions(store: Store, broadcast_id: str) -> list[ExecutionRecord]:
    query = (
        sa.select(_executions)
        .where(_executions.c.broadcast_id == broadcast_id)
        .order_by(_executions.c.slot)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_execution(row) for row in rows]


async def recent_executions(
    store: Store, broadcast_id: str, *, limit: int, before: int | None = None
) -> list[ExecutionRecord]:
    """A broadcast's executions, newest first, `limit` of them (older than id `before`)."""
    query = sa.select(_executions).where(_executions.c.broadcast_id == broadcast_id)
    if before is not None:
        query = query.where(_executions.c.id < before)
    query = query.order_by(_executions.c.id.desc()).limit(limit)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_execution(row) for row in rows]


async def aired_count(store: Store, broadcast_id: str, start: datetime, end: datetime) -> int:
    """How many of a broadcast's slots in [start, end] were aired (claimed or dispatched)."""
    query = sa.select(sa.func.count()).where(
        (_executions.c.broadcast_id == broadcast_id)
        & (_executions.c.slot >= _to_db(start))
        & (_executions.c.slot <= _to_db(end))
        & _executions.c.state.in_([ExecState.PENDING.value, ExecState.DISPATCHED.value])
    )
    async with store.engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def update_broadcast(store: Store, record: BroadcastRecord, read_at: datetime) -> bool:
    """Write every field of an active broadcast last written at `read_at` (when it was read);
    False if it is no longer active or somebody wrote it since (nothing is overwritten)."""
    values = _broadcast_row(record)
    del values["id"], values["created_by"], values["created_at"]
    statement = (
        sa.update(_broadcasts)
        .where(
            _broadcasts.c.id == record.id,
            _broadcasts.c.status == Status.ACTIVE.value,
            _broadcasts.c.updated_at == _to_db(read_at),
        )
        .values(values)
    )
    async with store.engine.begin() as conn:
        return (await conn.execute(statement)).rowcount == 1


async def list_broadcasts(
    store: Store, status: Status | None = None, *, since: datetime | None = None
) -> list[BroadcastRecord]:
    """Broadcasts, newest first; only those with `status`, starting after `since`, if given."""
    query = sa.select(_broadcasts).order_by(_broadcasts.c.created_at.desc())
    if status is not None:
        query = query.where(_broadcasts.c.status == status.value)
    if since is not None:
        query = query.where(_broadcasts.c.start_at > _to_db(since))
    async with store.engine.connect() as conn:
        return [_broadcast(row) for row in (await conn.execute(query)).mappings()]


async def fail_stale_pending(store: Store, before: datetime, error: str) -> list[int]:
    """Mark FAILED the executions left PENDING since before `before` (a dispatch that
    never finished: the daemon stopped or crashed mid-way); their ids."""
    stale = (_executions.c.state == ExecState.PENDING.value) & (
        _executions.c.created_at < _to_db(before)
    )
    async with store.engine.begin() as conn:
        ids = list((await conn.scalars(sa.select(_executions.c.id).where(stale))).all())
        if ids:
            await conn.execute(
                sa.update(_executions)
                .where(_executions.c.id.in_(ids))
                .values(state=ExecState.FAILED.value, error=error)
            )
    return ids


async def executions_between(
    store: Store, start: datetime, end: datetime
) -> list[tuple[ExecutionRecord, BroadcastRecord]]:
    """Executions whose slot is in [start, end), with their broadcast, in slot order."""
    return await execution_pairs(
        store, (_executions.c.slot >= _to_db(start)) & (_executions.c.slot < _to_db(end))
    )


async def execution_pairs(
    store: Store, where: sa.ColumnElement[bool]
) -> list[tuple[ExecutionRecord, BroadcastRecord]]:
    """The executions matching `where`, each with its broadcast, in slot order."""
    query = (
        sa.select(_executions, _broadcasts)
        .join(_broadcasts, _broadcasts.c.id == _executions.c.broadcast_id)
        .where(where)
        .order_by(_executions.c.slot, _executions.c.id)
    )
    pairs = []
    async with store.engine.connect() as conn:
        for row in (await conn.execute(query)).mappings():
            execution = _execution({c.name: row[c] for c in _executions.c})  # type: ignore[arg-type]
            broadcast = _broadcast({c.name: row[c] for c in _broadcasts.c})  # type: ignore[arg-type]
            pairs.append((execution, broadcast))
    return pairs
