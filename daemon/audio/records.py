"""Stored audio: the library of uploaded recordings and the rendered-speech cache index."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from daemon.speakers.outbox import DeliveryState
from daemon.store.db import Store
from daemon.store.schema import audio_renders, media_items, speaker_commands

_UNFINISHED = [s.value for s in DeliveryState if not s.terminal]


@dataclass(frozen=True)
class MediaItem:
    id: str
    kind: str
    title: str
    file: str
    original: str | None
    original_name: str
    source_codec: str
    duration_s: float
    size: int
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class RenderRecord:
    key: str
    file: str
    engine: str
    voice: str
    normalized_text: str
    duration_s: float
    size: int
    created_at: datetime
    last_used_at: datetime


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything loacam stores is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _item(row: sa.RowMapping) -> MediaItem:
    values = dict(row)
    values["created_at"] = _utc(values["created_at"])
    return MediaItem(**values)


def _render(row: sa.RowMapping) -> RenderRecord:
    values = dict(row)
    values["created_at"] = _utc(values["created_at"])
    values["last_used_at"] = _utc(values["last_used_at"])
    return RenderRecord(**values)


async def insert_item(store: Store, item: MediaItem) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(media_items).values(**item.__dict__))


async def list_items(store: Store) -> list[MediaItem]:
    query = sa.select(media_items).order_by(media_items.c.created_at.desc())
    async with store.engine.connect() as conn:
        return [_item(row) for row in (await conn.execute(query)).mappings()]


async def get_item(store: Store, item_id: str) -> MediaItem | None:
    query = sa.select(media_items).where(media_items.c.id == item_id)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return _item(row) if row is not None else None


async def delete_item(store: Store, item_id: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.delete(media_items).where(media_items.c.id == item_id))


async def get_render(store: Store, key: str, now: datetime) -> RenderRecord | None:
    """The cached render for `key`, marked as used now."""
    async with store.engine.begin() as conn:
        row = (
            (await conn.execute(sa.select(audio_renders).where(audio_renders.c.key == key)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        await conn.execute(
            sa.update(audio_renders).where(audio_renders.c.key == key).values(last_used_at=now)
        )
    return _render(row)


async def put_render(store: Store, record: RenderRecord) -> str | None:
    """Record a render, replacing an older one under the same key; the older one's file."""
    same_key = audio_renders.c.key == record.key
    async with store.engine.begin() as conn:
        previous = await conn.scalar(sa.select(audio_renders.c.file).where(same_key))
        await conn.execute(sa.delete(audio_renders).where(same_key))
        await conn.execute(sa.insert(audio_renders).values(**record.__dict__))
    return previous


async def forget_render(store: Store, key: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.delete(audio_renders).where(audio_renders.c.key == key))


async def cache_size(store: Store) -> int:
    async with store.engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(audio_renders.c.size), 0)))
    return int(total or 0)


async def eviction_candidates(store: Store, used_before: datetime) -> list[RenderRecord]:
    """Renders not used since `used_before` and not being played, least recently used first."""
    playing = sa.select(speaker_commands.c.media).where(
        speaker_commands.c.state.in_(_UNFINISHED), speaker_commands.c.media.is_not(None)
    )
    query = (
        sa.select(audio_renders)
        .where(audio_renders.c.last_used_at < used_before, audio_renders.c.file.not_in(playing))
        .order_by(audio_renders.c.last_used_at)
    )
    async with store.engine.connect() as conn:
        return [_render(row) for row in (await conn.execute(query)).mappings()]


async def files_in_use(store: Store, files: Collection[str]) -> set[str]:
    """Which of `files` a render, a library item or an unfinished command still names."""
    if not files:
        return set()
    names = list(files)
    queries = [
        sa.select(audio_renders.c.file).where(audio_renders.c.file.in_(names)),
        sa.select(media_items.c.file).where(media_items.c.file.in_(names)),
        sa.select(media_items.c.original).where(media_items.c.original.in_(names)),
        sa.select(speaker_commands.c.media).where(
            speaker_commands.c.media.in_(names), speaker_commands.c.state.in_(_UNFINISHED)
        ),
    ]
    used: set[str] = set()
    async with store.engine.connect() as conn:
        for query in queries:
            used.update(name for name in (await conn.scalars(query)) if name is not None)
    return used
