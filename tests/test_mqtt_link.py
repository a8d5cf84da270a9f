"""The MQTT link against a real private mosquitto: availability, subscriptions, reconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
import pytest

from drivers.backoff import Backoff
from drivers.mqtt import MqttLink, MqttMessage, MqttNotConnectedError, MqttSettings
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
