"""Announcements as audio: text to speech through the engine chain, uploads, the cache.

Every text goes through the Vietnamese normaliser, then the engines in their
configured order, then the audio pipeline (loudness, chime, the speakers' format).
Rendered speech is cached under a key of everything that shaped it, so an
announcement aired twice a day is synthesised once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from audio.decode import AudioDecodeError, AudioError, AudioTooLongError, probe_blocking
from audio.normalize import normalize
from audio.pipeline import Chime, LoudnessTarget, OutputFormat, Rendered, render_blocking
from audio.tts import (
    Attempt,
    EspeakEngine,
    EspeakSettings,
    GttsEngine,
    GttsSettings,
    PiperEngine,
    PiperSettings,
    TtsChain,
    TtsEngine,
    TtsError,
)
from daemon.audio import records
from daemon.audio.records import MediaItem, RenderRecord
from daemon.config_audio import AudioConfig, TtsConfig
from daemon.media import MEDIA_TYPES, MediaStore
from daemon.store import Store

log = logging.getLogger(__name__)

# A render used within this window is never evicted, even over the size limit: it may
# be on its way to the speakers of a broadcast being dispatched right now.
_EVICTION_GRACE = timedelta(hours=1)
# Renders are CPU work (ffmpeg, espeak-ng) on a two-core office server: a few at a
# time, so a burst of previews cannot starve the live view. Emergencies skip the queue.
_RENDER_SLOTS = 2


class AudioInputError(ValueError):
    """What the user gave cannot be used; the message says why, in Vietnamese first."""


class AudioUnavailableError(Exception):
    """No engine could speak the text (each one's failure is in the message)."""


@dataclass(frozen=True)
class Spoken:
    """Speech ready for the speakers."""

    file: str
    engine: str
    voice: str
    normalized_text: str
    duration_s: float
    cached: bool
    attempts: tuple[Attempt, ...] = ()


def build_chain(config: TtsConfig) -> TtsChain:
    """The configured engines, in the configured order."""
    engines: list[TtsEngine] = []
    for name in config.engines:
        if name == "gtts":
            gtts = config.gtts
            # timeout_s bounds every request and the whole text: the fallback comes in time.
            settings = GttsSettings(
                timeout_s=gtts.timeout_s,
                deadline_s=gtts.timeout_s,
                retries=gtts.retries,
                tld=gtts.tld,
            )
            engines.append(GttsEngine(settings))
        elif name == "espeak-ng":
            espeak = config.espeak
            engines.append(
                EspeakEngine(
                    EspeakSettings(executable=espeak.executable, speed_wpm=espeak.speed_wpm)
                )
            )
        elif config.piper.model is not None:  # the config refuses piper without a model
            engines.append(
                PiperEngine(
                    PiperSettings(model=config.piper.model, executable=config.piper.executable)
                )
            )
    return TtsChain(engines, deadline_s=config.deadline_s)


class AudioService:
    def __init__(
        self,
        config: AudioConfig,
        store: Store,
        media: MediaStore,
        chain: TtsChain | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.store = store
        self.media = media
        self.chain = chain or build_chain(config.tts)
        self._clock = clock
        self._slots = asyncio.Semaphore(_RENDER_SLOTS)
        self._rendering: dict[tuple[str, str, bool], asyncio.Future[Spoken]] = {}
        out = config.output
        self.output = OutputFormat(
            codec=out.codec, sample_rate=out.sample_rate, bitrate_kbps=out.bitrate_kbps
        )
        self.loudness = LoudnessTarget(
            integrated_lufs=config.loudness.integrated_lufs,
            true_peak_dbtp=config.loudness.true_peak_dbtp,
        )
        self.chime = Chime(
            before=config.chime.before, after=config.chime.after, file=config.chime.file
        )

    # -- text to speech ------------------------------------------------------------

    def normalize(self, text: str) -> str:
        if len(text) > self.config.max_text_chars:
            raise AudioInputError(
                f"Văn bản dài quá {self.config.max_text_chars} ký tự "
                f"(text longer than {self.config.max_text_chars} characters)"
            )
        said = normalize(text, self.config.abbreviations)
        if not said.strip():
            raise AudioInputError("Văn bản trống, không có gì để đọc (nothing to say)")
        return said

    async def speak(self, text: str, voice: str | None = None, *, urgent: bool = False) -> Spoken:
        """`text` as speech for the speakers, from the cache when it can be.

        `urgent` (an emergency) never waits for a network engine: unless gTTS's audio is
        already cached, a local engine speaks it, and it skips the render queue.
        """
        said = self.normalize(text)
        voice = voice or self.config.tts.voice
        engines = self.chain.engines_for(voice)
        if not engines:
            raise AudioInputError(f"Không có bộ đọc nào cho giọng {voice} (no engine for voice)")
        for engine in engines:
            cached = await self._cached(said, engine, voice)
            if cached is not None:
                return cached
        flight = (said, voice, urgent)
        pending = self._rendering.get(flight)
        if pending is None:
            # Two requests for the same new text (a double click) share one render.
            pending = asyncio.ensure_future(self._synthesize(said, voice, urgent=urgent))
            self._rendering[flight] = pending
            pending.add_done_callback(lambda _: self._rendering.pop(flight, None))
        return await asyncio.shield(pending)

    def _key(self, said: str, engine: TtsEngine, voice: str) -> str:
        parts = [
            said,
            engine.name,
            voice,
            engine.params(),
            f"{self.output}|{self.loudness}|{self._chime_params()}",
        ]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def _chime_params(self) -> str:
        chime = self.chime
        if chime.file is None or not (chime.before or chime.after):
            return repr(chime)
        try:  # a replaced chime file must not reuse renders made with the old one
            stat = chime.file.stat()
        except OSError:
            return repr(chime)
        return f"{chime!r}|{stat.st_size}|{stat.st_mtime_ns}"

    async def _cached(self, said: str, engine: TtsEngine, voice: str) -> Spoken | None:
        key = self._key(said, engine, voice)
        record = await records.get_render(self.store, key, self._clock())
        if record is None:
            return None
        if not await asyncio.to_thread(self.media.path(record.file).exists):
            await records.forget_render(self.store, key)  # removed by hand: render again
            return None
        return Spoken(record.file, record.engine, voice, said, record.duration_s, cached=True)

    async def _synthesize(self, said: str, voice: str, *, urgent: bool) -> Spoken:
        try:
            result = await self.chain.synthesize(said, voice, local_only=urgent)
        except TtsError as exc:
            raise AudioUnavailableError(f"Không đọc được văn bản: {exc}") from exc
        speech = result.speech
        rendered = await self._process_bytes(speech.data, speech.suffix, queue=not urgent)
        file = await self.media.put(rendered.data, rendered.suffix)
        engine = next(e for e in self.chain.engines_for(voice) if e.name == speech.engine)
        now = self._clock()
        await records.put_render(
            self.store,
            RenderRecord(
                key=self._key(said, engine, voice),
                file=file,
                engine=speech.engine,
                voice=voice,
                normalized_text=said,
                duration_s=rendered.duration_s,
                size=len(rendered.data),
                created_at=now,
                last_used_at=now,
            ),
        )
        log.info(
            "tts: %s spoke %d characters as %s (%.1f s)",
            speech.engine,
            len(said),
            file,
            rendered.duration_s,
        )
        await self.trim_cache()
        return Spoken(
            file,
            speech.engine,
            voice,
            said,
            rendered.duration_s,
            cached=False,
            attempts=result.attempts,
        )

    # -- the pipeline ---------------------------------------------------------------

    async def _process_bytes(self, data: bytes, suffix: str, *, queue: bool = True) -> Rendered:
        work = self.media.directory / ".work"
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        source = work / f"{uuid.uuid4().hex}.{suffix}"
        try:
            await asyncio.to_thread(source.write_bytes, data)
            return await self._process_file(source, queue=queue)
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)

    async def _process_file(self, source: Path, *, queue: bool = True) -> Rendered:
        try:
            if not queue:
                return await self._render_in_thread(source)
            async with self._slots:
                return await self._render_in_thread(source)
        except AudioDecodeError as exc:
            raise AudioInputError(
                f"Tệp không phải âm thanh đọc được hoặc đã hỏng (not decodable audio: {exc})"
            ) from None
        except AudioError as exc:  # a timeout, ffmpeg missing: nothing the user did
            raise AudioUnavailableError(f"Không xử lý được âm thanh: {exc}") from exc

    async def _render_in_thread(self, source: Path) -> Rendered:
        # ffmpeg decodes, measures and encodes: blocking child processes, run from a thread.
        return await asyncio.to_thread(
            render_blocking, source, self.output, self.loudness, self.chime
        )

    # -- the cache ------------------------------------------------------------------

    async def trim_cache(self) -> int:
        """Evict the least recently used renders over `cache_max_mb`; returns bytes freed."""
        limit = self.config.cache_max_mb * 1024 * 1024
        total = await records.cache_size(self.store)
        if total <= limit:
            return 0
        freed = 0
        dropped: list[str] = []
        for record in await records.eviction_candidates(
            self.store, self._clock() - _EVICTION_GRACE
        ):
            if total - freed <= limit:
                break
            await records.forget_render(self.store, record.key)
            freed += record.size
            dropped.append(record.file)
        await self._remove_unused(dropped)
        log.info("tts cache: evicted %d renders, %d bytes (limit %d)", len(dropped), freed, limit)
        return freed

    async def _remove_unused(self, files: Iterable[str]) -> None:
        names = set(files)
        unused = names - await records.files_in_use(self.store, names)
        await self.media.remove(unused)

    # -- the library ----------------------------------------------------------------

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
        limit = self.config.upload_max_duration_s
        try:
            info = await asyncio.to_thread(probe_blocking, source, float(limit))
        except AudioTooLongError:
            raise AudioInputError(
                f"Bản ghi dài quá {limit // 60} phút (recording longer than {limit} s)"
            ) from None
        except AudioDecodeError as exc:
            raise AudioInputError(
                f"Tệp không phải âm thanh đọc được hoặc đã hỏng (not decodable audio: {exc})"
            ) from None
        rendered = await self._process_file(source)
        original = await self.media.put(await asyncio.to_thread(source.read_bytes), suffix)
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
            created_at=self._clock(),
        )
        try:
            await records.insert_item(self.store, item)
        except SQLAlchemyError:
            await self._remove_unused([file, original])
            raise
        log.info("media %s: %s uploaded %r (%.1f s)", item.id, created_by, title, item.duration_s)
        return item

    async def list_items(self) -> list[MediaItem]:
        return await records.list_items(self.store)

    async def get_item(self, item_id: str) -> MediaItem | None:
        return await records.get_item(self.store, item_id)

    async def delete_item(self, item_id: str) -> MediaItem | None:
        item = await records.get_item(self.store, item_id)
        if item is None:
            return None
        await records.delete_item(self.store, item_id)
        await self._remove_unused([item.file, *([item.original] if item.original else [])])
        return item
