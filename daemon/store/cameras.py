"""Cameras added through the API, stored as validated `CameraConfig` records."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from daemon.config import CameraConfig
from daemon.store.db import Store
from daemon.store.schema import cameras


class CameraExistsError(Exception):
    """A stored camera already has this id."""


def _values(camera: CameraConfig) -> dict[str, object]:
    return {
        "name": camera.name,
        "host": camera.host,
        "port": camera.port,
        "username": camera.username,
        "password": camera.password.get_secret_value() if camera.password else None,
        "share_with_district": camera.share_with_district,
        "share_with_radio": camera.share_with_radio,
        "sync_time": camera.sync_time,
        "enabled": camera.enabled,
        "timeout_s": camera.timeout_s,
        "updated_at": datetime.now(UTC),
    }


async def load_cameras(store: Store) -> list[CameraConfig]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(cameras).order_by(cameras.c.id))).mappings().all()
    return [
        CameraConfig(
            id=row["id"],
            name=row["name"],
            host=row["host"],
            port=row["port"],
            username=row["username"],
            password=SecretStr(row["password"]) if row["password"] is not None else None,
            share_with_district=row["share_with_district"],
            share_with_radio=row["share_with_radio"],
            sync_time=row["sync_time"],
            enabled=row["enabled"],
            timeout_s=row["timeout_s"],
        )
        for row in rows
    ]


async def insert_camera(store: Store, camera: CameraConfig) -> None:
    values = _values(camera) | {"id": camera.id, "created_at": datetime.now(UTC)}
    try:
        async with store.engine.begin() as conn:
            await conn.execute(cameras.insert().values(**values))
    except IntegrityError as exc:
        raise CameraExistsError(camera.id) from exc


async def update_camera(store: Store, camera: CameraConfig) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            cameras.update().where(cameras.c.id == camera.id).values(**_values(camera))
        )


async def delete_camera(store: Store, camera_id: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(cameras.delete().where(cameras.c.id == camera_id))
