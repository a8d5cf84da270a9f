"""Zones (villages, thôn): named groups of speakers."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.store import Store
from daemon.store.schema import zones


async def stored_zone_names(store: Store) -> dict[str, str]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(zones.c.id, zones.c.name))).all()
    return {str(zone_id): str(name) for zone_id, name in rows}


async def save_zone(store: Store, zone_id: str, name: str) -> None:
    """Create the zone or rename it."""
    now = datetime.now(UTC)
    async with store.engine.begin() as conn:
        updated = await conn.execute(
            sa.update(zones).where(zones.c.id == zone_id).values(name=name, updated_at=now)
        )
        if updated.rowcount == 0:
            await conn.execute(sa.insert(zones).values(id=zone_id, name=name, updated_at=now))
