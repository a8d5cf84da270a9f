"""Announcements as audio: text to speech through the engine chain, and the render cache.

Every text goes through the Vietnamese normaliser, then the engines in their
configured order, then the audio pipeline (loudness, chime, the speakers' format).
Rendered speech is cached under a key of everything that shaped it, so an
announcement aired twice a day is synthesised once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audio.decode import AudioDecodeError, AudioError
from audio.normalize import normalize
from audio.pipeline import Chime, LoudnessTarget, OutputFormat, Rendered, render_blocking
from audio.tts import (
    Attempt,
    EngineSettings,
    EspeakSettings,
    GttsSettings,
    PiperSettings,
    TtsChain,
    TtsEngine,
    TtsError,
    make_engine,
)
from daemon.audio import records
from daemon.audio.records import RenderRecord
from daemon.config_audio import AudioConfig, TtsConfig
from daemon.media import MediaStore
from daemon.store import Store

log = logging.getLogger(__name__)

# Renders are CPU work (ffmpeg, espeak-ng) on a two-core office server: a few at a
# time, in threads of their own, so a burst of previews cannot starve the live view or
# the logins. Emergencies skip this queue.
_RENDER_SLOTS = 2
# A render made by a fallback engine (Google was down) is used for this long; after
# that the preferred engine is asked again, so one outage does not stick for good.
FALLBACK_TTL = timedelta(hours=1)
# Render time grows with the audio: ~0.2 s per second of audio on the office server.
_RENDER_BASE_S = 120.0
_RENDER_PER_AUDIO_S = 0.5


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
    settings: list[EngineSettings] = []
    for name in config.engines:
        if name == "gtts":
            gtts = config.gtts
            # timeout_s bounds each request: a silent Google hands over to the next
            # engine after it. The whole text (many requests) has the chain's deadline.
            settings.append(
                GttsSettings(
                    timeout_s=gtts.timeout_s,
                    deadline_s=config.deadline_s,
                    retries=gtts.retries,
                    tld=gtts.tld,
                )
            )
        elif name == "espeak-ng":
            espeak = config.espeak
            settings.append(
                EspeakSettings(executable=espeak.executable, speed_wpm=espeak.speed_wpm)
            )
        elif config.piper.model is not None:  # the config refuses piper without a model
            settings.append(
                PiperSettings(model=config.piper.model, executable=config.piper.executable)
            )
    return TtsChain([make_engine(s) for s in settings], deadline_s=config.deadline_s)


def render_timeout_s(duration_s: float) -> float:
    return _RENDER_BASE_S + _RENDER_PER_AUDIO_S * duration_s


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
        self.clock = clock
        self._slots = asyncio.Semaphore(_RENDER_SLOTS)
        self._threads = ThreadPoolExecutor(_RENDER_SLOTS, thread_name_prefix="audio")
        self._rendering: dict[tuple[str, str, bool], asyncio.Future[Spoken]] = {}
        self._swept = False
        # Files are named by their content: two items may share one. Storing a file and
        # naming it in a row, and forgetting a row and deleting a file nobody names, are
        # each done under this lock, so a deletion never takes a file just stored again.
        self.files_lock = asyncio.Lock()
        # What was rendered ahead is used within the render-ahead window: never evicted.
        self.eviction_grace = max(
            timedelta(hours=1), timedelta(minutes=config.render_ahead_min + 10)
        )
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

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- text to speech ------------------------------------------------------------

    def normalize(self, text: str) -> str:
        if len(text) > self.config.max_text_chars:
            raise AudioInputError(
                f"Văn bản dài quá {self.config.max_text_chars} ký tự "
                f"(text longer than {self.config.max_text_chars} characters)"
            )
        said = normalize(text, self.config.abbreviations)
        if not any(char.isalpha() for char in said):
            raise AudioInputError("Văn bản trống, không có chữ nào để đọc (nothing to say)")
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
        stale: Spoken | None = None
        for rank, engine in enumerate(engines):
            found = await self._cached(said, engine, voice)
            if found is None:
                continue
            spoken, made_at = found
            if rank == 0 or urgent or self.clock() - made_at < FALLBACK_TTL:
                return spoken
            stale = spoken  # a fallback's render: ask the better engines again first
            break
        try:
            return await self._synthesize_once(said, voice, urgent=urgent)
        except AudioUnavailableError:
            if stale is None:
                raise
            log.warning(
                "tts: every engine failed again; the earlier %s render is used", stale.engine
            )
            return stale

    async def _synthesize_once(self, said: str, voice: str, *, urgent: bool) -> Spoken:
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

    async def _cached(
        self, said: str, engine: TtsEngine, voice: str
    ) -> tuple[Spoken, datetime] | None:
        key = self._key(said, engine, voice)
        record = await records.get_render(self.store, key, self.clock())
        if record is None:
            return None
        if not await asyncio.to_thread(self.media.path(record.file).exists):
            await records.forget_render(self.store, key)  # removed by hand: render again
            return None
        spoken = Spoken(record.file, record.engine, voice, said, record.duration_s, cached=True)
        return spoken, record.created_at

    async def _synthesize(self, said: str, voice: str, *, urgent: bool) -> Spoken:
        try:
            result = await self.chain.synthesize(said, voice, local_only=urgent)
        except TtsError as exc:
            raise AudioUnavailableError(f"Không đọc được văn bản ({exc})") from exc
        speech = result.speech
        try:
            rendered = await self._process_bytes(speech.data, speech.suffix, queue=not urgent)
        except AudioDecodeError as exc:
            # What an engine made is always audio: too little of it means too little text.
            raise AudioInputError(
                "Văn bản quá ngắn, không đọc thành tiếng được (too short to be spoken)"
            ) from exc
        engine = next(e for e in self.chain.engines_for(voice) if e.name == speech.engine)
        async with self.files_lock:
            file = await self.media.put(rendered.data, rendered.suffix)
            now = self.clock()
            record = RenderRecord(
                key=self._key(said, engine, voice),
                file=file,
                engine=speech.engine,
                voice=voice,
                normalized_text=said,
                duration_s=rendered.duration_s,
                size=len(rendered.data),
                created_at=now,
                last_used_at=now,
            )
            try:
                replaced = await records.put_render(self.store, record)
            except BaseException:
                await self.remove_unused([file])
                raise
            if replaced is not None and replaced != file:
                await self.remove_unused([replaced])
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

    async def _process_bytes(self, data: bytes, suffix: str, *, queue: bool) -> Rendered:
        work = self.media.directory / ".work"
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        source = work / f"{uuid.uuid4().hex}.{suffix}"
        try:
            await asyncio.to_thread(source.write_bytes, data)
            return await self.process_file(source, queue=queue)
        finally:
            await asyncio.to_thread(source.unlink, missing_ok=True)

    async def process_file(
        self, source: Path, *, queue: bool = True, duration_s: float = 600.0
    ) -> Rendered:
        """The pipeline on one file. AudioDecodeError passes through (the caller words it)."""
        try:
            if not queue:
                # An emergency: no queue, the loop's own threads, not the render pool, and
                # one encoding (audio.pipeline's quick): on air sooner, a little less level.
                return await self._render(source, duration_s, None, quick=True)
            async with self._slots:
                return await self._render(source, duration_s, self._threads)
        except AudioDecodeError:
            raise
        except AudioError as exc:  # a timeout, ffmpeg missing: nothing the user did
            raise AudioUnavailableError(f"Không xử lý được âm thanh ({exc})") from exc

    async def _render(
        self,
        source: Path,
        duration_s: float,
        threads: ThreadPoolExecutor | None,
        *,
        quick: bool = False,
    ) -> Rendered:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(
            threads,
            lambda: render_blocking(
                source,
                self.output,
                self.loudness,
                self.chime,
                render_timeout_s(duration_s),
                cancel=cancel,
                quick=quick,
            ),
        )
        try:
            # ffmpeg decodes, measures and encodes: blocking child processes, in a thread.
            return await job
        except asyncio.CancelledError:
            cancel.set()  # the thread kills its ffmpeg and ends within a fraction of a second
            raise

    # -- files and the cache -------------------------------------------------------------

    async def remove_unused(self, files: Iterable[str]) -> None:
        """Delete those of `files` nothing names any more (call with files_lock held)."""
        names = set(files)
        unused = names - await records.files_in_use(self.store, names)
        await self.media.remove(unused)

    async def trim_cache(self) -> int:
        """Evict the least recently used renders over `cache_max_mb`; returns bytes freed."""
        limit = self.config.cache_max_mb * 1024 * 1024
        total = await records.cache_size(self.store)
        if total <= limit:
            return 0
        freed = 0
        dropped: list[str] = []
        async with self.files_lock:
            candidates = await records.eviction_candidates(
                self.store, self.clock() - self.eviction_grace
            )
            for record in candidates:
                if total - freed <= limit:
                    break
                await records.forget_render(self.store, record.key)
                freed += record.size
                dropped.append(record.file)
            await self.remove_unused(dropped)
        if dropped:
            log.info(
                "tts cache: evicted %d renders, %d bytes (limit %d)", len(dropped), freed, limit
            )
        return freed

    async def sweep_temporary(self) -> None:
        """Once per daemon start: remove what a killed daemon left in the work folders."""
        if self._swept:
            return  # a restarted loop must not take a file an upload is writing now
        self._swept = True
        for folder in (self.media.directory / ".work", self.media.directory / ".incoming"):
            await asyncio.to_thread(_empty_folder_blocking, folder)


def _empty_folder_blocking(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file():
            path.unlink(missing_ok=True)
