"""Alarms, the event log and speaker presence times, in the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.store import Store
from daemon.store.schema import alarms, event_log, speaker_presence


@dataclass(frozen=True)
class Alarm:
    id: int
    kind: str
    subject: str
    since: datetime
    raised_at: datetime
    cleared_at: datetime | None
    message: str


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time in loacam is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def load_presence(store: Store) -> dict[str, tuple[bool, datetime]]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(speaker_presence))).mappings().all()
    return {row["speaker_id"]: (row["online"], _utc(row["since"])) for row in rows}


async def save_presence(store: Store, changes: Mapping[str, tuple[bool, datetime]]) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.delete(speaker_presence).where(speaker_presence.c.speaker_id.in_(list(changes)))
        )
        await conn.execute(
            sa.insert(speaker_presence),
            [
                {"speaker_id": speaker_id, "online": online, "since": since}
                for speaker_id, (online, since) in changes.items()
            ],
        )


async def active_alarms(store: Store, kind: str) -> list[tuple[str, datetime]]:
    query = sa.select(alarms.c.subject, alarms.c.since).where(
        alarms.c.kind == kind, alarms.c.cleared_at.is_(None)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(subject, _utc(since)) for subject, since in rows]


async def raise_alarm(
    store: Store, kind: str, subject: str, *, since: datetime, at: datetime, message: str
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.insert(alarms).values(
                kind=kind, subject=subject, since=since, raised_at=at, message=message
            )
        )
        await conn.execute(
            sa.insert(event_log).values(
                at=at, level="warning", kind=f"{kind}.raised", subject=subject, message=message
            )
        )


async def clear_alarm(store: Store, kind: str, subject: str, *, at: datetime, message: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.update(alarms)
            .where(
                alarms.c.kind == kind, alarms.c.subject == subject, alarms.c.cleared_at.is_(None)
            )
            .values(cleared_at=at)
        )
        await conn.execute(
            sa.insert(event_log).values(
                at=at, level="info", kind=f"{kind}.cleared", subject=subject, message=message
            )
        )


async def list_alarms(store: Store, *, active_only: bool, limit: int) -> list[Alarm]:
    query = sa.select(alarms)
    if active_only:
        query = query.where(alarms.c.cleared_at.is_(None))
    query = query.order_by(alarms.c.raised_at.desc(), alarms.c.id.desc()).limit(limit)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        Alarm(
            id=row["id"],
            kind=row["kind"],
            subject=row["subject"],
            since=_utc(row["since"]),
            raised_at=_utc(row["raised_at"]),
            cleared_at=_utc(row["cleared_at"]) if row["cleared_at"] is not None else None,
            message=row["message"],
        )
        for row in rows
    ]
