"""The audio service with a real store, real files and the real pipeline: cache, render-ahead.

Time is injected: the tests move a clock, never sleep. The only stand-in is a speech
engine at the leaf (a tone instead of a voice) that fails when told to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from audio.tone import tone_wav
from audio.tts import Speech, TtsChain, TtsUnavailableError
from daemon.audio import records
from daemon.audio.ahead import RenderAhead, RenderJob
from daemon.audio.records import RenderRecord
from daemon.audio.service import AudioService
from daemon.config_audio import AudioConfig
from daemon.media import MediaStore
from daemon.speakers.outbox import DeliveryState
from daemon.store import Store
from daemon.store.schema import audio_renders, media_items, speaker_commands
from tests.fake_google_tts import AUDIO, HANG, FakeGoogleTts
from tests.speaker_rig import until
from tests.support import ffmpeg_children

T0 = datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
MB = 1024 * 1024


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class ToneEngine:
    """A local engine that 'speaks' a tone as long as the text, failing while told to."""

    failures_left: int = 0
    calls: int = 0
    name: str = "espeak-ng"
    network: bool = False
    voices: frozenset[str] = frozenset({"vi"})

    def params(self) -> str:
        return "tone"

    async def synthesize(self, text: str, voice: str) -> Speech:
        self.calls += 1
        if self.failures_left > 0:
            self.failures_left -= 1
            raise TtsUnavailableError("tone engine told to fail")
        return Speech(tone_wav(0.5 + len(text) / 100), "wav", self.name, voice)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "data")
    yield opened
    await opened.close()


def service(store: Store, tmp_path: Path, engine: ToneEngine, clock: Clock) -> AudioService:
    config = AudioConfig.model_validate({"cache_max_mb": 10, "tts": {"engines": ["espeak-ng"]}})
    media = MediaStore(tmp_path / "media")
    return AudioService(config, store, media, TtsChain([engine]), clock=clock)


async def test_render_ahead_renders_inside_the_window_and_retries_with_growing_pauses(
    store: Store, tmp_path: Path
) -> None:
    clock, engine = Clock(), ToneEngine(failures_left=2)
    audio = service(store, tmp_path, engine, clock)
    ahead = RenderAhead(audio, timedelta(minutes=30), clock=clock)
    morning = RenderJob("morning", "Chương trình buổi sáng", None, T0 + timedelta(minutes=20))
    evening = RenderJob("evening", "Chương trình buổi chiều", None, T0 + timedelta(hours=12))

    async def schedule(start: datetime, until: datetime) -> list[RenderJob]:
        return [job for job in (morning, evening) if start <= job.air_at <= until]

    ahead.add_source(schedule)
    assert await ahead.tick() == []  # first failure
    status = ahead.status("morning")
    assert status is not None
    assert (status.state, status.failures) == ("failed", 1)
    assert status.next_try == T0 + timedelta(seconds=30)
    assert ahead.status("evening") is None  # outside the window: not touched

    clock.advance(seconds=29)
    assert await ahead.tick() == []
    assert engine.calls == 1  # still pausing
    clock.advance(seconds=1)
    assert await ahead.tick() == []  # second failure: the pause doubles
    assert status.next_try == clock.now + timedelta(seconds=60)
    clock.advance(seconds=60)
    assert await ahead.tick() == ["morning"]
    assert status.state == "ready"
    assert status.spoken is not None
    assert await ahead.tick() == []  # ready stays ready
    assert engine.calls == 3

    # At air time the announcement is a cache hit: nothing is synthesised again.
    spoken = await audio.speak("Chương trình buổi sáng")
    assert spoken.cached
    assert spoken.file == status.spoken.file
    assert engine.calls == 3


async def _render(audio: AudioService, key: str, size: int, used: datetime) -> RenderRecord:
    file = await audio.media.put(key.encode() * 10, "mp3")
    record = RenderRecord(key, file, "espeak-ng", "vi", key, 1.0, size, used, used)
    await records.put_render(audio.store, record)
    return record


async def test_cache_evicts_the_least_recently_used_but_never_what_is_in_use(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock(T0 + timedelta(hours=5))
    audio = service(store, tmp_path, ToneEngine(), clock)
    oldest = await _render(audio, "oldest", 4 * MB, T0)
    playing = await _render(audio, "playing", 4 * MB, T0 + timedelta(minutes=10))
    shared = await _render(audio, "shared", 4 * MB, T0 + timedelta(minutes=20))
    older = await _render(audio, "older", 4 * MB, T0 + timedelta(minutes=30))
    recent = await _render(audio, "recent", 4 * MB, clock.now - timedelta(minutes=5))
    async with store.engine.begin() as conn:
        # A speaker is still fetching `playing`; the library holds `shared`'s file.
        await conn.execute(
            sa.insert(speaker_commands).values(
                cmd_id="c1", speaker_id="loa-1", driver="native", op="play",
                media=playing.file, priority=0, issued_at=T0, expires_at=clock.now,
                state=DeliveryState.SENT.value, updated_at=T0,
            )
        )  # fmt: skip
        await conn.execute(
            sa.insert(media_items).values(
                id="m1", kind="upload", title="x", file=shared.file, duration_s=1.0,
                size=1, created_by="radio", created_at=T0,
            )
        )  # fmt: skip

    freed = await audio.trim_cache()
    # 20 MB over a 10 MB limit: the oldest unused go first until it fits.
    assert freed == 12 * MB
    async with store.engine.connect() as conn:
        left = set((await conn.scalars(sa.select(audio_renders.c.key))).all())
    assert left == {"playing", "recent"}
    files = {p.name for p in audio.media.directory.iterdir() if p.is_file()}
    assert oldest.file not in files
    assert older.file not in files
    assert shared.file in files  # its render is gone, the library item keeps the file
    assert playing.file in files
    assert recent.file in files
    assert await audio.trim_cache() == 0


def chained(store: Store, tmp_path: Path, **gtts: float) -> AudioService:
    """The daemon's own chain from config: gTTS first, then espeak-ng."""
    config = AudioConfig.model_validate(
        {"tts": {"engines": ["gtts", "espeak-ng"], "gtts": {"timeout_s": 2, **gtts}}}
    )
    return AudioService(config, store, MediaStore(tmp_path / "media"))


async def test_an_emergency_never_calls_gtts_for_uncached_text(
    store: Store, tmp_path: Path, google: FakeGoogleTts
) -> None:
    audio = chained(store, tmp_path)
    google.script(then=AUDIO)  # Google would answer at once
    storm = "Khẩn cấp: bão số 3 đổ bộ lúc 14h, đề nghị bà con vào nơi trú ẩn an toàn."
    fire = "Khẩn cấp: cháy rừng ở thôn Đông, đề nghị lực lượng xung kích tập trung ngay."

    urgent = await audio.speak(storm, urgent=True)
    assert urgent.engine == "espeak-ng"
    assert google.requests == []
    assert google.tunnels == []

    normal = await audio.speak(fire)  # not urgent: Google first
    assert normal.engine == "gtts"
    assert not normal.cached
    asked = len(google.requests)
    assert asked >= 1

    # Once Google's audio is cached, an emergency may use it: it costs no network.
    again = await audio.speak(fire, urgent=True)
    assert (again.engine, again.cached, again.file) == ("gtts", True, normal.file)
    assert len(google.requests) == asked


async def test_gtts_refused_with_429_falls_back_after_its_retries(
    store: Store, tmp_path: Path, google: FakeGoogleTts
) -> None:
    audio = chained(store, tmp_path, retries=2, timeout_s=10)
    google.script(then=429)
    spoken = await audio.speak("Thông báo lịch cắt điện ngày 20/11.")
    assert spoken.engine == "espeak-ng"
    assert [a.engine for a in spoken.attempts] == ["gtts"]
    assert "429" in spoken.attempts[0].error
    assert len(google.requests) == 3  # the first try and two retries, then the fallback


async def test_a_silent_google_falls_back_within_the_configured_timeout(
    store: Store, tmp_path: Path, google: FakeGoogleTts
) -> None:
    audio = chained(store, tmp_path, timeout_s=1)
    google.script(then=HANG)
    # Without gTTS's timeout this would wait for ever; the guard turns that into a failure.
    spoken = await asyncio.wait_for(audio.speak("Họp dân lúc 8h sáng mai."), 60)
    assert spoken.engine == "espeak-ng"
    assert [a.engine for a in spoken.attempts] == ["gtts"]
    assert "Timeout" in spoken.attempts[0].error  # gTTS's own 1 s timeout, not the chain's
    assert len(google.requests) == 1


def test_a_chain_without_an_offline_engine_is_refused() -> None:
    """An emergency never waits for the internet: gTTS alone would leave it silent."""
    with pytest.raises(ValidationError, match="no offline engine"):
        AudioConfig.model_validate({"tts": {"engines": ["gtts"]}})
    with pytest.raises(ValidationError, match="no offline engine"):
        AudioConfig.model_validate({"tts": {"engines": ["gtts", "piper"], "voice": "vi-vn-x-south",
                                            "piper": {"model": "/opt/vi.onnx"}}})  # fmt: skip


async def test_a_fallback_render_is_reused_for_an_hour_then_google_is_asked_again(
    store: Store, tmp_path: Path, google: FakeGoogleTts
) -> None:
    audio = chained(store, tmp_path, retries=0)
    clock = Clock(datetime.now(UTC))
    audio.clock = clock
    text = "Lịch tiêm phòng cho đàn gia cầm tháng 12."
    google.script(then=429)
    first = await audio.speak(text)
    assert first.engine == "espeak-ng"
    asked = len(google.requests)

    clock.advance(minutes=50)
    again = await audio.speak(text)
    assert (again.engine, again.cached) == ("espeak-ng", True)
    assert len(google.requests) == asked  # within the hour: no new try

    clock.advance(minutes=20)
    still_down = await audio.speak(text)  # Google asked again, still refusing
    assert len(google.requests) > asked
    assert still_down.engine == "espeak-ng"

    google.script(then=AUDIO)
    clock.advance(minutes=61)
    back = await audio.speak(text)
    assert (back.engine, back.cached) == ("gtts", False)
    assert (await audio.speak(text)).engine == "gtts"  # and now Google's is the one cached


async def test_two_requests_for_one_new_text_share_one_render(store: Store, tmp_path: Path) -> None:
    engine = ToneEngine()
    audio = service(store, tmp_path, engine, Clock())
    first, second = await asyncio.gather(audio.speak("Họp thôn"), audio.speak("Họp thôn"))
    assert engine.calls == 1
    assert first.file == second.file


async def test_a_render_cancelled_at_shutdown_leaves_no_ffmpeg_and_no_file(
    store: Store, tmp_path: Path
) -> None:
    audio = service(store, tmp_path, ToneEngine(), Clock())
    task = asyncio.create_task(audio.speak("Thông báo dài. " * 300))  # about 45 s of audio

    async def ffmpeg_running() -> bool:
        return bool(ffmpeg_children())

    await until(ffmpeg_running)
    # What asyncio.run does to the tasks left when the daemon stops. (A request that is
    # merely abandoned does not stop the render: it is shared, and cached for next time.)
    for other in asyncio.all_tasks() - {asyncio.current_task()}:
        other.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def ffmpeg_gone() -> bool:
        return not ffmpeg_children()

    await until(ffmpeg_gone, within_s=5)
    work = audio.media.directory / ".work"
    assert list(work.iterdir()) == []
    async with store.engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(audio_renders))) == 0
    audio.close()
