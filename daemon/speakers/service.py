"""The speaker side of the daemon, wired: drivers on the MQTT link, registry, dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from audio.tone import tone_wav
from daemon.config import Config
from daemon.media import MediaSigner, MediaStore
from daemon.speakers.dispatcher import (
    CommandRequest,
    Dispatcher,
    DispatcherNotReadyError,
    Route,
)
from daemon.speakers.outbox import CommandRecord
from daemon.speakers.registry import Presence, SpeakerRegistry
from daemon.speakers.zones import save_zone, stored_zone_names
from daemon.store import Store
from daemon.supervisor import LoacamError
from drivers.backoff import pause
from drivers.mqtt import MqttLink, MqttMessage
from drivers.speaker import DRIVERS
from drivers.speaker.model import (
    Ack,
    Op,
    PlaybackEvent,
    Priority,
    SpeakerAddress,
    SpeakerDriver,
)

log = logging.getLogger(__name__)

ALARM_TICK_S = 1.0


class SpeakerStoreError(LoacamError):
    """The store failed under the speaker loop (restarted with backoff)."""


async def _first_failure(*loops: Coroutine[object, object, None]) -> None:
    """Run the loops together; the first to fail cancels the others and raises as it is.

    (A TaskGroup would wrap the error in an ExceptionGroup, which the supervisor
    cannot tell from a programming error.)
    """
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (exc := task.exception()) is not None:
                raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class TargetError(ValueError):
    """A target names a zone or speaker loacam does not know."""


@dataclass(frozen=True)
class Targets:
    """Who a command is for; the broadcast API's shape (all, zones and/or speakers)."""

    all: bool = False
    zones: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    speakers: int
    online: int


class SpeakerService:
    """What the API and the scheduler use: targets, zones and commands to speakers."""

    def __init__(
        self, config: Config, store: Store, link: MqttLink, media: MediaStore, signer: MediaSigner
    ) -> None:
        fleet = config.fleet
        self._config = config
        self._store = store
        self._media = media
        self.registry = SpeakerRegistry(
            config.site,
            config.speakers,
            store,
            link,
            alarm_after_s=fleet.offline_alarm_after_s,
            hermes_seen_s=fleet.hermes_seen_s,
            heard_presence=frozenset(n for n, d in DRIVERS.items() if d.presence_from_traffic),
        )
        self.drivers: dict[str, SpeakerDriver] = {
            name: driver(link, config.site, self.registry.device_ids(name))
            for name, driver in DRIVERS.items()
        }
        self.dispatcher = Dispatcher(
            store,
            link,
            self.drivers,
            media,
            signer,
            route=self._route,
            is_online=self.registry.is_online,
            expiry_s=fleet.command_expiry_s,
            resend_after_s=fleet.resend_after_s,
        )
        self._zone_names = {zone.id: zone.name for zone in config.zones}
        self._tasks: set[asyncio.Task[None]] = set()
        self.tone: str | None = None
        self.registry.on_back_online(self._resend_to)
        for driver in self.drivers.values():
            for topic_filter in driver.topic_filters():
                link.subscribe(topic_filter, self._handler(driver))

    async def run(self, stop: asyncio.Event) -> None:
        """Load what the store knows, then follow commands and alarms until `stop`."""
        try:
            await self.registry.load()
            self._zone_names |= await stored_zone_names(self._store)
            # Synthesising 30 s of tone is ~0.3 s of CPU: not on the event loop.
            tone = await asyncio.to_thread(tone_wav, self._config.fleet.test_tone_s)
            self.tone = await self._media.put(tone, "wav")
            self._media.pin(self.tone)
            await _first_failure(self.dispatcher.run(stop), self._watch_alarms(stop))
        except SQLAlchemyError as exc:
            # A full disk or a locked database: the supervisor restarts this loop.
            raise SpeakerStoreError(f"speakers: database error: {exc}") from exc

    async def _watch_alarms(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.registry.tick()
            await pause(stop, ALARM_TICK_S)

    def _handler(self, driver: SpeakerDriver) -> Callable[[MqttMessage], Awaitable[None]]:
        async def handle(message: MqttMessage) -> None:
            report = driver.parse(message)
            if report is None:
                return
            if isinstance(report, Ack):
                self.registry.seen(report.speaker_id)
                self.dispatcher.on_ack(report)
            elif isinstance(report, PlaybackEvent):
                self.registry.seen(report.speaker_id)
                self.dispatcher.on_event(report)
            else:
                self.registry.on_report(report)

        return handle

    def _route(self, speaker_id: str) -> Route | None:
        speaker = self.registry.get(speaker_id)
        if speaker is None:
            return None
        return Route(speaker.driver, SpeakerAddress(speaker.id, speaker.device_id))

    def _resend_to(self, speaker_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.dispatcher.resend_pending(speaker_id))
        self._tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(self._tasks.discard)

    # -- targets and zones ------------------------------------------------------

    def resolve(self, targets: Targets) -> list[str]:
        """Speaker ids for these targets, in a stable order; unknown names are an error."""
        known = {s.id: s for s in self.registry.speakers()}
        unknown_zones = sorted(set(targets.zones) - self.registry.zone_ids())
        unknown_speakers = sorted(set(targets.speakers) - set(known))
        if unknown_zones or unknown_speakers:
            parts = []
            if unknown_zones:
                parts.append("vùng không tồn tại (unknown zones): " + ", ".join(unknown_zones))
            if unknown_speakers:
                parts.append("loa không tồn tại (unknown speakers): " + ", ".join(unknown_speakers))
            raise TargetError("; ".join(parts))
        return [
            s.id
            for s in known.values()
            if targets.all or s.zone in targets.zones or s.id in targets.speakers
        ]

    async def zones(self) -> list[Zone]:
        speakers = self.registry.speakers()
        ids = self.registry.zone_ids() | set(self._zone_names)
        return [
            Zone(
                id=zone_id,
                name=self._zone_names.get(zone_id, zone_id),
                speakers=sum(1 for s in speakers if s.zone == zone_id),
                online=sum(
                    1 for s in speakers if s.zone == zone_id and s.status == Presence.ONLINE
                ),
            )
            for zone_id in sorted(ids)
        ]

    async def save_zone(self, zone_id: str, name: str) -> None:
        await save_zone(self._store, zone_id, name)
        self._zone_names[zone_id] = name

    # -- commands ---------------------------------------------------------------

    async def play(
        self,
        speaker_ids: Sequence[str],
        media: str,
        *,
        source: str,
        priority: Priority = Priority.NORMAL,
        volume: int | None = None,
        item_id: str | None = None,
        expires_in_s: float | None = None,
    ) -> list[CommandRecord]:
        request = CommandRequest(
            Op.PLAY,
            source=source,
            media=media,
            item_id=item_id or source,
            priority=priority,
            volume=volume,
            expires_in_s=expires_in_s,
        )
        return await self.dispatcher.submit(speaker_ids, request)

    async def play_stream(
        self,
        speaker_ids: Sequence[str],
        url: str,
        *,
        ends_at: datetime,
        source: str,
        item_id: str,
        priority: Priority = Priority.NORMAL,
        volume: int | None = None,
    ) -> list[CommandRecord]:
        """A live `play` of a relayed stream until `ends_at`; speakers that cannot play
        streams fail at once as `unsupported`."""
        request = CommandRequest(
            Op.PLAY,
            source=source,
            item_id=item_id,
            priority=priority,
            volume=volume,
            stream_url=url,
            ends_at=ends_at,
        )
        return await self.dispatcher.submit(speaker_ids, request)

    async def test_tone(
        self,
        speaker_ids: Sequence[str],
        *,
        volume: int | None,
        source: str,
        expires_in_s: float | None = None,
    ) -> list[CommandRecord]:
        if self.tone is None:
            raise DispatcherNotReadyError(
                "Hệ thống loa chưa sẵn sàng, xin thử lại sau (speaker service not ready)"
            )
        return await self.play(
            speaker_ids, self.tone, source=source, volume=volume, expires_in_s=expires_in_s
        )

    async def command(
        self,
        speaker_ids: Sequence[str],
        op: Op,
        *,
        source: str,
        volume: int | None = None,
        item_id: str | None = None,
    ) -> list[CommandRecord]:
        """`set_volume`, `stop`, `ping` or `reboot` on these speakers (a `stop` with an
        `item_id` stops only that item)."""
        return await self.dispatcher.submit(
            speaker_ids, CommandRequest(op, source=source, volume=volume, item_id=item_id)
        )
