"""The daemon's one MQTT connection: a reconnect loop with availability and subscriptions.

aiomqtt (paho-mqtt underneath) is imported here and nowhere else; callers see
`MqttMessage` and `MqttLinkError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from drivers.backoff import Backoff, pause

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"


class MqttLinkError(Exception):
    """Base of the MQTT link's errors."""


class MqttNotConnectedError(MqttLinkError):
    """A publish was attempted while the broker is unreachable."""


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    client_id: str
    availability_topic: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    connect_timeout: float = 5.0


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class LinkState:
    connected: bool
    since: datetime
    last_error: str | None
    connects: int


Handler = Callable[[MqttMessage], Awaitable[None]]


class MqttLink:
    """Keeps one broker connection alive until asked to stop.

    On every (re)connect it publishes a retained `online` on the availability
    topic (whose last will is a retained `offline`) and re-subscribes every
    registered filter; on a clean stop it publishes `offline` itself before
    disconnecting, since a clean DISCONNECT suppresses the will.
    """

    def __init__(self, settings: MqttSettings, *, backoff: Backoff | None = None) -> None:
        self._settings = settings
        self._backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self._handlers: dict[str, list[Handler]] = {}
        self._subscribing: set[asyncio.Task[object]] = set()
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._state = LinkState(
            connected=False, since=datetime.now(UTC), last_error=None, connects=0
        )

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def connected(self) -> bool:
        return self._state.connected

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Register a handler; it applies from the next (re)connect, or at once if connected."""
        self._handlers.setdefault(topic_filter, []).append(handler)
        if self._client is not None:
            client = self._client
            task = asyncio.get_running_loop().create_task(client.subscribe(topic_filter, qos=1))
            self._subscribing.add(task)  # a task nobody references may be collected mid-run
            task.add_done_callback(self._subscribing.discard)
            task.add_done_callback(_log_failed_subscribe)

    async def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> None:
        client = self._client
        if client is None:
            raise MqttNotConnectedError(f"not connected to {self._endpoint()}")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise MqttLinkError(f"publish to {topic} failed: {exc}") from exc

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve and reconnect with backoff until `stop` is set."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except aiomqtt.MqttError as exc:
                self._set_state(connected=False, error=str(exc) or type(exc).__name__)
                log.warning("mqtt %s: connection lost or refused: %s", self._endpoint(), exc)
            if stop.is_set():
                break
            delay = self._backoff.next_delay()
            log.info("mqtt %s: reconnecting in %.1f s", self._endpoint(), delay)
            await pause(stop, delay)

    async def _session(self, stop: asyncio.Event) -> None:
        s = self._settings
        will = aiomqtt.Will(s.availability_topic, OFFLINE, qos=1, retain=True)
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive,
            will=will,
            timeout=s.connect_timeout,
        )
        async with client:
            try:
                # Set first: a filter registered while the loop below awaits is then
                # subscribed by `subscribe()` itself (twice is harmless, never is not).
                self._client = client
                await client.publish(s.availability_topic, ONLINE, qos=1, retain=True)
                for topic_filter in list(self._handlers):
                    await client.subscribe(topic_filter, qos=1)
                self._backoff.reset()
                self._set_state(connected=True, error=None)
                log.info("mqtt %s: connected as %s", self._endpoint(), s.client_id)
                await self._serve_until(client, stop)
                await client.publish(s.availability_topic, OFFLINE, qos=1, retain=True)
            finally:
                self._client = None
                self._set_state(connected=False, error=self._state.last_error)

    async def _serve_until(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        pump = asyncio.create_task(self._dispatch(client))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({pump, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, stopper):
                task.cancel()
            await asyncio.gather(pump, stopper, return_exceptions=True)
        if pump.done() and not pump.cancelled() and (exc := pump.exception()) is not None:
            raise exc

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            incoming = MqttMessage(str(message.topic), data, bool(message.retain))
            for topic_filter, handlers in list(self._handlers.items()):
                if message.topic.matches(topic_filter):
                    for handler in list(handlers):
                        await _call_handler(handler, incoming)

    def _set_state(self, *, connected: bool, error: str | None) -> None:
        previous = self._state
        since = previous.since if previous.connected == connected else datetime.now(UTC)
        connects = previous.connects + (1 if connected and not previous.connected else 0)
        self._state = LinkState(connected, since, error, connects)
        (self._disconnected if connected else self._connected).clear()
        (self._connected if connected else self._disconnected).set()

    def _endpoint(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"


async def _call_handler(handler: Handler, message: MqttMessage) -> None:
    # A device that sends garbage must not take the link down: handlers raise
    # ValueError (which includes JSON and pydantic validation errors) for bad payloads.
    try:
        await handler(message)
    except ValueError as exc:
        log.warning("mqtt %s: ignored malformed message: %s", message.topic, exc)


def _log_failed_subscribe(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("mqtt: subscribe failed, retried on next connect: %s", exc)
