"""Recovering from a clock set ahead: forget what was decided in a future that has not come.

A commune box with a flat RTC battery can boot in the wrong year; if it aired or missed
slots then, the executions carry those future times and the engine (rightly) refuses to
fire while the clock is behind them. Once the clock is right again, a technician asks to
forget them: executions whose slot has not come yet are deleted (those slots air at their
real time), the others keep their rows (never aired twice) with their send time brought
back to now, and a one-off finished by a deleted execution becomes active again. A
broadcast written under the wrong clock is dated now (the engine counts a broadcast's
slots from when it was last written).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.store import Status
from daemon.store import Store
from daemon.store.schema import broadcasts, executions, speaker_commands


@dataclass(frozen=True)
class Forgotten:
    deleted: int  # executions of slots that have not come yet
    brought_back: int  # executions of past slots whose send time was in the future
    reactivated: tuple[str, ...]  # broadcasts active again
    dropped_commands: tuple[str, ...] = ()  # speaker commands of the forgotten executions


async def forget_the_future(store: Store, now: datetime) -> Forgotten:
    now = now.astimezone(UTC)  # the store keeps UTC wall times
    future_slot = executions.c.slot > now
    async with store.engine.begin() as conn:
        doomed = (
            await conn.execute(
                sa.select(executions.c.id, executions.c.broadcast_id).where(future_slot)
            )
        ).all()
        owners = {broadcast_id for _, broadcast_id in doomed}
        # Their speaker commands go too: an execution id may be given again (SQLite reuses
        # the highest), and a command dated a year ahead must not be re-sent.
        pairs = [
            (source_of(broadcast_id), str(execution_id)) for execution_id, broadcast_id in doomed
        ]
        dropped: tuple[str, ...] = ()
        if pairs:
            which = sa.tuple_(speaker_commands.c.source, speaker_commands.c.item_id).in_(pairs)
            dropped = tuple(
                (await conn.execute(sa.select(speaker_commands.c.cmd_id).where(which))).scalars()
            )
            await conn.execute(sa.delete(speaker_commands).where(which))
        deleted = (await conn.execute(sa.delete(executions).where(future_slot))).rowcount
        brought_back = (
            await conn.execute(
                sa.update(executions).where(executions.c.fired_at > now).values(fired_at=now)
            )
        ).rowcount
        for column in (broadcasts.c.created_at, broadcasts.c.updated_at, broadcasts.c.planned_at):
            await conn.execute(sa.update(broadcasts).where(column > now).values({column.name: now}))
        reactivate = (
            sa.update(broadcasts)
            .where(broadcasts.c.id.in_(owners), broadcasts.c.status == Status.DONE.value)
            .values(status=Status.ACTIVE.value)
            .returning(broadcasts.c.id)
        )
        reactivated = tuple(sorted((await conn.execute(reactivate)).scalars()))
    return Forgotten(deleted, brought_back, reactivated, dropped)
