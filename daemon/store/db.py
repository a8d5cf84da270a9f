"""Open the database, apply migrations, and answer readiness pings."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
# aiosqlite logs every statement with its parameters at DEBUG, stored camera passwords
# included: keep it quieter than any level loacam can be set to.
logging.getLogger("aiosqlite").setLevel(logging.INFO)

MIGRATIONS = Path(__file__).with_name("migrations")
DB_FILE = "loacam.db"


class StoreError(Exception):
    """The store cannot be opened or migrated."""


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    # WAL lets the API read while the scheduler writes; busy_timeout rides out a
    # concurrent `loacam user add` instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS}")
    return head


def _upgrade_blocking(connection: sa.Connection) -> None:
    cfg = _alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _current_blocking(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class Store:
    """The database. `open()` creates it if needed and brings its schema to head."""

    def __init__(self, engine: AsyncEngine, path: Path) -> None:
        self.engine = engine
        self.path = path

    @classmethod
    async def open(cls, directory: Path) -> Store:
        try:
            await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise StoreError(
                f"cannot create storage directory {directory}: {exc.strerror}"
            ) from exc
        path = directory / DB_FILE
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        store = cls(engine, path)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_upgrade_blocking)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        log.info("store %s: schema at revision %s", path, await store.revision())
        return store

    async def revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current_blocking)

    async def ping(self, limit_s: float = 2.0) -> bool:
        try:
            async with asyncio.timeout(limit_s), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("store %s: ping failed: %s", self.path, exc)
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
