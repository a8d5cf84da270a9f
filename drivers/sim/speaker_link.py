"""A simulated speaker's MQTT plumbing: its client, its replies, a link cut on purpose.

aiomqtt and paho details stay here; `speaker_device.py` speaks in topics and payloads.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.sim.speaker_protocol import OFFLINE

SESSION_EXPIRY_S = 86400  # the protocol's minimum: queued commands outlive a day-long outage
KEEPALIVE_S = 30
MQTT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SpeakerLink:
    """How every speaker of a fleet reaches the broker."""

    host: str
    port: int
    site: str
    speed: float = 1.0
    protocol: Literal["5", "3.1.1"] = "5"
    password: Callable[[str], str | None] | None = None
    tls_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Reply:
    """Where the ack of one command goes."""

    topic: str
    correlation: bytes | None  # MQTT 5: copied from the command


def new_client(link: SpeakerLink, speaker_id: str, status_topic: str) -> aiomqtt.Client:
    """A client with the protocol's session: persistent, with a retained `offline` will."""
    v5 = link.protocol == "5"
    properties = None
    if v5:
        properties = _properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
    return aiomqtt.Client(
        link.host,
        link.port,
        identifier=f"spk-{link.site}-{speaker_id}",
        username=speaker_id,
        password=link.password(speaker_id) if link.password is not None else None,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        # persistent either way, so the broker queues commands while the speaker is away;
        # paho refuses `clean_session` with MQTT 5 and `clean_start` with 3.1.1
        clean_session=None if v5 else False,
        clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
        will=aiomqtt.Will(status_topic, OFFLINE, qos=1, retain=True),
        keepalive=KEEPALIVE_S,
        tls_context=link.tls_context,
        timeout=MQTT_TIMEOUT_S,
    )


def reply_to(message: aiomqtt.Message, ack_topic: str) -> Reply:
    """MQTT 5: answer where the command asks, with its correlation data; else on `ack`."""
    properties = message.properties
    response = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    return Reply(
        response if isinstance(response, str) and response else ack_topic,
        correlation if isinstance(correlation, bytes) else None,
    )


def reply_properties(link: SpeakerLink, correlation: bytes | None) -> Properties | None:
    if correlation is None or link.protocol != "5":
        return None
    properties = _properties(PacketTypes.PUBLISH)
    properties.CorrelationData = correlation
    return properties


def json_object(payload: object) -> Mapping[str, object] | None:
    """The payload as a JSON object, or None for anything else (never raises)."""
    if not isinstance(payload, bytes | bytearray):
        return None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # bad UTF-8 and bad JSON are ValueErrors
        return None
    # JSON object keys are always strings
    return cast("Mapping[str, object]", data) if isinstance(data, dict) else None


def drop_connection(client: aiomqtt.Client) -> None:
    """Cut the TCP connection without DISCONNECT, as a 4G link dying would.

    aiomqtt has no public way to do this; paho's socket is reached through the client's
    private `_client`. The broker reads EOF and publishes the will.
    """
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed: the link is down anyway
            sock.shutdown(socket.SHUT_RDWR)


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped
