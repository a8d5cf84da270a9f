"""An MQTT client of its own that watches a dispatch: each command, ack and `started` event.

It runs on paho's own network thread and only stamps and stores what arrives
(CLOCK_MONOTONIC, shared with the benchmark's t0, taken as paho parses the message);
the JSON is read after the window. An aiomqtt client in the benchmark's event loop
stamped late: aiomqtt reads one packet per turn of the loop when nothing of its own is
in flight, and hands each message over through a task of its own, so at 100 speakers
the commands and acks came in one bunch up to 200 ms after the broker had them (the
daemon's link suffers the same, see the README).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CONNECT_TIMEOUT_S = 10.0


@dataclass
class Seen:
    """What the observer saw of one command (times in seconds since t0)."""

    cmd_s: float | None = None  # the broker delivered the command (to us; the speaker alike)
    ack_s: float | None = None
    ack_ok: bool | None = None
    ack_error: str | None = None
    started_s: float | None = None


class ObserverError(Exception):
    """The observer could not connect or subscribe."""


class Subscription:
    """A paho client on its own network thread, subscribed to every speaker's `cmd`, `ack`
    and `event` of a site; `on_message` runs on that thread. Shared by the observers."""

    def __init__(
        self,
        host: str,
        port: int,
        site: str,
        name: str,
        on_message: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None],
    ) -> None:
        self._host, self._port, self._site, self._name = host, port, site, name
        self._on_message = on_message
        self._subscribed = threading.Event()
        self._client: mqtt.Client | None = None

    async def open(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self._name}-{self._site}",
            protocol=mqtt.MQTTv5,
        )
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        await asyncio.to_thread(client.connect, self._host, self._port)  # a blocking connect
        client.loop_start()
        self._client = client
        if not await asyncio.to_thread(self._subscribed.wait, CONNECT_TIMEOUT_S):
            await self.close()
            raise ObserverError(f"no subscription at {self._host}:{self._port}")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)  # joins paho's thread

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        prefix = f"loacam/{self._site}/spk/"
        client.subscribe([(f"{prefix}+/{leaf}", 1) for leaf in ("cmd", "ack", "event")])

    def _on_subscribe(self, *_: object) -> None:
        self._subscribed.set()


@dataclass
class Observer:
    host: str
    port: int
    site: str
    expected: int  # speakers: the window ends once each has acked and started
    _messages: list[tuple[float, str, bytes]] = field(default_factory=list)
    _acked: set[str] = field(default_factory=set)
    _started: set[str] = field(default_factory=set)
    _complete: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _mqtt: Subscription | None = None

    @property
    def prefix(self) -> str:
        return f"loacam/{self.site}/spk/"

    async def __aenter__(self) -> Observer:
        self._loop = asyncio.get_running_loop()
        self._mqtt = Subscription(
            self.host, self.port, self.site, "bench-observer", self._on_message
        )
        await self._mqtt.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._mqtt is not None:
            await self._mqtt.close()

    async def wait_complete(self, timeout_s: float) -> bool:
        """True once every speaker has acked and started; False at the timeout."""
        try:
            await asyncio.wait_for(self._complete.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def counts(self) -> tuple[int, int]:
        """Speakers that acked, that started (any command)."""
        return len(self._acked), len(self._started)

    # -- paho's thread ------------------------------------------------------------

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        at = time.monotonic()
        topic, payload = message.topic, message.payload
        self._messages.append((at, topic, payload))  # list.append is atomic under the GIL
        speaker, _, leaf = topic[len(self.prefix) :].partition("/")
        if leaf == "ack":
            self._acked.add(speaker)
        elif leaf == "event" and b'"started"' in payload:
            self._started.add(speaker)
        if len(self._acked) >= self.expected and len(self._started) >= self.expected:
            loop = self._loop
            if loop is not None and not self._complete.is_set():
                loop.call_soon_threadsafe(self._complete.set)

    # -- after the window -----------------------------------------------------------

    def seen(self, commands: Mapping[str, str], t0: float) -> dict[str, Seen]:
        """Per speaker id, what was seen of its command `commands[speaker_id]` (cmd_id)."""
        found = {speaker: Seen() for speaker in commands}
        for at, topic, payload in list(self._messages):
            speaker, _, leaf = topic[len(self.prefix) :].partition("/")
            seen = found.get(speaker)
            data = _json(payload)
            if seen is None or data is None or data.get("cmd_id") != commands[speaker]:
                continue
            since = at - t0
            if leaf == "cmd" and seen.cmd_s is None:
                seen.cmd_s = since
            elif leaf == "ack" and seen.ack_s is None:
                seen.ack_s = since
                seen.ack_ok = data.get("ok") is True
                error = data.get("error")
                seen.ack_error = error if isinstance(error, str) else None
            elif leaf == "event" and data.get("event") == "started" and seen.started_s is None:
                seen.started_s = since
        return found


def _json(payload: bytes) -> dict[str, object] | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
