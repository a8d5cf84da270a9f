"""The fleet: which speakers exist, which are alive, what they play, and offline alarms.

Speakers come from the configuration and from their own retained `info`. After a
daemon restart the broker replays every retained status, info and state, so the
fleet is whole again within a second of the link coming up; `speaker_presence` in
the store keeps *since when* a speaker has been offline, so an alarm neither
restarts its clock nor is raised twice.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

from daemon.config import SpeakerConfig
from daemon.speakers import alarms as alarm_store
from daemon.store import Store
from drivers.mqtt import MqttLink, MqttLinkError
from drivers.speaker.model import Availability, Playing, Seen, SpeakerInfo, SpeakerState

log = logging.getLogger(__name__)

OFFLINE_ALARM = "speaker_offline"
RETAINED_GRACE = timedelta(seconds=3)


class Presence(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # nothing heard since the daemon started


@dataclass(frozen=True)
class Speaker:
    """One speaker as the API shows it (a snapshot)."""

    id: str
    name: str
    zone: str | None
    driver: str
    device_id: str
    declared: bool  # in the configuration (else: announced itself)
    status: Presence = Presence.UNKNOWN
    since: datetime | None = None
    last_seen: datetime | None = None
    volume: int | None = None
    playing: Playing | None = None
    faults: tuple[str, ...] = ()
    signal_dbm: float | None = None
    model: str | None = None
    firmware: str | None = None
    codecs: tuple[str, ...] = ()
    alarm_since: datetime | None = None


class SpeakerRegistry:
    """Every speaker's latest report, its presence over time, and its offline alarm."""

    def __init__(
        self,
        site: str,
        speakers: Sequence[SpeakerConfig],
        store: Store,
        link: MqttLink,
        *,
        alarm_after_s: float,
        hermes_seen_s: float,
        heard_presence: frozenset[str] = frozenset({"hermes"}),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """`heard_presence`: drivers whose speakers are online while heard from lately."""
        self._site = site
        self._store = store
        self._link = link
        self._alarm_after = timedelta(seconds=alarm_after_s)
        self._hermes_seen = timedelta(seconds=hermes_seen_s)
        self._heard_presence = heard_presence
        self._now = clock or (lambda: datetime.now(UTC))
        self.started_at = self._now()
        self._speakers: dict[str, Speaker] = {
            s.id: Speaker(
                id=s.id,
                name=s.name,
                zone=s.zone,
                driver=s.driver,
                device_id=s.site_id or s.id,
                declared=True,
            )
            for s in speakers
        }
        self._presence: dict[str, tuple[bool, datetime]] = {}
        self._presence_unsaved: dict[str, tuple[bool, datetime]] = {}
        self._open_alarms: dict[str, datetime] = {}
        self._back_online: list[Callable[[str], None]] = []

    def on_back_online(self, callback: Callable[[str], None]) -> None:
        self._back_online.append(callback)

    # -- reading ----------------------------------------------------------------

    def get(self, speaker_id: str) -> Speaker | None:
        speaker = self._speakers.get(speaker_id)
        return self._with_hermes_presence(speaker) if speaker is not None else None

    def speakers(self, *, zone: str | None = None, status: str | None = None) -> list[Speaker]:
        found = [self._with_hermes_presence(s) for s in self._speakers.values()]
        return sorted(
            (
                s
                for s in found
                if (zone is None or s.zone == zone) and (status is None or s.status == status)
            ),
            key=lambda s: (s.zone or "", s.id),
        )

    def zone_ids(self) -> set[str]:
        return {s.zone for s in self._speakers.values() if s.zone is not None}

    def is_online(self, speaker_id: str) -> bool:
        speaker = self.get(speaker_id)
        return speaker is not None and speaker.status is Presence.ONLINE

    def device_ids(self, driver: str) -> dict[str, str]:
        """Device id → speaker id of the configured speakers of one driver."""
        return {s.device_id: s.id for s in self._speakers.values() if s.driver == driver}

    def _with_hermes_presence(self, speaker: Speaker) -> Speaker:
        # No retained status in such protocols (Hermes): alive means heard from lately.
        if speaker.driver not in self._heard_presence or speaker.last_seen is None:
            return speaker
        alive_until = speaker.last_seen + self._hermes_seen
        if self._now() < alive_until:
            return replace(speaker, status=Presence.ONLINE, since=speaker.since)
        return replace(speaker, status=Presence.OFFLINE, since=alive_until)

    # -- reports ----------------------------------------------------------------

    def on_report(self, report: Availability | SpeakerInfo | SpeakerState | Seen) -> None:
        now = self._now()
        speaker = self._speakers.get(report.speaker_id)
        if speaker is None:
            if isinstance(report, Seen):
                return  # Hermes sites are declared in the configuration only
            speaker = self._announced(report)
        if isinstance(report, Availability):
            speaker = self._set_presence(speaker, online=report.online, now=now)
        elif isinstance(report, SpeakerInfo):
            speaker = replace(
                speaker,
                model=report.model or None,
                firmware=report.firmware or None,
                codecs=report.codecs,
                name=speaker.name if speaker.declared else (report.name or speaker.name),
                zone=speaker.zone if speaker.declared else (report.zones or (None,))[0],
            )
        elif isinstance(report, SpeakerState):
            speaker = replace(
                speaker,
                volume=report.volume,
                playing=report.playing,
                faults=report.faults,
                signal_dbm=report.signal_dbm,
            )
        elif isinstance(report, Seen) and (
            speaker.last_seen is None or now - speaker.last_seen >= self._hermes_seen
        ):
            speaker = replace(speaker, since=now)  # back after a silence: online from now
        if not isinstance(report, Availability) or report.online:
            speaker = replace(speaker, last_seen=now)
        self._speakers[speaker.id] = speaker

    def seen(self, speaker_id: str) -> None:
        """Any message from a speaker (an ack, an event) shows it is alive."""
        if (speaker := self._speakers.get(speaker_id)) is not None:
            self._speakers[speaker_id] = replace(speaker, last_seen=self._now())

    def _announced(self, report: Availability | SpeakerInfo | SpeakerState) -> Speaker:
        log.info("%s: speaker announced itself (not in the configuration)", report.speaker_id)
        return Speaker(
            id=report.speaker_id,
            name=report.speaker_id,
            zone=None,
            driver="native",
            device_id=report.speaker_id,
            declared=False,
            alarm_since=self._open_alarms.get(report.speaker_id),
        )

    def _set_presence(self, speaker: Speaker, *, online: bool, now: datetime) -> Speaker:
        status = Presence.ONLINE if online else Presence.OFFLINE
        if speaker.status == status:
            return speaker
        remembered = self._presence.get(speaker.id)
        since = remembered[1] if remembered is not None and remembered[0] == online else now
        if remembered is None or remembered[0] != online:
            self._presence[speaker.id] = self._presence_unsaved[speaker.id] = (online, since)
        log.info("%s: speaker %s", speaker.id, status.value)
        if online and speaker.status is Presence.OFFLINE:
            for callback in self._back_online:
                callback(speaker.id)
        return replace(speaker, status=status, since=since)

    # -- alarms -----------------------------------------------------------------

    async def load(self) -> None:
        """Presence times and active alarms from an earlier run."""
        self._presence = await alarm_store.load_presence(self._store)
        # Kept apart from the fleet: a speaker that announces itself arrives later.
        self._open_alarms = dict(await alarm_store.active_alarms(self._store, OFFLINE_ALARM))
        for speaker_id, since in self._open_alarms.items():
            if (speaker := self._speakers.get(speaker_id)) is not None:
                self._speakers[speaker_id] = replace(speaker, alarm_since=since)

    async def tick(self) -> None:
        """Save presence changes, then raise and clear offline alarms."""
        if self._presence_unsaved:
            batch, self._presence_unsaved = self._presence_unsaved, {}
            await alarm_store.save_presence(self._store, batch)
        await self.check_alarms()

    async def check_alarms(self) -> None:
        link = self._link.state
        if not link.connected or self._now() - link.since < RETAINED_GRACE:
            # Without the broker (or before its retained messages are in) loacam knows
            # nothing of the speakers: no alarm for each of them, the link is the news.
            return
        now = self._now()
        for speaker in self.speakers():
            away_since = self._away_since(speaker)
            if away_since is not None and speaker.alarm_since is None:
                if now - away_since >= self._alarm_after:
                    await self._raise(speaker, away_since, now)
            elif away_since is None and speaker.alarm_since is not None:
                await self._clear(speaker, now)

    def _away_since(self, speaker: Speaker) -> datetime | None:
        if speaker.status is Presence.ONLINE:
            return None
        if speaker.since is not None:
            return speaker.since
        remembered = self._presence.get(speaker.id)
        if remembered is not None and not remembered[0]:
            return remembered[1]
        return self.started_at  # never heard of since start: count from then

    async def _raise(self, speaker: Speaker, since: datetime, now: datetime) -> None:
        local = since.astimezone(_VIETNAM).strftime("%H:%M %d/%m/%Y")
        message = f"{speaker.name} mất kết nối từ {local}"
        log.warning("%s: ALARM speaker offline since %s", speaker.id, since.isoformat())
        await alarm_store.raise_alarm(
            self._store, OFFLINE_ALARM, speaker.id, since=since, at=now, message=message
        )
        self._speakers[speaker.id] = replace(self._speakers[speaker.id], alarm_since=since)
        self._open_alarms[speaker.id] = since
        await self._publish_alarm(speaker.id, active=True, since=since, at=now, message=message)

    async def _clear(self, speaker: Speaker, now: datetime) -> None:
        message = f"{speaker.name} đã kết nối lại"
        log.info("%s: alarm cleared, speaker back online", speaker.id)
        await alarm_store.clear_alarm(
            self._store, OFFLINE_ALARM, speaker.id, at=now, message=message
        )
        since = speaker.alarm_since or now
        self._speakers[speaker.id] = replace(self._speakers[speaker.id], alarm_since=None)
        self._open_alarms.pop(speaker.id, None)
        await self._publish_alarm(speaker.id, active=False, since=since, at=now, message=message)

    async def _publish_alarm(
        self, speaker_id: str, *, active: bool, since: datetime, at: datetime, message: str
    ) -> None:
        body = {
            "alarm": OFFLINE_ALARM,
            "speaker_id": speaker_id,
            "active": active,
            "since": _iso(since),
            "at": _iso(at),
            "message": message,
        }
        try:
            await self._link.publish(
                f"loacam/{self._site}/alarm", json.dumps(body, ensure_ascii=False), qos=1
            )
        except MqttLinkError as exc:
            # The alarm is in the store and the API; MQTT is one more place to see it.
            log.warning("%s: alarm not published on MQTT: %s", speaker_id, exc)


_VIETNAM = timezone(timedelta(hours=7), "ICT")  # messages are read by people in Vietnam


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
