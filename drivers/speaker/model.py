"""What every speaker driver speaks: commands in, reports out, one Protocol.

Drivers turn MQTT messages into these frozen dataclasses where they come in, and
commands into MQTT messages where they go out; nothing above `drivers/` sees a
topic or a payload. The protocol itself is docs/mqtt-speakers.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol

from drivers.mqtt import MqttLink, MqttMessage


class SpeakerError(Exception):
    """Base of the speaker drivers' errors."""


class UnsupportedOperationError(SpeakerError):
    """The driver (or the speaker behind it) cannot do this operation."""


class Priority(enum.IntEnum):
    """Thông tư 39/2020/TT-BTTTT's three priorities; higher pre-empts lower."""

    NORMAL = 1
    PRIORITY = 2
    EMERGENCY = 3

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def from_word(cls, word: str) -> Priority:
        try:
            return cls[word.upper()]
        except KeyError:
            raise ValueError(f"unknown priority {word!r}") from None


class Op(enum.StrEnum):
    PLAY = "play"
    STOP = "stop"
    SET_VOLUME = "set_volume"
    PREFETCH = "prefetch"
    PING = "ping"
    REBOOT = "reboot"


@dataclass(frozen=True)
class SpeakerAddress:
    """Who a command goes to: loacam's id, and the id the device knows itself by."""

    speaker_id: str
    device_id: str  # the native id, or the Hermes siteId


@dataclass(frozen=True)
class Command:
    """One command as the outbox keeps it. `wav` is only filled for drivers that want bytes.

    A `live` play is a relayed stream: `url` is the station's own http(s) URL, played
    as it comes until `ends_at` (loacam neither downloads nor signs it).
    """

    cmd_id: str
    op: Op
    issued_at: datetime
    expires_at: datetime
    url: str | None = None
    priority: Priority = Priority.NORMAL
    volume: int | None = None
    item_id: str | None = None
    wav: bytes | None = field(default=None, repr=False)
    live: bool = False
    ends_at: datetime | None = None


# What comes back from speakers.


@dataclass(frozen=True)
class Availability:
    speaker_id: str
    online: bool


@dataclass(frozen=True)
class SpeakerInfo:
    speaker_id: str
    protocol: int
    model: str
    firmware: str
    name: str | None
    zones: tuple[str, ...]
    codecs: tuple[str, ...]
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Playing:
    cmd_id: str | None
    item_id: str | None
    priority: str | None


@dataclass(frozen=True)
class SpeakerState:
    speaker_id: str
    playing: Playing | None
    volume: int | None
    signal_dbm: float | None
    faults: tuple[str, ...]
    at: datetime | None


@dataclass(frozen=True)
class Ack:
    speaker_id: str
    cmd_id: str
    ok: bool
    error: str | None


class EventKind(enum.StrEnum):
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    FAULT = "fault"


@dataclass(frozen=True)
class PlaybackEvent:
    speaker_id: str
    kind: EventKind
    cmd_id: str | None
    item_id: str | None
    reason: str | None = None  # finished: completed, stopped, preempted; failed: the error
    duration_s: float | None = None
    fault: str | None = None
    fault_active: bool | None = None


@dataclass(frozen=True)
class Seen:
    """Traffic from a speaker that says nothing but "I am here" (Hermes audio frames)."""

    speaker_id: str


Report = Availability | SpeakerInfo | SpeakerState | Ack | PlaybackEvent | Seen


class SpeakerDriver(Protocol):
    """One kind of speaker on the shared MQTT link.

    `confirms_receipt`: the speaker acknowledges commands itself (native `ack`);
    without it a command is complete for the outbox once the broker has it, and it is
    never re-sent after that (Hermes cannot de-duplicate).
    `wants_wav`: `play` carries the audio as WAV bytes instead of a URL.
    `plays_streams`: a `live` play (a relayed stream) can be sent to its speakers at all;
    without it such a play fails at once as `unsupported`.
    A new kind of speaker is one module with one such class, added to
    `drivers.speaker.DRIVERS` and to the `driver` choices of the configuration.
    """

    name: ClassVar[str]
    confirms_receipt: ClassVar[bool]
    wants_wav: ClassVar[bool]
    plays_streams: ClassVar[bool]
    operations: ClassVar[frozenset[Op]]
    # True when the protocol has no availability topic: a speaker counts as online for
    # a while after any message from it (`Seen` reports).
    presence_from_traffic: ClassVar[bool]

    def __init__(self, link: MqttLink, site: str, devices: Mapping[str, str]) -> None:
        """`devices` maps the configured speakers' device ids to loacam's speaker ids."""
        ...

    def topic_filters(self) -> tuple[str, ...]:
        """The MQTT topic filters this driver's reports arrive on."""
        ...

    def parse(self, message: MqttMessage) -> Report | None:
        """A report from a message on one of `topic_filters()`; None if not for this driver.

        Raises ValueError for a malformed payload (the link logs and drops it).
        """
        ...

    async def send(self, to: SpeakerAddress, command: Command) -> None:
        """Publish the command; returns once the broker has it (PUBACK)."""
        ...
