"""The store side of relayed streams: which relays still need their end sent, and the
claim on sending it (as an execution row is the claim on airing a slot)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    ExecutionRecord,
    Kind,
    execution_pairs,
)
from daemon.store.db import Store
from daemon.store.schema import broadcasts as _broadcasts
from daemon.store.schema import executions as _executions


async def unstopped_relays(store: Store) -> list[tuple[ExecutionRecord, BroadcastRecord]]:
    """Relays being aired or handed to the speakers (PENDING or DISPATCHED) whose end has
    not been sent yet, with their broadcast, in slot order."""
    return await execution_pairs(
        store,
        (_broadcasts.c.kind == Kind.URL.value)
        & _executions.c.stopped_at.is_(None)
        & _executions.c.state.in_([ExecState.PENDING.value, ExecState.DISPATCHED.value]),
    )


async def mark_stopped(store: Store, execution_id: int, at: datetime) -> bool:
    """Claim a relay's end before sending it (as `claim` does a slot's air): False if
    it was claimed already, by this daemon before a restart or by another."""
    statement = (
        sa.update(_executions)
        .where(_executions.c.id == execution_id, _executions.c.stopped_at.is_(None))
        .values(stopped_at=at.astimezone(UTC))
    )
    async with store.engine.begin() as conn:
        return (await conn.execute(statement)).rowcount == 1


async def release_stopped(store: Store, execution_id: int) -> None:
    """Undo `mark_stopped`: the stop could not be sent, it is to be tried again."""
    statement = (
        sa.update(_executions).where(_executions.c.id == execution_id).values(stopped_at=None)
    )
    async with store.engine.begin() as conn:
        await conn.execute(statement)
