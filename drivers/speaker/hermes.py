"""Rhasspy's Hermes audio-server protocol, so loacam can drive an existing open speaker.

Hermes knows only "play these WAV bytes", "finished playing" and "set the volume":
no acknowledgement, expiry, priority or de-duplication (docs/mqtt-speakers.md,
"Rhasspy Hermes speakers", says what loacam does instead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.mqtt import MqttLink, MqttMessage
from drivers.speaker.model import (
    Command,
    EventKind,
    Op,
    PlaybackEvent,
    Report,
    Seen,
    SpeakerAddress,
    SpeakerError,
    UnsupportedOperationError,
)

AUDIO_SERVER = "hermes/audioServer/"
SET_VOLUME = "rhasspy/audioServer/setVolume"


class _PlayFinished(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str = Field(max_length=128)
    site_id: str | None = Field(None, alias="siteId", max_length=64)


class HermesDriver:
    """Speakers running a Rhasspy Hermes audio server, addressed by their siteId."""

    name: ClassVar[str] = "hermes"
    confirms_receipt: ClassVar[bool] = False
    wants_wav: ClassVar[bool] = True
    plays_streams: ClassVar[bool] = False  # Hermes plays WAV bytes it is sent, nothing else
    operations: ClassVar[frozenset[Op]] = frozenset({Op.PLAY, Op.SET_VOLUME})
    presence_from_traffic: ClassVar[bool] = True

    def __init__(self, link: MqttLink, site: str, devices: Mapping[str, str]) -> None:
        """`devices` maps each configured Hermes siteId to loacam's speaker id."""
        del site  # Hermes topics have no loacam site level
        self._link = link
        self._speakers = dict(devices)

    def topic_filters(self) -> tuple[str, ...]:
        # Only the configured sites: other Rhasspy sites on the broker stream their
        # microphones as audioFrame, which loacam has no business receiving. Our own
        # sites' frames only tell that they are alive.
        return tuple(
            f"{AUDIO_SERVER}{site_id}/{leaf}"
            for site_id in sorted(self._speakers)
            for leaf in ("playFinished", "audioFrame")
        )

    def parse(self, message: MqttMessage) -> Report | None:
        if not message.topic.startswith(AUDIO_SERVER):
            return None
        site_id, _, leaf = message.topic[len(AUDIO_SERVER) :].partition("/")
        speaker_id = self._speakers.get(site_id)
        if speaker_id is None:
            return None  # another Rhasspy site on the same broker
        if leaf == "playFinished":
            finished = _PlayFinished.model_validate_json(message.payload)
            return PlaybackEvent(
                speaker_id, EventKind.FINISHED, finished.id, None, reason="completed"
            )
        return Seen(speaker_id)

    async def send(self, to: SpeakerAddress, command: Command) -> None:
        if command.op not in self.operations:
            raise UnsupportedOperationError(
                f"Loa Hermes không hỗ trợ lệnh {command.op.value} "
                f"(Hermes speakers have no {command.op.value})"
            )
        if command.live:
            raise UnsupportedOperationError(
                "Loa Hermes không tiếp sóng được (Hermes speakers cannot play a stream)"
            )
        if command.volume is not None:
            volume = json.dumps({"volume": command.volume / 100, "siteId": to.device_id})
            await self._link.publish(SET_VOLUME, volume, qos=1)
        if command.op is Op.PLAY:
            if command.wav is None:
                raise SpeakerError(f"{to.speaker_id}: a Hermes play needs the audio as WAV")
            topic = f"{AUDIO_SERVER}{to.device_id}/playBytes/{command.cmd_id}"
            await self._link.publish(topic, command.wav, qos=1)
