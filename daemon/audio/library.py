"""The radio station's library of recordings: uploads checked in full, stored, deleted."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from audio.decode import AudioDecodeError, AudioTooLongError, probe_blocking
from daemon.audio import records
from daemon.audio.records import MediaItem
from daemon.audio.service import AudioInputError, AudioService, render_timeout_s
from daemon.media import MEDIA_TYPES

log = logging.getLogger(__name__)

NOT_AUDIO = "Tệp không phải âm thanh đọc được hoặc đã hỏng"


def _duration_words(seconds: int) -> str:
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return f"{minutes} phút {rest} giây"
    return f"{minutes} phút" if minutes else f"{rest} giây"


class Library:
    def __init__(self, audio: AudioService) -> None:
        self.audio = audio
        self.store = audio.store
        self.media = audio.media

    async def add_upload(
        self, source: Path, *, title: str, original_name: str, created_by: str
    ) -> MediaItem:
        """Accept a recording: it must decode in full and fit the limits, or nothing is kept."""
        suffix = Path(original_name).suffix.lower().lstrip(".")
        if suffix not in MEDIA_TYPES:
            known = ", ".join(sorted(MEDIA_TYPES))
            raise AudioInputError(
                f"Không nhận loại tệp “.{suffix[:10]}”; hãy dùng: {known} (unsupported file type)"
            )
        limit = self.audio.config.upload_max_duration_s
        try:
            # A full decode in a thread (CPU, disk): a damaged file is refused here.
            info = await asyncio.to_thread(
                probe_blocking, source, float(limit), render_timeout_s(limit)
            )
            rendered = await self.audio.process_file(source, duration_s=info.duration_s)
        except AudioTooLongError:
            raise AudioInputError(
                f"Bản ghi dài quá {_duration_words(limit)} (recording longer than {limit} s)"
            ) from None
        except AudioDecodeError as exc:
            raise AudioInputError(f"{NOT_AUDIO} (not decodable audio: {exc})") from None
        async with self.audio.files_lock:
            original = await self.media.put_file(source, suffix)
            file = await self.media.put(rendered.data, rendered.suffix)
            item = MediaItem(
                id=uuid.uuid4().hex,
                kind="upload",
                title=title,
                file=file,
                original=original,
                original_name=original_name,
                source_codec=info.codec,
                duration_s=rendered.duration_s,
                size=len(rendered.data),
                created_by=created_by,
                created_at=self.audio.clock(),
            )
            try:
                await records.insert_item(self.store, item)
            except BaseException:
                await self.audio.remove_unused([file, original])
                raise
        log.info("media %s: %s uploaded %d s of audio", item.id, created_by, item.duration_s)
        return item

    async def list_items(self) -> list[MediaItem]:
        return await records.list_items(self.store)

    async def get_item(self, item_id: str) -> MediaItem | None:
        return await records.get_item(self.store, item_id)

    async def delete_item(self, item_id: str) -> MediaItem | None:
        async with self.audio.files_lock:
            item = await records.get_item(self.store, item_id)
            if item is None:
                return None
            await records.delete_item(self.store, item_id)
            await self.audio.remove_unused([item.file, *([item.original] if item.original else [])])
        return item
