"""paho-level pieces of the MQTT link: packet properties, the burst reader, incoming messages.

drivers/mqtt.py builds on it (and bench/dispatch_probe.py, which patches the link); callers of
the link see `MqttMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiomqtt
from paho.mqtt import client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MAX_EXPIRY_S = 2**32 - 1  # a Four Byte Integer property
_READ_BURST = 1000  # packets read per wake-up of the socket, at most


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    retain: bool
    # MQTT 5 properties of the incoming PUBLISH; None on 3.1.1 or when not set.
    correlation: bytes | None = None
    response_topic: str | None = None


class PacketProperties:
    """The MQTT 5 properties of the link's CONNECT and PUBLISH packets (none on 3.1.1)."""

    def __init__(self, protocol: str, session_expiry_s: int) -> None:
        self._v5 = protocol == "5"
        self._session_expiry_s = session_expiry_s
        self._last_expiry: tuple[int | None, Properties] | None = None

    def connect(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho leaves it untyped
        properties.SessionExpiryInterval = self._session_expiry_s
        return properties

    def publish(
        self, expiry_s: int | None, response_topic: str | None, correlation: bytes | None
    ) -> Properties | None:
        if not self._v5:
            return None
        if expiry_s is None and response_topic is None and correlation is None:
            return None
        if response_topic is None and correlation is None:
            return self._expiry(expiry_s)
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call] # paho leaves it untyped
        if expiry_s is not None:
            properties.MessageExpiryInterval = _expiry_interval(expiry_s)
        if response_topic is not None:
            properties.ResponseTopic = response_topic
        if correlation is not None:
            properties.CorrelationData = correlation
        return properties

    def _expiry(self, expiry_s: int | None) -> Properties:
        # paho's Properties costs ~50 µs and 5 KB to build; the commands of one dispatch
        # share their expiry, so they share one object (paho only reads it).
        cached = self._last_expiry
        if cached is not None and cached[0] == expiry_s:
            return cached[1]
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call] # paho leaves it untyped
        if expiry_s is not None:
            properties.MessageExpiryInterval = _expiry_interval(expiry_s)
        self._last_expiry = (expiry_s, properties)
        return properties


def _expiry_interval(expiry_s: int) -> int:
    # 0 would mean "never expires" to mosquitto: a command in its last second still gets
    # one second, not forever.
    return min(max(expiry_s, 1), MAX_EXPIRY_S)


def read_waiting(paho: mqtt.Client, max_packets: int = 1) -> MQTTErrorCode:  # noqa: ARG001
    """paho's loop_read, reading every packet already received (up to a burst).

    The same steps as paho 2.x's own loop (its private `_packet_read` and
    `_loop_rc_handle`), without its one-packet limit. The burst bound lets other
    work of the event loop run between bursts.
    """
    for _ in range(_READ_BURST):
        if paho._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        rc = paho._packet_read()
        if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        if rc > 0:
            return paho._loop_rc_handle(rc)
    return MQTTErrorCode.MQTT_ERR_SUCCESS


def incoming_message(message: aiomqtt.Message) -> MqttMessage:
    payload = message.payload
    data = payload if isinstance(payload, bytes) else str(payload or "").encode()
    # paho's Properties has an attribute only for the properties the packet carried.
    correlation = getattr(message.properties, "CorrelationData", None)
    response_topic = getattr(message.properties, "ResponseTopic", None)
    return MqttMessage(
        str(message.topic),
        data,
        bool(message.retain),
        correlation=correlation if isinstance(correlation, bytes) else None,
        response_topic=response_topic if isinstance(response_topic, str) else None,
    )
