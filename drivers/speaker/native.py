"""loacam's own speaker protocol over MQTT (docs/mqtt-speakers.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.mqtt import OFFLINE, ONLINE, MqttLink, MqttMessage
from drivers.speaker.model import (
    Ack,
    Availability,
    Command,
    EventKind,
    Op,
    PlaybackEvent,
    Playing,
    Report,
    SpeakerAddress,
    SpeakerInfo,
    SpeakerState,
    UnsupportedOperationError,
)

PROTOCOL_VERSION = 1
STREAM = "stream"  # the capability of playing a relayed stream (`play` with `live`)
# A report is a few hundred bytes; anything much larger is a broken or hostile speaker
# (and a retained one would be replayed to loacam on every restart).
MAX_REPORT_BYTES = 16 * 1024
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CMD_ID = r"^[0-9a-f]{32}$"


class _Payload(BaseModel):
    # Unknown keys are ignored so either side of the protocol can grow.
    model_config = ConfigDict(extra="ignore", frozen=True)


Word = Annotated[str, Field(max_length=32)]


class _Info(_Payload):
    protocol: int = Field(ge=1)
    model: str = Field("", max_length=120)
    firmware: str = Field("", max_length=64)
    name: str | None = Field(None, max_length=120)
    zones: tuple[Annotated[str, Field(max_length=63)], ...] = Field((), max_length=16)
    codecs: tuple[Word, ...] = Field((), max_length=32)
    capabilities: tuple[Word, ...] = Field((), max_length=32)


class _Playing(_Payload):
    cmd_id: str | None = Field(None, pattern=_CMD_ID)
    item_id: str | None = Field(None, max_length=128)
    priority: str | None = Field(None, max_length=16)


class _State(_Payload):
    playing: _Playing | None = None
    volume: int | None = Field(None, ge=0, le=100)
    signal_dbm: float | None = None
    faults: tuple[Word, ...] = Field((), max_length=32)
    ts: datetime | None = None


class _Ack(_Payload):
    cmd_id: str = Field(pattern=_CMD_ID)
    ok: bool
    error: str | None = Field(None, max_length=64)


class _Event(_Payload):
    event: Literal["started", "finished", "failed", "fault"]
    cmd_id: str | None = Field(None, pattern=_CMD_ID)
    item_id: str | None = Field(None, max_length=128)
    reason: str | None = Field(None, max_length=64)
    error: str | None = Field(None, max_length=64)
    duration_s: float | None = Field(None, ge=0)
    fault: str | None = Field(None, max_length=64)
    active: bool | None = None


def _zones(values: tuple[str, ...]) -> tuple[str, ...]:
    # A zone id becomes a URL and filter value in loacam: keep only well-formed ones.
    return tuple(zone for zone in values if _ID.match(zone))


class NativeDriver:
    """Speakers that speak docs/mqtt-speakers.md themselves."""

    name: ClassVar[str] = "native"
    confirms_receipt: ClassVar[bool] = True
    wants_wav: ClassVar[bool] = False
    plays_streams: ClassVar[bool] = True
    operations: ClassVar[frozenset[Op]] = frozenset(Op)
    presence_from_traffic: ClassVar[bool] = False

    def __init__(self, link: MqttLink, site: str, devices: Mapping[str, str]) -> None:
        # Native speakers are addressed by their own id, declared or announced: no map.
        del devices
        self._link = link
        self._prefix = f"loacam/{site}/spk/"
        # Whether each speaker's latest `info` lists the `stream` capability. Firmware
        # from before relays ignores `live` and would try to download an endless
        # stream: a live play goes only to speakers that have not said they cannot.
        self._streams: dict[str, bool] = {}

    def topic_filters(self) -> tuple[str, ...]:
        return tuple(
            f"{self._prefix}+/{leaf}" for leaf in ("status", "info", "state", "ack", "event")
        )

    def parse(self, message: MqttMessage) -> Report | None:
        if not message.topic.startswith(self._prefix):
            return None
        speaker_id, _, leaf = message.topic[len(self._prefix) :].partition("/")
        if not _ID.match(speaker_id):
            raise ValueError(f"{speaker_id[:70]!r} is not a speaker id")
        if len(message.payload) > MAX_REPORT_BYTES:
            raise ValueError(f"{len(message.payload)} bytes is too large for a report")
        if leaf == "status":
            return self._availability(speaker_id, message.payload)
        parse = _PARSERS.get(leaf)
        if parse is None or not message.payload:
            return None  # not ours, or a retained message being cleared
        report = parse(speaker_id, message.payload)
        if isinstance(report, SpeakerInfo):
            self._streams[speaker_id] = STREAM in report.capabilities
        return report

    async def send(self, to: SpeakerAddress, command: Command) -> None:
        if command.live and self._streams.get(to.device_id) is False:
            raise UnsupportedOperationError(
                f"Loa {to.speaker_id} không tiếp sóng được (no `stream` capability)"
            )
        cmd_topic = f"{self._prefix}{to.device_id}/cmd"
        remaining = (command.expires_at - datetime.now(UTC)).total_seconds()
        # Only the expiry as an MQTT 5 property: the ack topic is fixed by the protocol
        # and the cmd_id is in the payload, so a response topic and correlation data per
        # command would cost a dispatch to 1,000 speakers for nothing.
        await self._link.publish(
            cmd_topic, encode_command(command), qos=1, expiry_s=max(1, int(remaining))
        )

    @staticmethod
    def _availability(speaker_id: str, payload: bytes) -> Availability | None:
        word = payload.strip().lower()
        if word == ONLINE:
            return Availability(speaker_id, online=True)
        if word in {OFFLINE, b""}:  # an empty retained message clears the status
            return Availability(speaker_id, online=False)
        raise ValueError(f"status must be 'online' or 'offline', not {payload[:40]!r}")


def encode_command(command: Command) -> bytes:
    body: dict[str, object] = {
        "cmd_id": command.cmd_id,
        "op": command.op.value,
        "issued_at": _utc(command.issued_at),
        "expires_at": _utc(command.expires_at),
    }
    if command.op in {Op.PLAY, Op.PREFETCH}:
        body["url"] = command.url
        body["item_id"] = command.item_id
    if command.op is Op.PLAY:
        body["priority"] = command.priority.word
        body["volume"] = command.volume
        if command.live:  # only then: a speaker from before relays never sees these keys
            body["live"] = True
            body["ends_at"] = _utc(command.ends_at or command.expires_at)
    if command.op is Op.SET_VOLUME:
        body["volume"] = command.volume
    if command.op is Op.STOP and command.item_id is not None:
        body["item_id"] = command.item_id
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _info(speaker_id: str, payload: bytes) -> SpeakerInfo:
    info = _Info.model_validate_json(payload)
    return SpeakerInfo(
        speaker_id,
        info.protocol,
        info.model,
        info.firmware,
        info.name,
        _zones(info.zones),
        info.codecs,
        info.capabilities,
    )


def _ack(speaker_id: str, payload: bytes) -> Ack:
    ack = _Ack.model_validate_json(payload)
    return Ack(speaker_id, ack.cmd_id, ack.ok, ack.error)


def _state(speaker_id: str, payload: bytes) -> SpeakerState:
    state = _State.model_validate_json(payload)
    playing = (
        Playing(state.playing.cmd_id, state.playing.item_id, state.playing.priority)
        if state.playing is not None
        else None
    )
    return SpeakerState(speaker_id, playing, state.volume, state.signal_dbm, state.faults, state.ts)


def _event(speaker_id: str, payload: bytes) -> PlaybackEvent:
    event = _Event.model_validate_json(payload)
    kind = EventKind(event.event)
    reason = event.error if kind is EventKind.FAILED else event.reason
    return PlaybackEvent(
        speaker_id,
        kind,
        event.cmd_id,
        event.item_id,
        reason=reason,
        duration_s=event.duration_s,
        fault=event.fault,
        fault_active=event.active,
    )


_PARSERS: dict[str, Callable[[str, bytes], Report]] = {
    "info": _info,
    "state": _state,
    "ack": _ack,
    "event": _event,
}
