"""The daemon's one MQTT connection: a reconnect loop with availability and subscriptions.

aiomqtt (paho-mqtt underneath) is imported here and in its helper drivers/mqtt_packets.py,
nowhere else; callers see `MqttMessage` and `MqttLinkError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aiomqtt
from paho.mqtt import client as mqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, MQTT_ERR_SUCCESS, error_string
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from drivers.backoff import Backoff, pause
from drivers.mqtt_packets import MqttMessage, PacketProperties, incoming_message, read_waiting
from drivers.mqtt_tls import MqttTls, ssl_context_blocking

__all__ = ["MqttLink", "MqttLinkError", "MqttMessage", "MqttNotConnectedError", "MqttRefusedError",
           "MqttSettings", "MqttTls"]  # fmt: skip

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"

Protocol = Literal["5", "3.1.1"]
# PUBACK reasons that sending again cannot change: not authorised (the ACL), topic name
# invalid, payload format invalid. Other failures (quota exceeded...) are retried.
_REFUSED_FOR_GOOD = frozenset({0x87, 0x90, 0x99})


class MqttLinkError(Exception):
    """Base of the MQTT link's errors."""


class MqttNotConnectedError(MqttLinkError):
    """A publish was attempted while the broker is unreachable, or the link dropped mid-way."""


class MqttRefusedError(MqttLinkError):
    """The broker answered a publish with a failure (MQTT 5), e.g. "Not authorized" by its ACL.

    Sending it again changes nothing: the broker's configuration has to.
    """


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
    protocol: Protocol = "5"
    tls: MqttTls | None = None
    # Unacknowledged QoS 1 messages paho lets out at once; 0 = no limit. With a limit,
    # paho walks every message it holds on each PUBACK (quadratic: 0.45 s of CPU for a
    # 1,000-speaker dispatch); its default of 20 would serialise the dispatch instead.
    max_inflight: int = 0
    # How long a publish waits for the broker's PUBACK before it is called failed.
    publish_timeout_s: float = 10.0
    # MQTT 5 only: how long the broker keeps the session (and messages for it) while
    # the daemon is away.
    session_expiry_s: int = 3600


@dataclass(frozen=True)
class LinkState:
    connected: bool
    since: datetime
    last_error: str | None
    connects: int


Handler = Callable[[MqttMessage], Awaitable[None]]


ConnectCallback = Callable[[], Awaitable[None]]


class MqttLink:
    """Keeps one broker connection alive until asked to stop.

    On every (re)connect it publishes a retained `online` on the availability
    topic (whose last will is a retained `offline`), re-subscribes every
    registered filter, then runs the `on_connect` callbacks; on a clean stop it
    publishes `offline` itself before disconnecting, since a clean DISCONNECT
    suppresses the will.

    Over MQTT 5 the session outlives a restart for `session_expiry_s` (an hour): the
    `started`/`finished` events and acks speakers publish while loacam restarts wait in
    the broker, so proof of delivery survives it, and the broker stops hoarding for a
    daemon that does not come back. 3.1.1 has no session expiry, so there each session
    starts clean; an ack missed then is asked for again by re-sending the command (a
    repeated `cmd_id` is answered, not executed twice), an event missed is not.
    """

    def __init__(self, settings: MqttSettings, *, backoff: Backoff | None = None) -> None:
        self._settings = settings
        self._backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self._handlers: dict[str, list[Handler]] = {}
        self._subscribing: set[asyncio.Task[object]] = set()
        self._connect_callbacks: list[ConnectCallback] = []
        self._callbacks_running: set[asyncio.Task[None]] = set()
        self._client: aiomqtt.Client | None = None
        # Set when the current session ends: a publish waiting for its PUBACK gives up.
        # Resolved when the current session ends; one future shared by every publish
        # of the session (a task per publish to watch it would double the cost of a
        # 1,000-speaker dispatch).
        self._lost: asyncio.Future[None] | None = None
        self._properties = PacketProperties(settings.protocol, settings.session_expiry_s)
        self._awaiting: dict[int, asyncio.Future[None]] = {}
        self._aiomqtt_on_publish: mqtt.CallbackOnPublish | None = None
        self._inbox: asyncio.Queue[aiomqtt.Message] | None = None
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

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run `callback` (as a task) after every (re)connect, once subscriptions are in place.

        Also at once if the link is connected now. A callback that raises is logged, never
        fatal; one still running when the connection drops is cancelled (it runs again
        after the next connect, so it must be safe to repeat).
        """
        self._connect_callbacks.append(callback)
        if self.connected:
            self._start_callback(callback)

    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        expiry_s: int | None = None,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        """Send one message; for QoS 1, return only once the broker has sent its PUBACK.

        paho calls on_publish for QoS 1 when the PUBACK arrives. That wait is bounded: by
        `publish_timeout_s`, and by the end of the session (a broker stopped mid-way), so a
        publish never hangs. Over MQTT 5 a PUBACK with a failure reason (the broker's ACL
        says "Not authorized") raises MqttRefusedError; 3.1.1 has no such answer, a refused
        publish looks sent there. `expiry_s`, `response_topic` and `correlation` become
        MQTT 5 properties; on 3.1.1 they are dropped (the payload carries the same).
        """
        client, lost = self._client, self._lost
        if client is None or lost is None or lost.done():
            raise MqttNotConnectedError(f"not connected to {self._endpoint()}")
        properties = self._properties.publish(expiry_s, response_topic, correlation)
        # paho directly, not aiomqtt's publish: that one costs two tasks per message,
        # which made a dispatch to 1,000 speakers wait ~0.5 s before its first message
        # left. paho queues the packet now (written on the next loop turn, so the PUBACK
        # cannot come before the future below is registered); `_on_publish` resolves it
        # (aiomqtt 2.5, pinned in requirements/constraints.txt).
        paho = client._client
        info = paho.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"publish to {topic} failed: {error_string(info.rc)}")
        if info.is_published():
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._awaiting[info.mid] = confirmed
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                await confirmed
        except TimeoutError:
            raise MqttLinkError(
                f"publish to {topic}: no PUBACK within {self._settings.publish_timeout_s} s"
            ) from None
        except MqttRefusedError as exc:
            raise MqttRefusedError(f"publish to {topic}: the broker answered {exc}") from None
        finally:
            # Only ours: after a reconnect a new client numbers its messages from 1 again.
            if self._awaiting.get(info.mid) is confirmed:
                del self._awaiting[info.mid]

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve and reconnect with backoff until `stop` is set."""
        while not stop.is_set():
            try:
                await self._session(stop)
            except (aiomqtt.MqttError, MqttLinkError) as exc:
                # Only the text is kept, also in the log record: the exception's context
                # may hold the socket of a failed TLS handshake, which paho leaves open.
                error = str(exc) or type(exc).__name__
                self._set_state(connected=False, error=error)
                log.warning("mqtt %s: connection lost or refused: %s", self._endpoint(), error)
            if stop.is_set():
                break
            delay = self._backoff.next_delay()
            log.info("mqtt %s: reconnecting in %.1f s", self._endpoint(), delay)
            await pause(stop, delay)

    async def _session(self, stop: asyncio.Event) -> None:
        s = self._settings
        client = await self._new_client()
        async with client:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                # Set first: a filter registered while the loop below awaits is then
                # subscribed by `subscribe()` itself (twice is harmless, never is not).
                self._client, self._lost = client, lost
                await client.publish(
                    s.availability_topic, ONLINE, qos=1, retain=True, timeout=s.publish_timeout_s
                )
                for topic_filter in list(self._handlers):
                    await client.subscribe(topic_filter, qos=1)
                self._backoff.reset()
                self._set_state(connected=True, error=None)
                log.info("mqtt %s: connected as %s", self._endpoint(), s.client_id)
                for callback in list(self._connect_callbacks):
                    self._start_callback(callback)
                await self._serve_until(client, stop)
                # Nothing of ours may follow the `offline`.
                await self._cancel_callbacks()
                await client.publish(
                    s.availability_topic, OFFLINE, qos=1, retain=True, timeout=s.publish_timeout_s
                )
            finally:
                lost.set_result(None)
                for waiting in self._awaiting.values():  # their PUBACK will never come
                    if not waiting.done():
                        waiting.set_exception(
                            MqttNotConnectedError("connection lost before the broker confirmed")
                        )
                self._awaiting.clear()
                await self._cancel_callbacks()
                self._client = None
                self._set_state(connected=False, error=self._state.last_error)

    async def _new_client(self) -> aiomqtt.Client:
        s = self._settings
        # Read for every session, in a thread (file I/O): a renewed CA or client
        # certificate is picked up at the next reconnect.
        try:
            tls = await asyncio.to_thread(ssl_context_blocking, s.tls) if s.tls else None
        except OSError as exc:  # ssl.SSLError included: a file that is not PEM
            raise MqttLinkError(f"TLS certificate files: {exc}") from exc
        v5 = s.protocol == "5"
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive,
            will=aiomqtt.Will(s.availability_topic, OFFLINE, qos=1, retain=True),
            timeout=s.connect_timeout,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # See the class docstring. paho refuses each flag on the other version, so
            # the other one keeps its default.
            clean_session=None if v5 else True,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._properties.connect() if v5 else None,
            max_inflight_messages=s.max_inflight,
            tls_context=tls,
            queue_type=self._inbox_type(),
        )
        # aiomqtt's socket callback calls loop_read(), which reads one packet per wake-up
        # once nothing of ours is in flight: 1,000 acks took 1,000 turns of a busy event
        # loop, and a daemon starting beside 10,000 speakers fell so far behind their
        # retained messages that the broker dropped some. Read what is waiting instead.
        paho = client._client
        paho.loop_read = functools.partial(read_waiting, paho)  # type: ignore[method-assign]
        self._aiomqtt_on_publish = paho.on_publish
        paho.on_publish = self._on_publish
        return client

    def _on_publish(
        self,
        paho: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        """paho's callback for a PUBACK: resolves our publish, keeps the reason code.

        Every other message id (aiomqtt's own publishes: the availability messages) goes
        on to aiomqtt's callback, which drops the reason.
        """
        confirmed = self._awaiting.get(mid)
        if confirmed is None:
            if self._aiomqtt_on_publish is not None:
                self._aiomqtt_on_publish(paho, userdata, mid, reason, properties)  # type: ignore[call-arg]
        elif not confirmed.done():
            answer = f'"{reason}" ({reason.value:#04x})'
            if reason.value in _REFUSED_FOR_GOOD:
                confirmed.set_exception(MqttRefusedError(answer))
            elif reason.is_failure:  # quota exceeded, unspecified...: worth another try
                confirmed.set_exception(MqttLinkError(f"the broker answered {answer}"))
            else:
                confirmed.set_result(None)

    def _inbox_type(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """aiomqtt's incoming queue class, remembering its instance for `_dispatch`."""
        link = self

        class Inbox(asyncio.Queue[aiomqtt.Message]):
            def __init__(self, maxsize: int = 0) -> None:
                super().__init__(maxsize)
                link._inbox = self

        return Inbox

    def _start_callback(self, callback: ConnectCallback) -> None:
        task = asyncio.get_running_loop().create_task(_run_connect_callback(callback))
        self._callbacks_running.add(task)
        task.add_done_callback(self._callbacks_running.discard)

    async def _cancel_callbacks(self) -> None:
        running = list(self._callbacks_running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

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
            await self._deliver(message)
            # aiomqtt's iterator costs a task and an asyncio.wait per message; after a
            # burst (1,000 acks) take what is already queued directly.
            inbox = self._inbox
            while inbox is not None and not inbox.empty():
                await self._deliver(inbox.get_nowait())

    async def _deliver(self, message: aiomqtt.Message) -> None:
        incoming = incoming_message(message)
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


async def _run_connect_callback(callback: ConnectCallback) -> None:
    try:
        await callback()
    except Exception:  # the caller's code: its failure must not end the link
        log.exception(
            "mqtt: on_connect callback %s failed", getattr(callback, "__qualname__", callback)
        )


def _log_failed_subscribe(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("mqtt: subscribe failed, retried on next connect: %s", exc)
