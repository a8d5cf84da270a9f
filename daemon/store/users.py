"""User accounts and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from daemon.store.db import Store
from daemon.store.schema import audit_log, users


class UserExistsError(Exception):
    """A user with that name already exists."""


@dataclass(frozen=True)
class UserRecord:
    username: str
    role: str
    password_hash: str
    disabled: bool


async def add_user(store: Store, username: str, role: str, password_hash: str) -> None:
    try:
        async with store.engine.begin() as conn:
            await conn.execute(
                users.insert().values(
                    username=username,
                    role=role,
                    password_hash=password_hash,
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError as exc:
        raise UserExistsError(username) from exc


async def get_user(store: Store, username: str) -> UserRecord | None:
    query = sa.select(users.c.username, users.c.role, users.c.password_hash, users.c.disabled)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query.where(users.c.username == username))).first()
    if row is None:
        return None
    return UserRecord(row.username, row.role, row.password_hash, bool(row.disabled))


async def record_audit(
    store: Store, *, actor: str, action: str, target: str = "", client: str = "", detail: str = ""
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            audit_log.insert().values(
                at=datetime.now(UTC),
                actor=actor,
                action=action,
                target=target,
                client=client,
                detail=detail,
            )
        )
