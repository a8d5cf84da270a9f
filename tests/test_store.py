"""The store: WAL, migrations with a version table, a plain error when it cannot open."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.store import Store, StoreError
from daemon.store.db import head_revision


async def test_open_migrates_to_head_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        assert await store.revision() == head_revision()
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("PRAGMA journal_mode"))).scalar() == "wal"
            tables = set(
                (
                    await conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))
                ).scalars()
            )
            version = (
                await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).scalar()
        assert {"users", "audit_log", "alembic_version"} <= tables
        assert version == head_revision()
        assert await store.ping()
    finally:
        await store.close()


async def test_reopening_keeps_data(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO audit_log (at, actor, action) VALUES ('2026-01-01', 'a', 'b')")
        )
    await store.close()
    store = await Store.open(tmp_path)
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM audit_log"))).scalar() == 1
    await store.close()


async def test_a_file_in_the_way_is_a_plain_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create storage directory"):
        await Store.open(tmp_path / "data")
