"""Request and response bodies of the speaker, zone and alarm API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.config import Slug as SlugIn
from daemon.speakers.alarms import Alarm
from daemon.speakers.outbox import CommandRecord
from daemon.speakers.registry import Speaker
from daemon.speakers.service import Targets, Zone


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TargetsIn(Body):
    all: bool = Field(default=False, description="Every speaker.")
    zones: list[SlugIn] = Field(default_factory=list, max_length=200, description="Zone ids.")
    speakers: list[SlugIn] = Field(
        default_factory=list, max_length=10_000, description="Speaker ids."
    )

    @model_validator(mode="after")
    def _something(self) -> TargetsIn:
        if not (self.all or self.zones or self.speakers):
            raise ValueError("chọn ít nhất một vùng hoặc một loa (choose all, zones or speakers)")
        return self

    def targets(self) -> Targets:
        return Targets(self.all, tuple(self.zones), tuple(self.speakers))


class VolumeIn(Body):
    volume: int = Field(ge=0, le=100, description="Volume 0-100.")


class ToneIn(Body):
    volume: int | None = Field(None, ge=0, le=100, description="Volume for the tone only.")


class GroupToneIn(ToneIn):
    targets: TargetsIn


class ZoneIn(Body):
    id: SlugIn = Field(description="Zone id: lowercase letters, digits, '-' or '_'.")
    name: str = Field(min_length=1, max_length=120, description="Name shown to users.")


class ZonePatch(Body):
    name: str = Field(min_length=1, max_length=120, description="New name shown to users.")


class PlayingOut(BaseModel):
    cmd_id: str | None
    item_id: str | None
    priority: str | None


class CommandOut(BaseModel):
    cmd_id: str
    speaker_id: str
    op: str
    source: str
    item_id: str | None
    priority: str
    volume: int | None
    state: str = Field(
        description="queued, offline, sent, acknowledged, started, finished, failed or expired."
    )
    error: str | None = Field(description="Why it failed (busy, codec, download, decode...).")
    attempts: int = Field(description="How many times loacam has published it.")
    issued_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None

    @classmethod
    def of(cls, record: CommandRecord) -> CommandOut:
        return cls(
            cmd_id=record.cmd_id,
            speaker_id=record.speaker_id,
            op=record.op.value,
            source=record.source,
            item_id=record.item_id,
            priority=record.priority.word,
            volume=record.volume,
            state=record.state.value,
            error=record.error,
            attempts=record.attempts,
            issued_at=record.issued_at,
            expires_at=record.expires_at,
            sent_at=record.sent_at,
            acked_at=record.acked_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            duration_s=record.duration_s,
        )


class SpeakerOut(BaseModel):
    id: str
    name: str
    zone: str | None
    driver: str
    status: str = Field(description="online, offline or unknown (nothing heard since start).")
    since: datetime | None
    last_seen: datetime | None
    volume: int | None
    playing: PlayingOut | None
    faults: list[str]
    signal_dbm: float | None
    model: str | None
    firmware: str | None
    declared: bool = Field(description="In the configuration (false: announced itself).")
    alarm: bool
    alarm_since: datetime | None

    @classmethod
    def of(cls, speaker: Speaker) -> SpeakerOut:
        playing = speaker.playing
        return cls(
            id=speaker.id,
            name=speaker.name,
            zone=speaker.zone,
            driver=speaker.driver,
            status=speaker.status.value,
            since=speaker.since,
            last_seen=speaker.last_seen,
            volume=speaker.volume,
            playing=PlayingOut(
                cmd_id=playing.cmd_id, item_id=playing.item_id, priority=playing.priority
            )
            if playing is not None
            else None,
            faults=list(speaker.faults),
            signal_dbm=speaker.signal_dbm,
            model=speaker.model,
            firmware=speaker.firmware,
            declared=speaker.declared,
            alarm=speaker.alarm_since is not None,
            alarm_since=speaker.alarm_since,
        )


class SpeakerDetail(SpeakerOut):
    codecs: list[str]
    commands: list[CommandOut] = Field(description="The latest commands and their outcome.")


class ZoneOut(BaseModel):
    id: str
    name: str
    speakers: int
    online: int

    @classmethod
    def of(cls, zone: Zone) -> ZoneOut:
        return cls(id=zone.id, name=zone.name, speakers=zone.speakers, online=zone.online)


class AlarmOut(BaseModel):
    id: int
    kind: str
    subject: str
    active: bool
    since: datetime
    raised_at: datetime
    cleared_at: datetime | None
    message: str

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        return cls(
            id=alarm.id,
            kind=alarm.kind,
            subject=alarm.subject,
            active=alarm.cleared_at is None,
            since=alarm.since,
            raised_at=alarm.raised_at,
            cleared_at=alarm.cleared_at,
            message=alarm.message,
        )
