"""The MQTT link against a real private mosquitto: availability, subscriptions, reconnects,
MQTT 5 properties, connect callbacks and bounded publishes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiomqtt
import pytest

from drivers.backoff import Backoff
from drivers.mqtt import (
    MqttLink,
    MqttLinkError,
    MqttMessage,
    MqttNotConnectedError,
    MqttSettings,
)
from drivers.sim.broker import PrivateBroker
from tests.support import retained


def settings(port: int, name: str) -> MqttSettings:
    return MqttSettings(
        host="127.0.0.1", port=port, client_id=f"link-{name}", availability_topic=f"t/{name}/status"
    )


@asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def publish(port: int, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-publisher") as client:
        await client.publish(topic, payload, qos=1)


async def test_availability_online_then_offline_on_clean_stop(broker: PrivateBroker) -> None:
    link = MqttLink(settings(broker.port, "avail"))
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        assert await retained(broker.port, "t/avail/status", b"online") == b"online"
    assert not link.connected
    assert await retained(broker.port, "t/avail/status", b"offline") == b"offline"


async def test_publish_while_disconnected_raises_a_named_error() -> None:
    link = MqttLink(settings(1, "down"))
    with pytest.raises(MqttNotConnectedError):
        await link.publish("t/x", b"1")


async def test_subscriptions_survive_a_broker_restart(own_broker: PrivateBroker) -> None:
    link = MqttLink(settings(own_broker.port, "resub"), backoff=Backoff(initial=0.05, cap=0.2))
    received: asyncio.Queue[MqttMessage] = asyncio.Queue()

    async def handler(message: MqttMessage) -> None:
        await received.put(message)

    link.subscribe("t/resub/in/#", handler)
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        await publish(own_broker.port, "t/resub/in/a", b"before")
        assert (await asyncio.wait_for(received.get(), 10)).payload == b"before"

        await asyncio.to_thread(own_broker.stop_blocking)
        await asyncio.wait_for(link.wait_disconnected(), 10)
        assert link.state.last_error
        # Started from this thread, not a worker thread: the broker's parent-death
        # signal follows the thread that spawned it.
        own_broker.start_blocking()
        await asyncio.wait_for(link.wait_connected(), 20)
        assert link.state.connects == 2

        await publish(own_broker.port, "t/resub/in/b", b"after")
        message = await asyncio.wait_for(received.get(), 10)
        assert (message.topic, message.payload) == ("t/resub/in/b", b"after")


async def test_a_handler_rejecting_garbage_does_not_stop_the_link(
    broker: PrivateBroker, caplog: pytest.LogCaptureFixture
) -> None:
    link = MqttLink(settings(broker.port, "garbage"))
    good: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(message: MqttMessage) -> None:
        if message.payload == b"garbage":
            raise ValueError("not JSON")
        await good.put(message.payload)

    link.subscribe("t/garbage/in", handler)
    caplog.set_level(logging.WARNING)
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        await publish(broker.port, "t/garbage/in", b"garbage")
        await publish(broker.port, "t/garbage/in", b"fine")
        assert await asyncio.wait_for(good.get(), 10) == b"fine"
        assert link.connected
    assert "ignored malformed message: not JSON" in caplog.text


async def test_subscribe_while_connected_applies_at_once(broker: PrivateBroker) -> None:
    link = MqttLink(settings(broker.port, "late"))
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(message: MqttMessage) -> None:
        await got.put(message.payload)

    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        link.subscribe("t/late/x", handler)
        # Retained so it arrives whenever the new subscription lands.
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="late-pub") as client:
            await client.publish("t/late/x", b"hello", qos=1, retain=True)
        assert await asyncio.wait_for(got.get(), 10) == b"hello"


async def test_a_handler_may_subscribe_more_while_messages_flow(broker: PrivateBroker) -> None:
    link = MqttLink(settings(broker.port, "grow"))
    later: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(message: MqttMessage) -> None:
        await later.put(message.payload)

    async def announce(message: MqttMessage) -> None:
        # e.g. a speaker's retained `info` makes the registry follow its `state`
        link.subscribe(f"t/grow/{message.payload.decode()}/state", collect)

    link.subscribe("t/grow/announce", announce)
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="grow-pub") as client:
            await client.publish("t/grow/s1/state", b"ready", qos=1, retain=True)
            await client.publish("t/grow/announce", b"s1", qos=1)
        assert await asyncio.wait_for(later.get(), 10) == b"ready"
        assert link.connected


async def test_mqtt5_properties_reach_a_subscriber_and_the_link(broker: PrivateBroker) -> None:
    link = MqttLink(settings(broker.port, "props"))
    seen: asyncio.Queue[MqttMessage] = asyncio.Queue()
    link.subscribe("t/props/cmd", seen.put)
    async with (
        aiomqtt.Client(
            "127.0.0.1", broker.port, identifier="v5-sub", protocol=aiomqtt.ProtocolVersion.V5
        ) as subscriber,
        running(link),
    ):
        await subscriber.subscribe("t/props/cmd", qos=1)
        await asyncio.wait_for(link.wait_connected(), 10)
        await link.publish(
            "t/props/cmd", b"{}", expiry_s=300, response_topic="t/props/ack", correlation=b"c1"
        )
        async with asyncio.timeout(10):
            message = await anext(aiter(subscriber.messages))
        properties = message.properties
        assert properties is not None
        assert (properties.ResponseTopic, properties.CorrelationData) == ("t/props/ack", b"c1")
        assert 0 < properties.MessageExpiryInterval <= 300  # what is left of it
        own = await asyncio.wait_for(seen.get(), 10)
        assert (own.response_topic, own.correlation) == ("t/props/ack", b"c1")


async def test_on_mqtt_3_1_1_the_same_publish_works_without_properties(
    broker: PrivateBroker,
) -> None:
    link = MqttLink(replace(settings(broker.port, "v311"), protocol="3.1.1"))
    seen: asyncio.Queue[MqttMessage] = asyncio.Queue()
    link.subscribe("t/v311/cmd", seen.put)
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        await link.publish(
            "t/v311/cmd", b"{}", expiry_s=300, response_topic="t/v311/ack", correlation=b"c1"
        )
        message = await asyncio.wait_for(seen.get(), 10)
    assert message == MqttMessage("t/v311/cmd", b"{}", retain=False)


async def test_on_connect_runs_once_subscribed_after_every_connect(
    own_broker: PrivateBroker, caplog: pytest.LogCaptureFixture
) -> None:
    link = MqttLink(settings(own_broker.port, "oc"), backoff=Backoff(initial=0.05, cap=0.2))
    echoes: asyncio.Queue[bytes] = asyncio.Queue()
    link.subscribe("t/oc/echo", lambda message: echoes.put(message.payload))

    async def resend() -> None:
        # Comes back only if the subscription was in place before this ran.
        await link.publish("t/oc/echo", str(link.state.connects).encode())

    async def broken() -> None:
        raise RuntimeError("outbox on fire")

    link.on_connect(resend)
    link.on_connect(broken)
    caplog.set_level(logging.ERROR)
    async with running(link):
        assert await asyncio.wait_for(echoes.get(), 10) == b"1"
        await asyncio.to_thread(own_broker.stop_blocking)
        await asyncio.wait_for(link.wait_disconnected(), 10)
        own_broker.start_blocking()  # from this thread: see test_subscriptions_survive...
        assert await asyncio.wait_for(echoes.get(), 20) == b"2"
        assert link.connected
    assert caplog.text.count("on_connect callback") == 2
    assert "outbox on fire" in caplog.text


async def test_on_connect_registered_while_connected_runs_at_once(broker: PrivateBroker) -> None:
    link = MqttLink(settings(broker.port, "oc-late"))
    ran = asyncio.Event()

    async def callback() -> None:
        ran.set()

    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        link.on_connect(callback)
        await asyncio.wait_for(ran.wait(), 10)


async def test_publish_to_a_stopped_broker_raises_instead_of_hanging(
    own_broker: PrivateBroker,
) -> None:
    link = MqttLink(settings(own_broker.port, "gone"), backoff=Backoff(initial=5, cap=5))
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        await asyncio.to_thread(own_broker.stop_blocking)
        # Whether or not the link has noticed yet: an error, well before the deadline.
        with pytest.raises(MqttLinkError):
            await asyncio.wait_for(link.publish("t/gone/x", b"1"), 8)
        await asyncio.wait_for(link.wait_disconnected(), 10)
        with pytest.raises(MqttNotConnectedError):
            await link.publish("t/gone/x", b"1")


async def test_publish_gives_up_when_no_puback_comes(own_broker: PrivateBroker) -> None:
    link = MqttLink(replace(settings(own_broker.port, "frozen"), publish_timeout_s=0.3))
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        pid = own_broker.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # the connection stays up; nothing answers
        try:
            with pytest.raises(MqttLinkError, match=r"no PUBACK within 0\.3 s"):
                await asyncio.wait_for(link.publish("t/frozen/x", b"1"), 8)
        finally:
            os.kill(pid, signal.SIGCONT)


async def test_a_fleet_sized_burst_of_publishes(
    broker: PrivateBroker, caplog: pytest.LogCaptureFixture
) -> None:
    link = MqttLink(settings(broker.port, "burst"))
    caplog.set_level(logging.WARNING)
    async with running(link):
        await asyncio.wait_for(link.wait_connected(), 10)
        topics = [f"t/burst/spk-{n}/cmd" for n in range(300)]
        await asyncio.wait_for(
            asyncio.gather(*(link.publish(topic, b"{}") for topic in topics)), 20
        )
    # aiomqtt warns past 10 pending acks unless told the in-flight limit is wanted.
    assert "pending publish calls" not in caplog.text
