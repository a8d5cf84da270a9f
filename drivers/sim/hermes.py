"""A simulated Rhasspy Hermes audio server: a speaker loacam drives with the `hermes` driver.

It does what Rhasspy's audio output does with the messages docs/mqtt-speakers.md lists:
plays `playBytes` WAVs one after the other (each for its length divided by `speed`),
then says `playFinished`; obeys `setVolume` addressed to its siteId; and, like a Rhasspy
with its microphone on, streams small `audioFrame`s, which is how loacam sees it alive.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self

import aiomqtt

from drivers.backoff import Backoff, pause
from drivers.sim.changes import Changes

log = logging.getLogger(__name__)

SET_VOLUME_TOPIC = "rhasspy/audioServer/setVolume"
FRAME_RATE = 16000  # Rhasspy's own audio format: 16 kHz, 16-bit, mono
FRAME_SAMPLES = 256


@dataclass(frozen=True)
class HermesPlay:
    """One played `playBytes`, as the WAV header describes it."""

    request_id: str
    duration_s: float
    sample_rate: int
    channels: int
    sample_width: int  # bytes per sample
    frames: int


def wav_info(request_id: str, data: bytes) -> HermesPlay:
    """What a WAV header says (the samples are not read); wave.Error if it is no WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, frames = wav.getframerate(), wav.getnframes()
            channels, width = wav.getnchannels(), wav.getsampwidth()
    except (EOFError, RuntimeError) as exc:
        # truncated, or a chunk size pointing outside the data (wave's seek says
        # RuntimeError for that)
        raise wave.Error(f"damaged WAV: {exc!r}") from exc
    if rate <= 0 or frames <= 0:
        raise wave.Error(f"no audio: {frames} frames at {rate} Hz")
    return HermesPlay(request_id, frames / rate, rate, channels, width, frames)


def silent_wav(frames: int = FRAME_SAMPLES) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(FRAME_RATE)
        wav.writeframes(b"\0\0" * frames)
    return out.getvalue()


class SimulatedHermesSpeaker:
    """`async with` returns once connected and subscribed; it reconnects by itself."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        site_id: str,
        speed: float = 1.0,
        announce_every_s: float | None = 10.0,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {speed}")
        self.host = host
        self.port = port
        self.site_id = site_id
        self.speed = speed
        self.announce_every_s = announce_every_s
        self.plays: list[HermesPlay] = []  # in the order played, recorded when playing starts
        self.finished: list[str] = []  # request ids whose playFinished was published
        self.volume: float | None = None
        self.online = False
        self.announcements = 0
        self._client: aiomqtt.Client | None = None
        self._queue: asyncio.Queue[HermesPlay] = asyncio.Queue()
        self._changes = Changes(self.site_id)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def topic(self, leaf: str) -> str:
        return f"hermes/audioServer/{self.site_id}/{leaf}"

    async def __aenter__(self) -> Self:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._player())]
        try:
            await self.wait_for(lambda s: s.online)
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._shutdown()

    async def wait_for(
        self,
        predicate: Callable[[SimulatedHermesSpeaker], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - the simulators' common API
    ) -> None:
        """Return once `predicate(self)` holds, re-checked on every change; else TimeoutError."""
        await self._changes.wait_until(lambda: predicate(self), timeout)

    async def _shutdown(self) -> None:
        self._stop.set()
        self._tasks[1].cancel()  # the player: a stopped server plays nothing more
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        while not self._stop.is_set():
            try:
                await self._session(backoff)
            except aiomqtt.MqttError as exc:
                log.info("%s: connection lost or refused: %s", self.site_id, exc)
            self._set_online(online=False)
            if not self._stop.is_set():
                await pause(self._stop, backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"hermes-{self.site_id}",
            username=self.site_id,
            keepalive=30,
            timeout=10.0,
        )
        async with client:
            await client.subscribe(self.topic("playBytes/+"), qos=1)
            await client.subscribe(SET_VOLUME_TOPIC, qos=1)
            self._client = client
            backoff.reset()
            self._set_online(online=True)
            try:
                await self._serve(client)
            finally:
                self._client = None

    async def _serve(self, client: aiomqtt.Client) -> None:
        over = asyncio.Event()
        pump = asyncio.create_task(self._pump(client))
        announcer = asyncio.create_task(self._announce(client, over))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({pump, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            over.set()
            for task in (pump, announcer, stopper):
                task.cancel()
            await asyncio.gather(pump, announcer, stopper, return_exceptions=True)
        if pump.done() and not pump.cancelled() and (exc := pump.exception()) is not None:
            raise exc

    async def _pump(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.topic.matches(SET_VOLUME_TOPIC):
                self._on_set_volume(payload)
            else:
                self._on_play_bytes(str(message.topic).rsplit("/", 1)[-1], payload)

    def _on_play_bytes(self, request_id: str, data: bytes) -> None:
        try:
            # Only the header is parsed: fast enough for the event loop.
            play = wav_info(request_id, data)
        except wave.Error as exc:
            # Rhasspy would fail to play it and say nothing: no playFinished.
            log.warning("%s: playBytes %s is no playable WAV: %s", self.site_id, request_id, exc)
            return
        self._queue.put_nowait(play)

    def _on_set_volume(self, payload: bytes) -> None:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            log.warning("%s: ignored a setVolume that is not JSON", self.site_id)
            return
        if not isinstance(data, dict) or data.get("siteId") != self.site_id:
            return  # addressed to another audio server
        volume = data.get("volume")
        if isinstance(volume, bool) or not isinstance(volume, int | float) or not 0 <= volume <= 1:
            log.warning("%s: ignored setVolume %r", self.site_id, volume)
            return
        self.volume = float(volume)
        self._changed()

    async def _player(self) -> None:
        # One at a time, in arrival order, as Rhasspy's audio output plays. The loop
        # also checks `_stop`: Python 3.11's asyncio.wait_for, inside aiomqtt's
        # publish, loses a cancellation that arrives together with the PUBACK.
        while not self._stop.is_set():
            play = await self._queue.get()
            self.plays.append(play)
            self._changed()
            await asyncio.sleep(play.duration_s / self.speed)  # the simulated playback
            await self._publish(
                self.topic("playFinished"),
                json.dumps({"id": play.request_id, "siteId": self.site_id}).encode(),
            )
            self.finished.append(play.request_id)
            self._changed()

    async def _announce(self, client: aiomqtt.Client, over: asyncio.Event) -> None:
        if self.announce_every_s is None:
            return
        frame = silent_wav()
        while not over.is_set():  # not only cancellation: see `_player`
            await client.publish(self.topic("audioFrame"), frame, qos=0)
            self.announcements += 1
            self._changed()
            await asyncio.sleep(self.announce_every_s)  # the announcement period itself

    async def _publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            log.warning("%s: offline, %s not published", self.site_id, topic)
            return
        try:
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("%s: publish on %s failed: %s", self.site_id, topic, exc)

    def _set_online(self, *, online: bool) -> None:
        if self.online != online:
            self.online = online
            self._changed()

    def _changed(self) -> None:
        self._changes.notify()
